"""The database itself rejects bad rows: duplicates, bad enums, orphans, bad ranges."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import _asyncpg_dsn

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(**_asyncpg_dsn(db_url))
    tx = c.transaction()
    await tx.start()
    yield c
    await tx.rollback()
    await c.close()


@pytest.fixture
async def ids(conn: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """One valid row in each parent table, inside the test's transaction."""
    org = await conn.fetchval(
        "INSERT INTO organizations (name, slug) VALUES ('C', $1) RETURNING id",
        f"c-{uuid.uuid4().hex[:8]}",
    )
    user = await conn.fetchval(
        "INSERT INTO users (organization_id, email) VALUES ($1, $2) RETURNING id",
        org,
        f"{uuid.uuid4().hex[:8]}@x.test",
    )
    project = await conn.fetchval(
        "INSERT INTO projects (organization_id, name) VALUES ($1, 'P') RETURNING id", org
    )
    ctype = await conn.fetchval(
        "INSERT INTO component_types (project_id, code, name) VALUES ($1, 'BATTERY', 'Battery')"
        " RETURNING id",
        project,
    )
    comp = await conn.fetchval(
        "INSERT INTO components (project_id, type_id, tag, name) VALUES ($1, $2, 'EPS-BAT-01',"
        " 'Battery') RETURNING id",
        project,
        ctype,
    )
    param = await conn.fetchval(
        "INSERT INTO parameters (project_id, component_id, symbol, name, value_number, unit)"
        " VALUES ($1, $2, 'm_bat', 'Battery mass', 2.5, 'kg') RETURNING id",
        project,
        comp,
    )
    req = await conn.fetchval(
        "INSERT INTO requirements (project_id, key, title) VALUES ($1, 'REQ-1', 'R') RETURNING id",
        project,
    )
    study = await conn.fetchval(
        "INSERT INTO trade_studies (project_id, name, method) VALUES ($1, 'S', 'GRID')"
        " RETURNING id",
        project,
    )
    return {
        "org": org,
        "user": user,
        "project": project,
        "ctype": ctype,
        "comp": comp,
        "param": param,
        "req": req,
        "study": study,
    }


