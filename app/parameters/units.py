"""Units: the process-wide pint registry and fast conversions to/from SI magnitudes.

The engine computes on plain floats / numpy arrays holding *SI base magnitudes*
(kg, m, s, K, A, rad, bit ...). Converting a value of a parameter's own unit to
SI is an affine map ``si = value * factor + offset`` (offset is non-zero only for
offset units such as degC); both numbers are computed once per unit and cached,
so converting a million-element array is one multiply.

Decisions worth knowing:

* **Decibels are plain dimensionless numbers** (factor 1). Link budgets add and
  subtract dB values (``eirp = p_tx + g_tx - l_cable``); pint's logarithmic
  decibel makes that arithmetic an error. So ``dB``, ``dBi``, ``dBW``, ``dBHz``
  and ``dBK`` are aliases of the number itself, and ``dBm`` is ``dBW`` shifted by
  -30 (an offset unit, like degC): converting 30 dBm gives 0 dBW. The price:
  ``3 dB`` converts to the *number* 3, not to the power ratio 1.995 -- use
  ``10**(x/10)`` in a formula for the ratio. ``dB/K`` would mean "per kelvin",
  so write G/T in ``dB``.
* **Offset units** (degC, degF, dBm) convert correctly as values. Inside
  formulas their values are absolute SI (kelvin, dBW), which keeps physics like
  ``sigma*T**4`` right; a formula may not *produce* an offset unit, because
  whether a result is an absolute temperature or a difference cannot be known
  (see :func:`app.parameters.formula.check_dimensions`).
* A unit string that fails to parse raises :class:`UnitError` -- never any
  pint/tokenize exception -- and its length is capped (the DB column is 64).
"""

from __future__ import annotations

import functools
import math
import pathlib
from typing import Any, TypeAlias, cast, overload

import numpy as np
import pint
from numpy.typing import NDArray

from app.parameters.engine_errors import DimensionMismatch, EngineError, UnitError

__all__ = [
    "MAX_UNIT_LENGTH",
    "DimensionMismatch",
    "EngineError",
    "Unit",
    "UnitError",
    "UnitLike",
    "convert",
    "dimensionality",
    "format_unit",
    "from_si",
    "is_offset_unit",
    "parse_unit",
    "same_dimension",
    "si_factor_offset",
    "si_unit",
    "to_si",
    "ureg",
]

MAX_UNIT_LENGTH = 64
# A unit raised to a power beyond this is a typo or an attack, not engineering.
_MAX_UNIT_EXPONENT = 64

Unit: TypeAlias = pint.Unit
UnitLike: TypeAlias = str | pint.Unit
FloatArray: TypeAlias = NDArray[np.float64]

# Replaces pint's logarithmic decibel family (see the module docstring).
_DECIBEL_DEFINITIONS = (
    "decibel = 1 = dB",
    "decibel_isotropic = decibel = dBi",
    "decibel_watt = decibel = dBW",
    "decibel_milliwatt = decibel; offset: -30 = dBm",
    "decibel_hertz = decibel = dBHz",
    "decibel_kelvin = decibel = dBK",
)


def _registry_definitions() -> list[str]:
    """pint's default definitions minus the logarithmic units, plus ours.

    Redefining units after the registry is built leaves stale entries in pint's
    caches, so the registry is built once from the edited definition text.
    """
    folder = pathlib.Path(pint.__file__).parent
    text = (folder / "default_en.txt").read_text(encoding="utf-8")
    constants = (folder / "constants_en.txt").read_text(encoding="utf-8")
    # Inlined because definitions given as lines cannot resolve relative imports.
    text = text.replace("@import constants_en.txt", constants)
    lines = [line for line in text.splitlines() if "logbase" not in line]
    lines.extend(_DECIBEL_DEFINITIONS)
    return lines


def _build_registry() -> pint.UnitRegistry[Any]:
    registry: pint.UnitRegistry[Any] = pint.UnitRegistry(
        _registry_definitions(),  # pint documents "a filename or a line iterable"
        # Quantity arithmetic outside the engine (e.g. 20 degC * 2) converts to
        # kelvin instead of raising; the engine itself never multiplies offsets.
        autoconvert_offset_to_baseunit=True,
        on_redefinition="raise",
    )
    return registry


#: The one registry of the process. Create quantities only through it.
ureg: pint.UnitRegistry[Any] = _build_registry()
pint.set_application_registry(ureg)  # type: ignore[no-untyped-call]

_DIMENSIONLESS_SPELLINGS = frozenset({"", "1", "dimensionless", "-"})


def parse_unit(text: str) -> Unit:
    """Parse a unit string (``""`` means dimensionless). Raises only :class:`UnitError`."""
    if not isinstance(text, str):
        raise UnitError(f"a unit must be a string, got {type(text).__name__}")
    if len(text) > MAX_UNIT_LENGTH:
        raise UnitError(f"unit is longer than {MAX_UNIT_LENGTH} characters")
    return _parse_unit_cached(text.strip())


