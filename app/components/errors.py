"""Errors of the component, component type and connector services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class PortNotFound(DomainError):
    """A connector names a port that the component's type does not offer."""

    code = "PORT_NOT_FOUND"

    def __init__(
        self,
        message: str,
        *,
        component: str,
        port: str,
        available: Sequence[str],
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.component = component  # tag
        self.port = port
        self.available = list(available)

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "component": self.component,
            "port": self.port,
            "available": list(self.available),
        }


__all__ = [
    "CycleDetected",
    "DomainError",
    "Duplicate",
    "Forbidden",
    "HasDependents",
    "NotFound",
    "PortNotFound",
    "ValidationError",
    "VersionConflict",
]