# (description, SQL using $1=project, $2=org, $3=comp, $4=param, $5=req, $6=study, $7=user,
#  expected exception class)
BAD_ROWS = [
    (
        "duplicate org slug",
        "INSERT INTO organizations (name, slug) SELECT 'x', slug FROM organizations WHERE id = $2",
        asyncpg.UniqueViolationError,
    ),
    (
        "bad org slug",
        "INSERT INTO organizations (name, slug) VALUES ('x', 'Not A Slug')",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate email any case",
        "INSERT INTO users (organization_id, email) SELECT $2,"
        " upper(email) FROM users WHERE id = $7",
        asyncpg.UniqueViolationError,
    ),
    (
        "user orphan org",
        f"INSERT INTO users (organization_id, email) VALUES ('{ZERO}', 'a@b.c')",
        asyncpg.ForeignKeyViolationError,
    ),
    (
        "bad token kind",
        "INSERT INTO api_tokens (user_id, kind, token_hash, prefix) VALUES ($7,"
        " 'magic', decode(repeat('ab', 32), 'hex'), 'x')",
        asyncpg.CheckViolationError,
    ),
    (
        "bad token scope",
        "INSERT INTO api_tokens (user_id, kind, token_hash, prefix, scopes) VALUES"
        " ($7, 'api', decode(repeat('ab', 32), 'hex'), 'x', ARRAY['admin'])",
        asyncpg.CheckViolationError,
    ),
    (
        "bad member role",
        "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $7, 'god')",
        asyncpg.CheckViolationError,
    ),
    (
        "member without user or team",
        "INSERT INTO project_members (project_id, role) VALUES ($1, 'viewer')",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate member",
        "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $7,"
        " 'viewer'), ($1, $7, 'editor')",
        asyncpg.UniqueViolationError,
    ),
    (
        "duplicate event sequence",
        "INSERT INTO project_events (project_id, sequence, kind) VALUES ($1, 1, 'x'), ($1, 1, 'y')",
        asyncpg.UniqueViolationError,
    ),
    (
        "negative project sequence",
        "UPDATE projects SET event_sequence = -1 WHERE id = $1",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate component tag",
        "INSERT INTO components (project_id, tag, name) VALUES ($1, 'EPS-BAT-01', 'Again')",
        asyncpg.UniqueViolationError,
    ),
    (
        "component orphan parent",
        f"INSERT INTO components (project_id, parent_id, tag, name) VALUES"
        f" ($1, '{ZERO}', 'X-1', 'X')",
        asyncpg.ForeignKeyViolationError,
    ),
    (
        "component bad tag",
        "INSERT INTO components (project_id, tag, name) VALUES ($1, 'has space', 'X')",
        asyncpg.CheckViolationError,
    ),
    (
        "component properties not object",
        "INSERT INTO components (project_id, tag, name, properties) VALUES ($1, 'X-2', 'X', '[1]')",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate type code",
        "INSERT INTO component_types (project_id, code, name) VALUES ($1, 'BATTERY', 'Again')",
        asyncpg.UniqueViolationError,
    ),
    (
        "bad connector kind",
        "INSERT INTO connectors (project_id, source_component_id, source_port,"
        " target_component_id, target_port, kind) VALUES ($1, $3, 'a', $3, 'b', 'telepathy')",
        asyncpg.CheckViolationError,
    ),
    (
        "connector self loop",
        "INSERT INTO connectors (project_id, source_component_id, source_port,"
        " target_component_id, target_port, kind) VALUES ($1, $3, 'a', $3, 'a', 'power')",
        asyncpg.CheckViolationError,
    ),
    (
        "connector orphan target",
        f"INSERT INTO connectors (project_id, source_component_id,"
        f" source_port, target_component_id, target_port, kind) VALUES ($1, $3, 'a', '{ZERO}', 'b',"
        f" 'power')",
        asyncpg.ForeignKeyViolationError,
    ),
    (
        "duplicate parameter symbol",
        "INSERT INTO parameters (project_id, symbol, name) VALUES ($1, 'm_bat', 'Again')",
        asyncpg.UniqueViolationError,
    ),
    (
        "parameter symbol not identifier",
        "INSERT INTO parameters (project_id, symbol, name) VALUES ($1, '1abc', 'X')",
        asyncpg.CheckViolationError,
    ),
    (
        "parameter bad kind",
        "INSERT INTO parameters (project_id, symbol, name, value_kind) VALUES"
        " ($1, 'k1', 'X', 'complex')",
        asyncpg.CheckViolationError,
    ),
    (
        "parameter value of wrong kind",
        "INSERT INTO parameters (project_id, symbol, name,"
        " value_kind, value_number) VALUES ($1, 'k2', 'X', 'text', 3)",
        asyncpg.CheckViolationError,
    ),
    (
        "parameter NaN",
        "INSERT INTO parameters (project_id, symbol, name, value_number) VALUES ($1,"
        " 'k3', 'X', 'NaN')",
        asyncpg.CheckViolationError,
    ),
    (
        "parameter negative uncertainty",
        "INSERT INTO parameters (project_id, symbol, name, uncertainty) VALUES ($1, 'k4', 'X', -1)",
        asyncpg.CheckViolationError,
    ),
    (
        "formula on text parameter",
        "INSERT INTO parameters (project_id, symbol, name, value_kind,"
        " formula) VALUES ($1, 'k5', 'X', 'text', 'a+b')",
        asyncpg.CheckViolationError,
    ),
    (
        "parameter version zero",
        "UPDATE parameters SET version = 0 WHERE id = $4",
        asyncpg.CheckViolationError,
    ),
    (
        "dependency on itself",
        "INSERT INTO parameter_dependencies (parameter_id, depends_on_id) VALUES ($4, $4)",
        asyncpg.CheckViolationError,
    ),
    (
        "dependency orphan",
        f"INSERT INTO parameter_dependencies (parameter_id, depends_on_id) VALUES ($4, '{ZERO}')",
        asyncpg.ForeignKeyViolationError,
    ),
    (
        "version bad cause",
        "INSERT INTO parameter_versions (parameter_id, version, unit, cause)"
        " VALUES ($4, 1, 'kg', 'whim')",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate version",
        "INSERT INTO parameter_versions (parameter_id, version, unit, cause)"
        " VALUES ($4, 1, 'kg', 'edit'), ($4, 1, 'kg', 'edit')",
        asyncpg.UniqueViolationError,
    ),
    (
        "duplicate requirement key",
        "INSERT INTO requirements (project_id, key, title) VALUES ($1, 'REQ-1', 'Again')",
        asyncpg.UniqueViolationError,
    ),
    (
        "requirement bad priority",
        "INSERT INTO requirements (project_id, key, title, priority)"
        " VALUES ($1, 'R2', 'T', 'urgent!')",
        asyncpg.CheckViolationError,
    ),
    (
        "requirement bad status",
        "INSERT INTO requirements (project_id, key, title, status) VALUES ($1, 'R3', 'T', 'done')",
        asyncpg.CheckViolationError,
    ),
    (
        "requirement bad compliance",
        "INSERT INTO requirements (project_id, key, title, compliance)"
        " VALUES ($1, 'R4', 'T', 'MAYBE')",
        asyncpg.CheckViolationError,
    ),
    (
        "rule without parameter",
        "INSERT INTO requirements (project_id, key, title,"
        " verification_method, rule_operator, rule_threshold) VALUES ($1, 'R5', 'T', 'rule', '<=',"
        " 1)",
        asyncpg.CheckViolationError,
    ),
    (
        "rule bad operator",
        "INSERT INTO requirements (project_id, key, title, verification_method,"
        " rule_parameter_id, rule_operator, rule_threshold)"
        " VALUES ($1, 'R6', 'T', 'rule', $4, '=<', 1)",
        asyncpg.CheckViolationError,
    ),
    (
        "between without high",
        "INSERT INTO requirements (project_id, key, title,"
        " verification_method, rule_parameter_id, rule_operator, rule_threshold) VALUES ($1, 'R7',"
        " 'T', 'rule', $4, 'between', 1)",
        asyncpg.CheckViolationError,
    ),
    (
        "between reversed",
        "INSERT INTO requirements (project_id, key, title, verification_method,"
        " rule_parameter_id, rule_operator, rule_threshold, rule_threshold_high) VALUES ($1, 'R8',"
        " 'T', 'rule', $4, 'between', 5, 1)",
        asyncpg.CheckViolationError,
    ),
    (
        "trace link two targets",
        "INSERT INTO trace_links (project_id, requirement_id, kind,"
        " target_component_id, target_parameter_id) VALUES ($1, $5, 'satisfied_by', $3, $4)",
        asyncpg.CheckViolationError,
    ),
    (
        "trace link bad kind",
        "INSERT INTO trace_links (project_id, requirement_id, kind,"
        " target_component_id) VALUES ($1, $5, 'likes', $3)",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate trace link",
        "INSERT INTO trace_links (project_id, requirement_id, kind,"
        " target_component_id) VALUES ($1, $5, 'satisfied_by', $3), ($1, $5, 'satisfied_by', $3)",
        asyncpg.UniqueViolationError,
    ),
    (
        "bad study method",
        "INSERT INTO trade_studies (project_id, name, method) VALUES ($1, 'S2', 'GUESS')",
        asyncpg.CheckViolationError,
    ),
    (
        "study done > total",
        "UPDATE trade_studies SET total = 1, done = 2 WHERE id = $6",
        asyncpg.CheckViolationError,
    ),
    (
        "duplicate scenario hash",
        "INSERT INTO scenarios (trade_study_id, index, input_hash, inputs)"
        " VALUES ($6, 0, 'h', '{}'), ($6, 1, 'h', '{}')",
        asyncpg.UniqueViolationError,
    ),
    (
        "scenario orphan study",
        f"INSERT INTO scenarios (trade_study_id, index, input_hash, inputs)"
        f" VALUES ('{ZERO}', 0, 'h', '{{}}')",
        asyncpg.ForeignKeyViolationError,
    ),
    (
        "duplicate revision name",
        "INSERT INTO revisions (project_id, name, sequence, snapshot)"
        " VALUES ($1, 'A', 0, '{}'), ($1, 'A', 0, '{}')",
        asyncpg.UniqueViolationError,
    ),
    (
        "comment bad target type",
        "INSERT INTO comments (project_id, target_type, target_id, body)"
        " VALUES ($1, 'planet', $1, 'hi')",
        asyncpg.CheckViolationError,
    ),
    (
        "comment empty body",
        "INSERT INTO comments (project_id, target_type, target_id, body)"
        " VALUES ($1, 'project', $1, '')",
        asyncpg.CheckViolationError,
    ),
    (
        "audit bad action",
        "INSERT INTO audit_log (action) VALUES ('DROP TABLE')",
        asyncpg.CheckViolationError,
    ),
    (
        "null project name",
        "INSERT INTO projects (organization_id, name) VALUES ($2, NULL)",
        asyncpg.NotNullViolationError,
    ),
]


