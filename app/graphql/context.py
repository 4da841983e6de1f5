"""Per-request GraphQL context: one session (one transaction), the principal, loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket

from app.auth.principal import Principal
from app.settings import Settings


@dataclass
class Context:
    request: Request | WebSocket
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    request_id: str
    principal: Principal | None = None
    response: Any = None
    loaders: dict[str, Any] = field(default_factory=dict)
    # Set by a resolver that returned a typed error: the operation must not commit.
    rollback_only: bool = False
    _session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The operation's session, opened on first use (one transaction per operation)."""
        if self._session is None:
            self._session = self.sessionmaker()
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def client_ip(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def user_agent(self) -> str | None:
        return self.request.headers.get("user-agent")
