"""The zero-config default: embedded PostgreSQL and Redis keep data across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import redis

from app.embedded import EmbeddedRedis, pid_alive, start_embedded
from tests.conftest import _asyncpg_dsn


async def _pg_roundtrip(url: str, write: bool) -> list[str]:
    conn = await asyncpg.connect(**_asyncpg_dsn(url))
    try:
        if write:
            await conn.execute("CREATE TABLE kept (v text)")
            await conn.execute("INSERT INTO kept VALUES ('survives restart')")
        return [r["v"] for r in await conn.fetch("SELECT v FROM kept")]
    finally:
        await conn.close()


async def test_embedded_services_restart_with_data_kept(tmp_path: Path) -> None:
    services = await asyncio.to_thread(
        start_embedded, tmp_path / "data", database_url=None, redis_url=None
    )
    assert services.database_url is not None and services.redis_url is not None
    assert services.database_url.startswith("postgresql+asyncpg://")
    assert services.redis_url.startswith("unix://")
    assert await _pg_roundtrip(services.database_url, write=True) == ["survives restart"]
    r = redis.Redis.from_url(services.redis_url)
    r.set("kept", "yes")
    r.close()
    assert services.redis is not None and services.postgres is not None
    redis_pid = int(services.redis.pidfile.read_text())
    pg_pid = services.postgres._server.get_pid()

    await asyncio.to_thread(services.stop)
    for pid in (redis_pid, pg_pid):
        assert not pid_alive(pid), f"process {pid} still running after stop()"

    again = await asyncio.to_thread(
        start_embedded, tmp_path / "data", database_url=None, redis_url=None
    )
    try:
        assert again.database_url is not None and again.redis_url is not None
        assert await _pg_roundtrip(again.database_url, write=False) == ["survives restart"]
        r = redis.Redis.from_url(again.redis_url)
        assert r.get("kept") == b"yes"
        r.close()
    finally:
        await asyncio.to_thread(again.stop)


def test_configured_urls_start_nothing(tmp_path: Path) -> None:
    services = start_embedded(
        tmp_path / "unused", database_url="postgresql+asyncpg://h/db", redis_url="redis://h:1/0"
    )
    assert services.postgres is None and services.redis is None
    assert services.database_url == "postgresql+asyncpg://h/db"
    assert not (tmp_path / "unused").exists()


def test_long_data_dir_gets_short_redis_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    r = EmbeddedRedis(deep)
    assert len(str(r.socket)) <= 100
    assert r.url().startswith("unix://")
