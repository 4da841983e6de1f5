"""Trade-study domain errors (see :mod:`app.errors` for the common ones).

The GraphQL layer shows each as a typed ``ValidationError`` (or ``NotFoundError``)
carrying the code below, so clients can switch on ``code``.
"""

from __future__ import annotations

from app.errors import DomainError, NotFound, ValidationError

__all__ = [
    "DesignTooLarge",
    "InvalidState",
    "ModelError",
    "NotFound",
    "ValidationError",
]


class DesignTooLarge(ValidationError):
    """The design (grid, sample count, list) exceeds the per-study cap."""

    code = "DESIGN_TOO_LARGE"


class InvalidState(DomainError):
    """The study's status does not allow this (e.g. editing a running study)."""

    code = "INVALID_STATE"

    def __init__(self, message: str, *, status: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status

    def details(self) -> dict[str, object]:
        return {**super().details(), "status": self.status}


class ModelError(ValidationError):
    """The frozen model cannot be evaluated (missing value, formula error...)."""

    code = "MODEL_ERROR"
