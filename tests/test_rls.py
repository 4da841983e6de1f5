"""Defence in depth: PostgreSQL row-level security isolates tenants below the app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from tests.builders import build_thread
from tests.conftest import Demo, Factory, _asyncpg_dsn

TENANT_TABLES = [
    "projects",
    "project_members",
    "project_events",
    "component_types",
    "components",
    "connectors",
    "parameters",
    "parameter_dependencies",
    "parameter_versions",
    "requirements",
    "trace_links",
    "revisions",
    "audit_log",
    "users",
    "organizations",
]


async def _count_as(conn: asyncpg.Connection, org: uuid.UUID | None, table: str) -> int:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE threadline_app")
        if org is not None:
            await conn.execute(f"SET LOCAL threadline.org_id = '{org}'")
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def test_app_role_sees_only_its_organizations_rows(
    db_url: str, demo: Demo, factory: Factory, sessionmaker: Any
) -> None:
    other = await factory.account()
    await build_thread(sessionmaker, (await factory.project(other)).id)
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        demo_org = await conn.fetchval(
            "SELECT organization_id FROM projects WHERE id = $1", demo.project_id
        )
        total_params = await conn.fetchval("SELECT count(*) FROM parameters")
        demo_params = await conn.fetchval(
            "SELECT count(*) FROM parameters WHERE project_id = $1", demo.project_id
        )
        assert total_params > demo_params > 60  # other tenants' rows exist
        # The demo organization sees exactly its own rows, through raw SQL.
        assert await _count_as(conn, demo_org, "parameters") == await conn.fetchval(
            "SELECT count(*) FROM parameters p JOIN projects j ON j.id = p.project_id"
            " WHERE j.organization_id = $1",
            demo_org,
        )
        assert await _count_as(conn, demo_org, "organizations") == 1
        # Another organization and an unset principal see none of the demo's rows.
        for org in (other.user.organization_id, None):
            for table in TENANT_TABLES:
                async with conn.transaction():
                    await conn.execute("SET LOCAL ROLE threadline_app")
                    if org is not None:
                        await conn.execute(f"SET LOCAL threadline.org_id = '{org}'")
                    leaked = await conn.fetchval(
                        f"SELECT count(*) FROM {table} t WHERE "
                        + (
                            "t.organization_id = $1"
                            if table in ("projects", "users", "audit_log")
                            else "t.id = $1"
                            if table == "organizations"
                            else "t.parameter_id IN (SELECT id FROM parameters WHERE project_id"
                            " IN (SELECT id FROM projects WHERE organization_id = $1))"
                            if table in ("parameter_dependencies", "parameter_versions")
                            else "t.project_id IN (SELECT id FROM projects WHERE"
                            " organization_id = $1)"
                        ),
                        demo_org,
                    )
                    assert leaked == 0, (table, org)
    finally:
        await conn.close()


async def test_app_role_cannot_write_into_another_tenant_or_rewrite_audit(
    db_url: str, demo: Demo, factory: Factory
) -> None:
    other = await factory.account()
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE threadline_app")
                await conn.execute(f"SET LOCAL threadline.org_id = '{other.user.organization_id}'")
                await conn.execute(
                    "INSERT INTO parameters (project_id, symbol, name) VALUES ($1, 'x', 'x')",
                    demo.project_id,
                )
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE threadline_app")
            await conn.execute(f"SET LOCAL threadline.org_id = '{other.user.organization_id}'")
            updated = await conn.execute(
                "UPDATE parameters SET name = 'pwned' WHERE project_id = $1", demo.project_id
            )
            assert updated == "UPDATE 0"  # invisible rows cannot be touched
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE threadline_app")
                await conn.execute("DELETE FROM audit_log")
        is_bypass = await conn.fetchval(
            "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = 'threadline_app'"
        )
        assert is_bypass is False
    finally:
        await conn.close()


@asynccontextmanager
async def _as_app(conn: asyncpg.Connection, org: uuid.UUID | None) -> AsyncIterator[None]:
    """A transaction as the app role for ``org`` (as ``app.db`` sets it), always rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(
            "SELECT set_config('role', 'threadline_app', true),"
            " set_config('threadline.org_id', $1, true)",
            str(org or "00000000-0000-0000-0000-000000000000"),
        )
        yield
    finally:
        await tx.rollback()


