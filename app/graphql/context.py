"""Per-request GraphQL context: one session (one transaction), the principal, loaders."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.auth.principal import Principal
from app.graphql.loaders import Loaders
from app.settings import Settings


@dataclass
class OperationState:
    """Session, loaders and visibility of one unit of work inside a long-lived
    connection: each subscription event gets fresh ones, so nothing is stale.

    The session is opened on first use: most events resolve from their payload alone
    (or from a result shared with other subscribers) and never touch the database.
    """

    factory: Callable[[], AsyncSession]
    loaders: Any = None
    visible: dict[uuid.UUID, str] | None = None
    _session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.factory()
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


# Set by subscription generators before yielding an event; contextvars follow the
# consumer task (and tasks it spawns), so every resolver of that event sees it.
current_operation: ContextVar[OperationState | None] = ContextVar("current_operation", default=None)


@dataclass
class Context:
    request: Request | WebSocket
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    request_id: str
    principal: Principal | None = None
    response: Any = None
    redis: Any = None
    hub: Any = None
    connection_params: Any = None
    # Active subscriptions on this WebSocket connection (capped).
    subscriptions: int = 0
    # Set by a resolver that returned a typed error: the operation must not commit.
    rollback_only: bool = False
    _session: AsyncSession | None = None
    _visible: dict[uuid.UUID, str] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def session(self) -> AsyncSession:
        """The operation's session, opened on first use (one transaction per operation)."""
        op = current_operation.get()
        if op is not None:
            return op.session
        if self._session is None:
            self._session = self.new_session()
            if self.redis is not None:
                # Event publishing after commit finds the client here (app.events).
                self._session.info["redis"] = self.redis
        return self._session

    def new_session(self) -> AsyncSession:
        """A session bound to the caller's tenant by row-level security."""
        from app.db import ANONYMOUS, Tenant, restrict_to

        session = self.sessionmaker()
        p = self.principal
        restrict_to(session, Tenant(p.organization_id, p.user_id) if p else ANONYMOUS)
        return session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def loaders(self) -> Loaders:
        op = current_operation.get()
        if op is not None:
            if op.loaders is None:
                op.loaders = Loaders(self)
            return op.loaders  # type: ignore[no-any-return]
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    async def visible_projects(self) -> dict[uuid.UUID, str]:
        """``{project_id: role}`` the caller may see; computed once per operation."""
        from app.auth.access import visible_projects

        op = current_operation.get()
        if op is not None:
            if op.visible is None:
                op.visible = await visible_projects(op.session, principal=self.principal)
            return op.visible
        if self._visible is None:
            self._visible = await visible_projects(self.session, principal=self.principal)
        return self._visible

    def reset_operation(self) -> None:
        self._session = None
        self._loaders = None
        self._visible = None

    def forget_visibility(self) -> None:
        """After a mutation changed memberships, recompute on next use."""
        self._visible = None

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")
