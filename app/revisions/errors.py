"""Errors of the revision (baseline) services."""

from __future__ import annotations

from app.errors import DomainError, Duplicate, Forbidden, NotFound, ValidationError

__all__ = ["DomainError", "Duplicate", "Forbidden", "NotFound", "ValidationError"]
