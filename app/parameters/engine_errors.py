"""Typed errors of the pure parameter engine (units, formulas, graph).

Every error carries a stable machine-readable ``code`` (what API clients switch on)
and a human-readable ``message``. The GraphQL layer can map them 1:1 onto error
results without knowing the engine's internals.
"""

from __future__ import annotations

from collections.abc import Sequence

# Error codes, collected here so callers can import them instead of retyping strings.
UNKNOWN_UNIT = "UNKNOWN_UNIT"
UNIT_MISMATCH = "UNIT_MISMATCH"
OFFSET_UNIT = "OFFSET_UNIT"
FORMULA_SYNTAX = "FORMULA_SYNTAX"
FORMULA_TOO_LONG = "FORMULA_TOO_LONG"
FORMULA_TOO_DEEP = "FORMULA_TOO_DEEP"
DIMENSION_MISMATCH = "DIMENSION_MISMATCH"
UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
EVALUATION_ERROR = "EVALUATION_ERROR"
CYCLE_DETECTED = "CYCLE_DETECTED"
INVALID_INPUT = "INVALID_INPUT"
INVALID_VALUE = "INVALID_VALUE"
MISSING_VALUE = "MISSING_VALUE"


class EngineError(Exception):
    """Base class: ``code`` is stable, ``message`` is for humans."""

    default_code = "ENGINE_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code: str = code or self.default_code
        self.message: str = message

    def details(self) -> dict[str, object]:
        """Extra structured fields for API error extensions (code and message included)."""
        return {"code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class UnitError(EngineError):
    """A unit string that does not parse (or is too long, or has an absurd scale)."""

    default_code = UNKNOWN_UNIT


class DimensionMismatch(EngineError):
    """A conversion between units of different dimensionality."""

    default_code = UNIT_MISMATCH


class FormulaError(EngineError):
    """A formula that does not parse; ``position`` is a 0-based character offset."""

    default_code = FORMULA_SYNTAX

    def __init__(self, message: str, position: int, code: str | None = None) -> None:
        super().__init__(message, code)
        self.position: int = position

    def details(self) -> dict[str, object]:
        return {**super().details(), "position": self.position}


class DimensionError(EngineError):
    """A formula that parses but is dimensionally inconsistent, or a bad result unit."""

    default_code = DIMENSION_MISMATCH

    def __init__(self, message: str, code: str | None = None, position: int | None = None) -> None:
        super().__init__(message, code)
        self.position: int | None = position

    def details(self) -> dict[str, object]:
        out = super().details()
        if self.position is not None:
            out["position"] = self.position
        return out


class UnknownSymbolError(EngineError):
    """A formula (or a graph edge, or an input) naming symbols that do not exist."""

    default_code = UNKNOWN_SYMBOL

    def __init__(self, message: str, symbols: Sequence[str]) -> None:
        super().__init__(message)
        self.symbols: tuple[str, ...] = tuple(sorted(set(symbols)))

    def details(self) -> dict[str, object]:
        return {**super().details(), "symbols": list(self.symbols)}


class EvaluationError(EngineError):
    """A scalar evaluation that hit an invalid operation (sqrt(-1), 1/0, overflow...)."""

    default_code = EVALUATION_ERROR

    def __init__(self, message: str, symbol: str | None = None) -> None:
        super().__init__(message)
        # The derived parameter being computed, when known (graph recompute).
        self.symbol: str | None = symbol

    def details(self) -> dict[str, object]:
        out = super().details()
        if self.symbol is not None:
            out["symbol"] = self.symbol
        return out


class CycleError(EngineError):
    """Formulas that depend on each other in a loop; ``path`` closes on its first symbol."""

    default_code = CYCLE_DETECTED

    def __init__(self, path: Sequence[str]) -> None:
        self.path: list[str] = list(path)
        super().__init__("cycle: " + " -> ".join(self.path))

    def details(self) -> dict[str, object]:
        return {**super().details(), "path": list(self.path)}
