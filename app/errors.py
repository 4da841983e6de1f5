"""Domain errors: the expected failures of services, shared by every domain.

A service raises a :class:`DomainError` and changes nothing that survives: the caller
owns the transaction and rolls it back. Each class has a stable ``code`` that API
clients switch on, a human ``message`` and, when one input is at fault, ``field``
(the dotted path of the input field in GraphQL spelling, e.g. ``rule.thresholdHigh``
or ``items.3.value``). Domains subclass these in their own ``errors.py`` and add
typed attributes (``VersionConflict.current_version``, ``CycleDetected.path``...).
:meth:`DomainError.details` gives those attributes as plain JSON-able data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def details(self) -> dict[str, Any]:
        """``code``, ``message``, ``field`` and the subclass's extra attributes."""
        return {"code": self.code, "message": self.message, "field": self.field}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotFound(DomainError):
    """The object does not exist, was deleted, or the caller may not see it."""

    code = "NOT_FOUND"


class Forbidden(DomainError):
    """The caller sees the object but its role (or token scope) does not allow this."""

    code = "FORBIDDEN"


class ValidationError(DomainError):
    code = "VALIDATION_ERROR"


class Duplicate(DomainError):
    """A natural key (name, tag, key, symbol...) is already taken by a live object."""

    code = "DUPLICATE"


class VersionConflict(DomainError):
    """``expected_version`` is stale: someone changed the object first."""

    code = "VERSION_CONFLICT"

    def __init__(
        self,
        message: str,
        *,
        current_version: int,
        current_value: Any = None,
        field: str | None = "expectedVersion",
    ) -> None:
        super().__init__(message, field=field)
        self.current_version = current_version
        self.current_value = current_value

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "current_version": self.current_version,
            "current_value": self.current_value,
        }


class CycleDetected(DomainError):
    """A change would close a loop (formulas, component or requirement tree).

    ``path`` names the loop and closes on its first element: ``["a", "b", "a"]``.
    """

    code = "CYCLE_DETECTED"

    def __init__(self, message: str, *, path: Sequence[str], field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.path = list(path)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "path": list(self.path)}


class HasDependents(DomainError):
    """Deleting (or demoting) the object would orphan others; they are listed."""

    code = "HAS_DEPENDENTS"

    def __init__(
        self,
        message: str,
        *,
        dependents: Sequence[str] = (),
        requirements: Sequence[str] = (),
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        # Natural keys: parameter symbols / component tags / requirement keys.
        self.dependents = list(dependents)
        self.requirements = list(requirements)

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "dependents": list(self.dependents),
            "requirements": list(self.requirements),
        }
