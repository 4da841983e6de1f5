"""trade study result key and scenario id blocks

Every index costs about a microsecond of database CPU per stored scenario, so
results are keyed by ``(trade_study_id, scenario_id)`` — which also serves as the
index of the study foreign key — and the ``(trade_study_id, feasible)`` index goes:
results are always read per study, and the feasible filter, range filters and
ordering read the study's rows through the ``(trade_study_id, …)`` btree indexes
(the Pareto front keeps its partial index).

Workers number a chunk's scenarios themselves: the ``scenario_id_blocks`` sequence
hands out blocks of 2^17 ids (``id = block * 2^17 + i``), one ``nextval`` per
chunk, lock-free. It starts at 2^23, so block ids start at 2^40 and never meet ids
from the column's own sequence.

Revision ID: 06153f8c9359
Revises: b4570deb3820
Create Date: 2026-11-22 01:46:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "06153f8c9359"
down_revision: str | None = "b4570deb3820"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE scenario_id_blocks START WITH 8388608 MINVALUE 8388608")
    op.drop_index(
        op.f("ix_scenario_results_trade_study_id_feasible"), table_name="scenario_results"
    )
    op.drop_constraint(op.f("pk_scenario_results"), "scenario_results", type_="primary")
    op.create_primary_key(
        op.f("pk_scenario_results"), "scenario_results", ["trade_study_id", "scenario_id"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("pk_scenario_results"), "scenario_results", type_="primary")
    op.create_primary_key(op.f("pk_scenario_results"), "scenario_results", ["scenario_id"])
    op.create_index(
        op.f("ix_scenario_results_trade_study_id_feasible"),
        "scenario_results",
        ["trade_study_id", "feasible"],
        unique=False,
    )
    op.execute("DROP SEQUENCE IF EXISTS scenario_id_blocks")
