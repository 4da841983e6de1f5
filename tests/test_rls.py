"""Defence in depth: PostgreSQL row-level security isolates tenants below the app."""

from __future__ import annotations

import uuid
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
