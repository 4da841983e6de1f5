"""trade study results as float8 arrays

Scenario inputs and outputs become ``double precision[]`` in the order of the
study's variables/outputs (kept in ``trade_studies.definition``), written with
fixed-width binary COPY. Measured on the 2-core dev machine, 10^6 scenarios:

* JSONB documents with the GIN index: ~11,000 scenarios/s (formatting and parsing
  JSON numbers dominate; the GIN index serves only containment, not the range
  filters and ordering the results API needs);
* the referential check scenario_results -> scenarios locks every just-inserted
  scenario row (one WAL record per row): ~27,000 scenarios/s with it, ~100,000+
  without.

So the GIN index and that foreign key go; both tables still cascade from
``trade_studies``. Range filters and ordering read the study's rows through the
``(trade_study_id, …)`` btree indexes.

Revision ID: b4570deb3820
Revises: 6a457b7f2661
Create Date: 2026-11-22 00:39:50.256955+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b4570deb3820"
down_revision: str | None = "6a457b7f2661"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# No release ever wrote scenarios as JSON (the sweep lands with this revision), and
# a document's key order cannot be recovered per row here: refuse rather than guess.
REQUIRE_EMPTY = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM scenarios) OR EXISTS (SELECT 1 FROM scenario_results) THEN
        RAISE EXCEPTION 'scenarios/scenario_results must be empty to change their storage; '
            'delete the trade study results first';
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(REQUIRE_EMPTY)
    op.drop_constraint(op.f("ck_scenarios_inputs_is_object"), "scenarios", type_="check")
    op.drop_constraint(
        op.f("ck_scenario_results_outputs_is_object"), "scenario_results", type_="check"
    )
    op.drop_index(
        op.f("ix_scenario_results_outputs_gin"),
        table_name="scenario_results",
        postgresql_using="gin",
    )
    op.drop_constraint(
        op.f("fk_scenario_results_scenario_id_scenarios"), "scenario_results", type_="foreignkey"
    )
    op.alter_column(
        "scenarios",
        "inputs",
        existing_type=postgresql.JSONB(astext_type=sa.Text()),
        type_=postgresql.ARRAY(sa.DOUBLE_PRECISION()),
        existing_nullable=False,
        postgresql_using="'{}'::double precision[]",
    )
    op.alter_column(
        "scenario_results",
        "outputs",
        existing_type=postgresql.JSONB(astext_type=sa.Text()),
        type_=postgresql.ARRAY(sa.DOUBLE_PRECISION()),
        existing_nullable=False,
        postgresql_using="'{}'::double precision[]",
    )


def downgrade() -> None:
    op.execute(REQUIRE_EMPTY)
    op.alter_column(
        "scenario_results",
        "outputs",
        existing_type=postgresql.ARRAY(sa.DOUBLE_PRECISION()),
        type_=postgresql.JSONB(astext_type=sa.Text()),
        existing_nullable=False,
        postgresql_using="'{}'::jsonb",
    )
    op.alter_column(
        "scenarios",
        "inputs",
        existing_type=postgresql.ARRAY(sa.DOUBLE_PRECISION()),
        type_=postgresql.JSONB(astext_type=sa.Text()),
        existing_nullable=False,
        postgresql_using="'{}'::jsonb",
    )
    op.create_foreign_key(
        op.f("fk_scenario_results_scenario_id_scenarios"),
        "scenario_results",
        "scenarios",
        ["scenario_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(
        op.f("ix_scenario_results_outputs_gin"),
        "scenario_results",
        ["outputs"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_check_constraint(
        op.f("ck_scenario_results_outputs_is_object"),
        "scenario_results",
        "jsonb_typeof(outputs) = 'object'",
    )
    op.create_check_constraint(
        op.f("ck_scenarios_inputs_is_object"), "scenarios", "jsonb_typeof(inputs) = 'object'"
    )
