"""Database engine, sessions, declarative base and after-commit hooks.

One transaction per GraphQL operation or actor message: the caller owns the
session and commits; services only ``flush``. Work that must happen only once the
transaction is durable (publishing events to Redis) is registered with
:func:`after_commit` and run by :func:`run_after_commit` after a successful commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, MetaData, event, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UUIDPk:
    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class SoftDelete:
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def one_of(column: str, values: Iterable[str], name: str) -> CheckConstraint:
    """CHECK that a text column holds one of ``values`` (enums live in the database too)."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, **kw: Any) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        **kw,
    )


# --- row-level security ------------------------------------------------------------

APP_ROLE = "threadline_app"
_NO_TENANT = "00000000-0000-0000-0000-000000000000"
_RLS_SQL = text(
    "SELECT set_config('role', :role, true), set_config('threadline.org_id', :org, true),"
    " set_config('threadline.user_id', :user, true)"
)


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose rows a session may touch; ``None`` ids = nobody's (anonymous)."""

    organization_id: uuid.UUID | None
    user_id: uuid.UUID | None


ANONYMOUS = Tenant(None, None)


def restrict_to(session: AsyncSession, tenant: Tenant) -> None:
    """Run this session's transactions as the RLS-bound app role for ``tenant``.

    Sessions without a tenant (token lookup, login, migrations, the live hub, CLI)
    run as the connecting role.
    """
    session.info["tenant"] = tenant


@event.listens_for(Session, "after_begin")
def _apply_tenant(session: Session, transaction: Any, connection: Any) -> None:
    tenant: Tenant | None = session.info.get("tenant")
    if tenant is None:
        return
    # One round trip: SET LOCAL ROLE plus the principal, all transaction-scoped.
    connection.execute(
        _RLS_SQL,
        {
            "role": APP_ROLE,
            "org": str(tenant.organization_id or _NO_TENANT),
            "user": str(tenant.user_id or _NO_TENANT),
        },
    )


class _TaskLock:
    """A lock the holding task may re-enter (``scalars`` calls ``execute``)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


class SerialSession(AsyncSession):
    """An AsyncSession that queues concurrent use instead of failing.

    GraphQL resolves sibling fields concurrently and their DataLoaders dispatch in
    the same tick; one operation has one transaction on one connection, so their
    statements must take turns.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serial = _TaskLock()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._serial.hold():
            return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._serial.hold():
            return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._serial.hold():
            return await super().get(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._serial.hold():
            await super().flush(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        async with self._serial.hold():
            await super().refresh(*args, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit for the response.
    return async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False, autoflush=False)


AfterCommit = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run ``hook`` after this session's transaction commits (dropped on rollback)."""
    session.info.setdefault("after_commit", []).append(hook)


async def run_after_commit(session: AsyncSession) -> None:
    hooks: list[AfterCommit] = session.info.pop("after_commit", [])
    for hook in hooks:
        await hook()


def discard_after_commit(session: AsyncSession) -> None:
    session.info.pop("after_commit", None)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success then run after-commit hooks; roll back on error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            discard_after_commit(session)
            await session.rollback()
            raise
        await run_after_commit(session)
