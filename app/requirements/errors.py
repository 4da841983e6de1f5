"""Errors of the requirement and trace-link services."""

from __future__ import annotations

from app.errors import (
    CycleDetected,
    DomainError,
    Duplicate,
    Forbidden,
    HasDependents,
    NotFound,
    ValidationError,
    VersionConflict,
)
from app.parameters.errors import UnitMismatch, UnknownUnit

__all__ = [
    "CycleDetected",
    "DomainError",
    "Duplicate",
    "Forbidden",
    "HasDependents",
    "NotFound",
    "UnitMismatch",
    "UnknownUnit",
    "ValidationError",
    "VersionConflict",
]