async def test_child_rows_follow_their_parents_tenant(db_url: str, factory: Factory) -> None:
    """Edges, versions, scenarios and results have no organization of their own: their
    policies reach it through the parent parameter / trade study."""
    owner, other = await factory.account(), await factory.account()
    project = await factory.project(owner)
    await factory.project(other)
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        # Written as the connecting role (no RLS): two parameters, an edge, two
        # versions, a study with three scenarios and their results.
        p1, p2 = [
            await conn.fetchval(
                "INSERT INTO parameters (project_id, symbol, name) VALUES ($1, $2, $2)"
                " RETURNING id",
                project.id,
                symbol,
            )
            for symbol in ("a", "b")
        ]
        await conn.execute(
            "INSERT INTO parameter_dependencies (parameter_id, depends_on_id) VALUES ($1, $2)",
            p2,
            p1,
        )
        await conn.executemany(
            "INSERT INTO parameter_versions (parameter_id, version, unit, cause)"
            " VALUES ($1, 1, '', 'create')",
            [(p1,), (p2,)],
        )
        study = await conn.fetchval(
            "INSERT INTO trade_studies (project_id, name, method) VALUES ($1, 's', 'LIST')"
            " RETURNING id",
            project.id,
        )
        scenario_ids = [
            await conn.fetchval(
                "INSERT INTO scenarios (trade_study_id, index, input_hash, inputs)"
                " VALUES ($1, $2, $3, '{1.0}') RETURNING id",
                study,
                i,
                f"h{i}",
            )
            for i in range(3)
        ]
        await conn.executemany(
            "INSERT INTO scenario_results (trade_study_id, scenario_id, outputs, feasible)"
            " VALUES ($1, $2, '{2.0}', true)",
            [(study, s) for s in scenario_ids],
        )
        # table -> (rows of this test, filter, its argument, a new row's INSERT)
        tables: dict[str, tuple[int, str, Any, str, tuple[Any, ...]]] = {
            "parameter_dependencies": (
                1,
                "parameter_id = ANY($1::uuid[])",
                [p1, p2],
                "INSERT INTO parameter_dependencies (parameter_id, depends_on_id) VALUES ($1, $2)",
                (p1, p2),
            ),
            "parameter_versions": (
                2,
                "parameter_id = ANY($1::uuid[])",
                [p1, p2],
                "INSERT INTO parameter_versions (parameter_id, version, unit, cause)"
                " VALUES ($1, 2, '', 'edit')",
                (p1,),
            ),
            "scenarios": (
                3,
                "trade_study_id = $1",
                study,
                "INSERT INTO scenarios (trade_study_id, index, input_hash, inputs)"
                " VALUES ($1, 3, 'h3', '{1.0}')",
                (study,),
            ),
            "scenario_results": (
                3,
                "trade_study_id = $1",
                study,
                "INSERT INTO scenario_results (trade_study_id, scenario_id, outputs, feasible)"
                " VALUES ($1, 1099511627776, '{2.0}', false)",
                (study,),
            ),
        }
        for table, (expected, where, arg, insert, values) in tables.items():
            count = f"SELECT count(*) FROM {table} WHERE {where}"
            assert await conn.fetchval(count, arg) == expected, table
            async with _as_app(conn, owner.user.organization_id):
                assert await conn.fetchval(count, arg) == expected, table
                assert await conn.execute(insert, *values) == "INSERT 0 1", table
                assert await conn.fetchval(count, arg) == expected + 1, table
            for org in (other.user.organization_id, None):
                async with _as_app(conn, org):
                    assert await conn.fetchval(count, arg) == 0, (table, org)
                    assert await conn.execute(f"DELETE FROM {table} WHERE {where}", arg) == (
                        "DELETE 0"
                    ), (table, org)
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                    async with _as_app(conn, org):
                        await conn.execute(insert, *values)
            assert await conn.fetchval(count, arg) == expected, table
    finally:
        await conn.close()
