"""The authenticated caller, resolved once per request from its bearer token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    is_admin: bool
    token_id: uuid.UUID
    scopes: frozenset[str] = field(default_factory=lambda: frozenset({"read", "write"}))

    @property
    def can_write(self) -> bool:
        return "write" in self.scopes
