"""Errors of the parameter services, and the mapping of engine errors onto them.

Engine code (``app.parameters.engine_errors``)  ->  domain error (code)
    UNKNOWN_UNIT                                 ->  UnknownUnit (UNKNOWN_UNIT)
    UNIT_MISMATCH, DIMENSION_MISMATCH,
    OFFSET_UNIT                                  ->  UnitMismatch (UNIT_MISMATCH)
    FORMULA_SYNTAX, FORMULA_TOO_LONG,
    FORMULA_TOO_DEEP                             ->  FormulaError (FORMULA_ERROR)
    UNKNOWN_SYMBOL                               ->  UnknownSymbol (UNKNOWN_SYMBOL)
    EVALUATION_ERROR                             ->  EvaluationFailed (EVALUATION_ERROR)
    CYCLE_DETECTED                               ->  CycleDetected (CYCLE_DETECTED)
    anything else                                ->  ValidationError (VALIDATION_ERROR)

The engine's own code stays available as ``reason``; ``position`` is the 0-based
character offset in the formula where the engine knows it.
"""

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
from app.parameters import engine_errors as ee


class UnknownUnit(ValidationError):
    code = "UNKNOWN_UNIT"


class UnitMismatch(DomainError):
    """Dimensions do not fit: a formula's result vs. its unit, ``kg + m/s``, a rule's unit."""

    code = "UNIT_MISMATCH"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        reason: str = ee.UNIT_MISMATCH,
        position: int | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.reason = reason
        self.position = position

    def details(self) -> dict[str, Any]:
        return {**super().details(), "reason": self.reason, "position": self.position}


class FormulaError(DomainError):
    """A formula that cannot be used: syntax, limits, unknown symbols, evaluation."""

    code = "FORMULA_ERROR"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = "formula",
        reason: str = ee.FORMULA_SYNTAX,
        position: int | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.reason = reason
        self.position = position

    def details(self) -> dict[str, Any]:
        return {**super().details(), "reason": self.reason, "position": self.position}


class UnknownSymbol(FormulaError):
    code = "UNKNOWN_SYMBOL"

    def __init__(
        self, message: str, *, symbols: Sequence[str], field: str | None = "formula"
    ) -> None:
        super().__init__(message, field=field, reason=ee.UNKNOWN_SYMBOL)
        self.symbols = sorted(set(symbols))

    def details(self) -> dict[str, Any]:
        return {**super().details(), "symbols": list(self.symbols)}


class EvaluationFailed(FormulaError):
    """A formula (of ``symbol``) cannot be evaluated with the new values (sqrt(-1), 1/0...)."""

    code = "EVALUATION_ERROR"

    def __init__(self, message: str, *, symbol: str | None, field: str | None = None) -> None:
        super().__init__(message, field=field, reason=ee.EVALUATION_ERROR)
        self.symbol = symbol

    def details(self) -> dict[str, Any]:
        return {**super().details(), "symbol": self.symbol}


def from_engine_error(exc: ee.EngineError, *, field: str | None) -> DomainError:
    """The domain error for an engine error; ``field`` is the input at fault."""
    if isinstance(exc, ee.CycleError):
        return CycleDetected(exc.message, path=exc.path, field=field)
    if isinstance(exc, ee.UnknownSymbolError):
        return UnknownSymbol(exc.message, symbols=exc.symbols, field=field)
    if isinstance(exc, ee.EvaluationError):
        return EvaluationFailed(exc.message, symbol=exc.symbol, field=field)
    if isinstance(exc, ee.FormulaError):
        return FormulaError(exc.message, field=field, reason=exc.code, position=exc.position)
    if isinstance(exc, ee.DimensionError):
        return UnitMismatch(exc.message, field=field, reason=exc.code, position=exc.position)
    if isinstance(exc, ee.DimensionMismatch):
        return UnitMismatch(exc.message, field=field, reason=exc.code)
    if isinstance(exc, ee.UnitError):
        return UnknownUnit(exc.message, field=field)
    return ValidationError(exc.message, field=field)


__all__ = [
    "CycleDetected",
    "DomainError",
    "Duplicate",
    "EvaluationFailed",
    "Forbidden",
    "FormulaError",
    "HasDependents",
    "NotFound",
    "UnitMismatch",
    "UnknownSymbol",
    "UnknownUnit",
    "ValidationError",
    "VersionConflict",
    "from_engine_error",
]