@pytest.mark.parametrize(
    ("sql", "error"), [(s, e) for _, s, e in BAD_ROWS], ids=[d for d, _, _ in BAD_ROWS]
)
async def test_database_rejects_bad_row(
    conn: asyncpg.Connection, ids: dict[str, uuid.UUID], sql: str, error: type[Exception]
) -> None:
    args = [
        ids["project"],
        ids["org"],
        ids["comp"],
        ids["param"],
        ids["req"],
        ids["study"],
        ids["user"],
    ]
    used = [a for i, a in enumerate(args, start=1) if f"${i}" in sql]
    # Renumber placeholders so asyncpg receives only the ones the statement uses.
    for new, old in enumerate([i for i in range(1, 8) if f"${i}" in sql], start=1):
        sql = sql.replace(f"${old}", f"$__{new}")
    sql = sql.replace("$__", "$")
    # Savepoint inside raises: the error must not poison the fixture's transaction.
    with pytest.raises(error):
        async with conn.transaction():
            await conn.execute(sql, *used)


async def test_soft_deleted_key_can_be_reused(
    conn: asyncpg.Connection, ids: dict[str, uuid.UUID]
) -> None:
    await conn.execute("UPDATE components SET deleted_at = now() WHERE id = $1", ids["comp"])
    new = await conn.fetchval(
        "INSERT INTO components (project_id, tag, name) VALUES ($1, 'EPS-BAT-01', 'B2')"
        " RETURNING id",
        ids["project"],
    )
    assert new != ids["comp"]


async def test_audit_log_is_append_only(conn: asyncpg.Connection) -> None:
    row_id = await conn.fetchval(
        "INSERT INTO audit_log (action, diff) VALUES ('parameter.update', '{}') RETURNING id"
    )
    assert row_id is not None
    for statement in (
        "UPDATE audit_log SET action = 'x.y' WHERE id = $1",
        "DELETE FROM audit_log WHERE id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            async with conn.transaction():
                await conn.execute(statement, row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="TRUNCATE"):
        async with conn.transaction():
            await conn.execute("TRUNCATE audit_log")
    assert await conn.fetchval("SELECT action FROM audit_log WHERE id = $1", row_id) == (
        "parameter.update"
    )


async def test_project_delete_restricted_while_components_reference_type(
    conn: asyncpg.Connection, ids: dict[str, uuid.UUID]
) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with conn.transaction():
            await conn.execute("DELETE FROM component_types WHERE id = $1", ids["ctype"])
    # A project's hard delete cascades to everything it owns.
    await conn.execute("DELETE FROM projects WHERE id = $1", ids["project"])
    assert (
        await conn.fetchval("SELECT count(*) FROM parameters WHERE project_id = $1", ids["project"])
        == 0
    )
