"""Connections for compiled reads, each pinned to one tenant.

A normal operation pays three extra round trips for row-level security: ``BEGIN``,
the transaction-local ``set_config`` of role and tenant, and ``COMMIT``/``ROLLBACK``.
A compiled read is one ``SELECT``: here it runs in autocommit on a connection whose
*session* already acts as the app role for that tenant. A request for the tenant a
connection was last used for (the usual case: a dashboard, an integrator) costs one
round trip; another tenant's request first re-pins a connection (one more).

Safety does not rest on this bookkeeping alone: every compiled statement checks
``current_user`` and both tenant settings against its own parameters and yields
NULL on any mismatch (:data:`app.graphql.compiled._GUARD`), which fails the request
and discards the connection. These connections never leave this module, never run
anything but compiled ``SELECT``s, and are read-only by default; one that raised or
was cancelled mid-statement is closed, never reused. (asyncpg's own pool is not used:
its release runs ``RESET ALL``, which would silently return a connection to the
table owner's role.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from app.db import APP_ROLE

_PIN_SQL = (
    "SELECT set_config('role', $1, false), set_config('threadline.org_id', $2, false),"
    " set_config('threadline.user_id', $3, false)"
)


# How these connections appear in pg_stat_activity.
APPLICATION_NAME = "threadline-compiled-reads"


@dataclass(frozen=True, slots=True)
class Pin:
    organization_id: uuid.UUID
    user_id: uuid.UUID


class _Conn:
    __slots__ = ("conn", "pin")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.pin: Pin | None = None


def connect_args(url: URL) -> dict[str, Any]:
    """asyncpg keyword arguments for a SQLAlchemy URL (TCP or a Unix socket directory)."""
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    return {
        "host": host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


class ReadPool:
    def __init__(self, url: URL, *, size: int, on_statement: Any = None) -> None:
        self._args = connect_args(url)
        self._size = size
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        # Called with (sql, params) before each statement (statement counters in tests).
        self.on_statement = on_statement

    async def _connect(self) -> _Conn:
        conn = await asyncpg.connect(
            **self._args,
            server_settings={
                "default_transaction_read_only": "on",
                "application_name": APPLICATION_NAME,
            },
        )
        return _Conn(conn)

    def _take(self, pin: Pin) -> _Conn | None:
        idle = self._idle
        for i in range(len(idle) - 1, -1, -1):
            if idle[i].pin == pin:
                return idle.pop(i)
        return idle.pop() if idle else None

    @contextlib.asynccontextmanager
    async def acquire(self, pin: Pin) -> AsyncIterator[asyncpg.Connection]:
        if self._closed:
            raise RuntimeError("read pool closed")
        async with self._slots:
            entry = self._take(pin)
            ok = False
            try:
                if entry is None or entry.conn.is_closed():
                    entry = await self._connect()
                if entry.pin != pin:
                    entry.pin = None
                    params = (APP_ROLE, str(pin.organization_id), str(pin.user_id))
                    self.announce(_PIN_SQL, params)
                    await entry.conn.fetchrow(_PIN_SQL, *params)
                    entry.pin = pin
                yield entry.conn
                ok = True
            finally:
                if entry is not None:
                    if ok and not self._closed and not entry.conn.is_closed():
                        self._idle.append(entry)
                    else:
                        # Unknown state (error, cancellation): never reuse it.
                        entry.conn.terminate()

    def announce(self, sql: str, params: tuple[Any, ...]) -> None:
        if self.on_statement is not None:
            self.on_statement(sql, params)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for entry in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(entry.conn.close(), 5)