@functools.lru_cache(maxsize=4096)
def _parse_unit_cached(text: str) -> Unit:
    if text in _DIMENSIONLESS_SPELLINGS:
        return ureg.dimensionless
    try:
        unit = ureg.parse_units(text)
    except Exception:  # pint raises many types (tokenize, assertion, value...)
        raise UnitError(f"unknown unit {text!r}") from None
    for raw in unit._units.values():  # pint exposes no public view of the exponents
        exponent = float(cast(float, raw))
        if not math.isfinite(exponent) or abs(exponent) > _MAX_UNIT_EXPONENT:
            raise UnitError(f"unit {text!r} has an unsupported exponent")
    try:
        factor, offset = _affine(unit)
    except Exception:
        raise UnitError(f"unit {text!r} cannot be converted to SI") from None
    if not (math.isfinite(factor) and math.isfinite(offset)) or factor == 0.0:
        raise UnitError(f"unit {text!r} has an unusable scale")
    return unit


def _as_unit(unit: UnitLike) -> Unit:
    if isinstance(unit, pint.Unit):
        return unit
    return parse_unit(unit)


def _affine(unit: Unit) -> tuple[float, float]:
    factor = float(cast(float, ureg.get_base_units(unit)[0]))
    # Quantity conversion applies the offset; 0 in the unit -> the offset in SI.
    offset = float(ureg.Quantity(0.0, unit).to_base_units().magnitude)
    return factor, offset


@functools.lru_cache(maxsize=4096)
def _affine_cached(unit: Unit) -> tuple[float, float]:
    return _affine(unit)


def si_factor_offset(unit: UnitLike) -> tuple[float, float]:
    """``(factor, offset)`` such that ``si = value * factor + offset``."""
    return _affine_cached(_as_unit(unit))


def is_offset_unit(unit: UnitLike) -> bool:
    """True for units whose zero is not SI zero (degC, degF, dBm)."""
    return si_factor_offset(unit)[1] != 0.0


@overload
def to_si(value: float, unit: UnitLike) -> float: ...
@overload
def to_si(value: FloatArray, unit: UnitLike) -> FloatArray: ...
def to_si(value: float | FloatArray, unit: UnitLike) -> float | FloatArray:
    """Magnitude in ``unit`` -> magnitude in SI base units (arrays elementwise)."""
    factor, offset = si_factor_offset(unit)
    if isinstance(value, np.ndarray):
        out: FloatArray = np.asarray(value, dtype=np.float64)
        if factor != 1.0:
            out = out * factor
        if offset != 0.0:
            out = out + offset
        return out
    return float(value) * factor + offset


@overload
def from_si(value: float, unit: UnitLike) -> float: ...
@overload
def from_si(value: FloatArray, unit: UnitLike) -> FloatArray: ...
def from_si(value: float | FloatArray, unit: UnitLike) -> float | FloatArray:
    """Magnitude in SI base units -> magnitude in ``unit`` (arrays elementwise)."""
    factor, offset = si_factor_offset(unit)
    if isinstance(value, np.ndarray):
        out: FloatArray = np.asarray(value, dtype=np.float64)
        if offset != 0.0:
            out = out - offset
        if factor != 1.0:
            # Division, not multiplication by 1/factor: 120 s -> exactly 2 min.
            out = out / factor
        return out
    return (float(value) - offset) / factor


def dimensionality(unit: UnitLike) -> str:
    """Readable dimensionality, e.g. ``[mass]``, ``[length] / [time]``, ``dimensionless``."""
    return str(_as_unit(unit).dimensionality)


def same_dimension(a: UnitLike, b: UnitLike) -> bool:
    """Whether values in ``a`` can be converted to ``b``."""
    return bool(_as_unit(a).dimensionality == _as_unit(b).dimensionality)


@overload
def convert(value: float, from_unit: UnitLike, to_unit: UnitLike) -> float: ...
@overload
def convert(value: FloatArray, from_unit: UnitLike, to_unit: UnitLike) -> FloatArray: ...
def convert(
    value: float | FloatArray, from_unit: UnitLike, to_unit: UnitLike
) -> float | FloatArray:
    """Convert a magnitude between units of the same dimensionality."""
    src, dst = _as_unit(from_unit), _as_unit(to_unit)
    if src.dimensionality != dst.dimensionality:
        raise DimensionMismatch(
            f"cannot convert {_label(from_unit)} ({src.dimensionality}) "
            f"to {_label(to_unit)} ({dst.dimensionality})"
        )
    if src == dst:
        return np.array(value, dtype=np.float64) if isinstance(value, np.ndarray) else float(value)
    return from_si(to_si(value, src), dst)


def _label(unit: UnitLike) -> str:
    return repr(unit) if isinstance(unit, str) else repr(format_unit(unit))


def si_unit(unit: UnitLike) -> str:
    """The SI base unit that engine magnitudes of ``unit`` are in (``""`` if dimensionless)."""
    base = ureg.get_base_units(_as_unit(unit))[1]
    return format_unit(cast(Unit, base))


def format_unit(unit: UnitLike) -> str:
    """Compact, parseable spelling: ``kg*m**2/s**3``, ``km/s``; ``""`` for dimensionless."""
    parsed = _as_unit(unit)
    if not parsed._units:
        return ""
    return format(parsed, "~C")
