"""Per-request GraphQL context: one session (one transaction), the principal, loaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.auth.principal import Principal
from app.graphql.loaders import Loaders
from app.settings import Settings


@dataclass
class Context:
    request: Request | WebSocket
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    request_id: str
    principal: Principal | None = None
    response: Any = None
    redis: Any = None
    # Set by a resolver that returned a typed error: the operation must not commit.
    rollback_only: bool = False
    _session: AsyncSession | None = None
    _visible: dict[uuid.UUID, str] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def session(self) -> AsyncSession:
        """The operation's session, opened on first use (one transaction per operation)."""
        if self._session is None:
            self._session = self.sessionmaker()
            if self.redis is not None:
                # Event publishing after commit finds the client here (app.events).
                self._session.info["redis"] = self.redis
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    async def visible_projects(self) -> dict[uuid.UUID, str]:
        """``{project_id: role}`` the caller may see; computed once per operation."""
        if self._visible is None:
            from app.auth.access import visible_projects

            self._visible = await visible_projects(self.session, principal=self.principal)
        return self._visible

    def forget_visibility(self) -> None:
        """After a mutation changed memberships, recompute on next use."""
        self._visible = None

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")
