"""Errors of project and membership services."""

from __future__ import annotations

from app.errors import DomainError, Duplicate, Forbidden, NotFound, ValidationError


class LastOwner(ValidationError):
    """The change would leave the project without an owner."""

    code = "LAST_OWNER"


__all__ = ["DomainError", "Duplicate", "Forbidden", "LastOwner", "NotFound", "ValidationError"]
