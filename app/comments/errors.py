"""Errors of the comment services."""

from __future__ import annotations

from app.errors import DomainError, Forbidden, NotFound, ValidationError

__all__ = ["DomainError", "Forbidden", "NotFound", "ValidationError"]
