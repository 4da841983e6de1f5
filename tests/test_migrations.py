"""Alembic is the only way a schema is made: round trip and model agreement."""

from __future__ import annotations

import asyncio

import asyncpg

from app import migrate
from app.models import Base
from tests.conftest import ScratchDatabases, _asyncpg_dsn


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(**_asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_downgrade_upgrade_and_models_agree(scratch_dbs: ScratchDatabases) -> None:
    url = await scratch_dbs.create()
    expected = set(Base.metadata.tables)
    assert len(expected) == 23

    await asyncio.to_thread(migrate.upgrade, url)
    assert await _tables(url) == expected
    await asyncio.to_thread(migrate.check, url)  # raises if models and migrations differ

    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) == set()

    await asyncio.to_thread(migrate.upgrade, url)
    assert await _tables(url) == expected
    await asyncio.to_thread(migrate.check, url)


async def test_every_foreign_key_is_indexed(db_url: str) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        # FK columns not covered as the leading column of some index.
        rows = await conn.fetch(
            """
            SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f'
              AND NOT EXISTS (
                SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
            """
        )
    finally:
        await conn.close()
    assert [(r["tbl"], r["col"]) for r in rows] == []
