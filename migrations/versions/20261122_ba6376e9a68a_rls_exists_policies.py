"""row-level security: parameter edges and versions check their parameter with EXISTS

The policies of ``parameter_dependencies`` and ``parameter_versions`` read
``parameter_id IN (SELECT id FROM parameters)``. PostgreSQL plans a row-level
security qual as a subplan of the table scan (it is never flattened into a join),
and an ``IN`` subplan is a *hashed* subplan: every statement that touches either
table -- reading 26 edges, inserting one version -- first reads and hashes every
parameter the tenant can see (that read itself filtered by the parameters'
policy): about 10 ms per statement for a tenant with 40,000 parameters, and once
per iteration of a recursive traversal. The correlated form
``EXISTS (SELECT 1 FROM parameters parent WHERE parent.id = <table>.parameter_id)``
probes the parameters' primary key for each row the statement touches instead.
The subquery still reads ``parameters`` as ``threadline_app``, so the parameters'
own policy still applies: a row is visible, and may be written, exactly when its
parameter is visible -- the same rows as before (``parameter_id`` is NOT NULL, so
``IN`` and ``EXISTS`` agree). Same policy names, role, USING and WITH CHECK.

Measured on the 2-core dev machine: two organizations, each with the read
benchmark's project (``bench/read_bench/generate.py``: 40,000 parameters, 30,041
edges, 40,000 versions) and 10 trade studies (one of 400,000 scenarios and
results, nine of 2,000); statements as ``threadline_app`` with the tenant set as
``app.db`` sets it, ``EXPLAIN (ANALYZE, TIMING OFF)`` planning + execution time of
the PREPAREd statement (custom plan), median of 7, mean of two interleaved rounds
(old/new/old/new, ``VACUUM ANALYZE`` before each); PostgreSQL 16.2 (embedded, no
JIT) / 15.20 (Debian, JIT on), IN -> EXISTS, ms:

=====================================================  ============  ============
statement                                                     PG 16         PG 15
=====================================================  ============  ============
edges of 50 parameters (``parameter_id = ANY``)        12.2 -> 0.29  12.2 -> 0.31
``Parameter.dependencies`` batch of 50 (join)          10.5 -> 0.45  10.9 -> 0.49
``Parameter.dependents`` batch of 50 (join)            10.5 -> 0.50  11.0 -> 0.55
``Parameter.impact`` recursive CTE (11 rows)           57.9 -> 0.39  63.2 -> 0.43
``Parameter.history`` page of 50                        9.8 -> 0.39  11.0 -> 0.43
``Parameter.history`` totalCount of 50                  9.8 -> 0.28  10.4 -> 0.36
insert one edge                                         9.8 -> 0.15  10.4 -> 0.20
insert one version                                      9.8 -> 0.19  10.4 -> 0.23
delete the edges of 50 parameters                      10.0 -> 0.29  10.6 -> 0.30
insert 14,081 versions from a SELECT (recompute size)    267 -> 271    286 -> 294
``count(*)`` of all 40,000 visible versions            18.7 -> 18.6   20.2 -> 102
every edge of the project (join with its parameters)   28.8 -> 77.9   30.2 -> 173
=====================================================  ============  ============

The last two rows are the price: statements that read most of a tenant's rows.
The planner keeps a hashed variant of the EXISTS and picks it at the end when it
is cheaper, but it costs the plan as if the qual ran per row: on PostgreSQL with
JIT (15 here) that inflated cost switches JIT on (with ``jit = off``: ``count(*)``
20.1 -> 20.2 ms, the join 34.9 -> 80.5 ms), and the join becomes a nested loop
probing each edge. No API statement reads a whole project's edges or versions
(they are read per batch of parameters).

Not converted, although their tables are the largest:

* ``scenarios``, ``scenario_results`` (``trade_study_id IN (SELECT id FROM
  trade_studies)``): the hash is over the tenant's *trade studies* (tens), so it
  costs nothing, and reads are per study and scan many rows. Measured with the
  EXISTS form: the scenario connection's first page unchanged (0.25 -> 0.27 ms),
  its ``totalCount`` of the 400,000-scenario study 238 -> 343 ms (PG 16; 250 ->
  501 ms on PG 15 with JIT) and 0.9 -> 1.9 ms on a 2,000-scenario study.
* ``team_members`` (``team_id IN (SELECT id FROM teams)``): an organization has a
  handful of teams; nothing to gain.

Revision ID: ba6376e9a68a
Revises: 06153f8c9359
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ba6376e9a68a"
down_revision: str | None = "06153f8c9359"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("parameter_dependencies", "parameter_versions")

# Exactly the predicate of b7e3f1a9c2d4.
IN_PARAMETERS = "parameter_id IN (SELECT id FROM parameters)"


def _exists(table: str) -> str:
    return f"EXISTS (SELECT 1 FROM parameters parent WHERE parent.id = {table}.parameter_id)"


def _replace_policy(table: str, predicate: str) -> None:
    # One transaction per migration (env.py): no moment without a policy.
    op.execute(f"DROP POLICY tenant_isolation ON {table}")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} TO threadline_app"
        f" USING ({predicate}) WITH CHECK ({predicate})"
    )


def upgrade() -> None:
    for table in TABLES:
        _replace_policy(table, _exists(table))


def downgrade() -> None:
    for table in TABLES:
        _replace_policy(table, IN_PARAMETERS)
