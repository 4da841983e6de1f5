"""Units: parsing, SI conversion, dB and offset-unit policy (pure, no services)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.parameters.engine_errors import EngineError
from app.parameters.units import (
    MAX_UNIT_LENGTH,
    DimensionMismatch,
    UnitError,
    convert,
    dimensionality,
    format_unit,
    from_si,
    is_offset_unit,
    parse_unit,
    same_dimension,
    si_factor_offset,
    si_unit,
    to_si,
    ureg,
)

COMMON_UNITS = [
    "kg",
    "g",
    "m",
    "km",
    "m/s",
    "s",
    "W",
    "Wh",
    "W*h",
    "A*h",
    "V",
    "Hz",
    "MHz",
    "GHz",
    "bit/s",
    "Mbit/s",
    "K",
    "degC",
    "%",
    "dimensionless",
    "",
    "deg",
    "rad",
    "m^2",
    "km^3/s^2",
    "min",
    "dB",
    "dBi",
    "dBW",
    "dBm",
    "dBHz",
]


@pytest.mark.parametrize("text", COMMON_UNITS)
def test_common_engineering_units_parse(text: str) -> None:
    unit = parse_unit(text)
    assert isinstance(unit, ureg.Unit)
    # Whatever parses also has a usable SI conversion and round-trips a value.
    assert math.isclose(from_si(to_si(12.5, text), text), 12.5, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("value", "unit", "si"),
    [
        (1.0, "km", 1000.0),
        (250.0, "g", 0.25),
        (1.0, "W*h", 3600.0),
        (1.0, "Wh", 3600.0),
        (2.0, "A*h", 7200.0),
        (8.2, "GHz", 8.2e9),
        (50.0, "Mbit/s", 5e7),
        (398600.4418, "km^3/s^2", 398600.4418e9),
        (95.5, "min", 5730.0),
        (10.0, "%", 0.1),
        (180.0, "deg", math.pi),
        (20.0, "degC", 293.15),
        (3.0, "dB", 3.0),
    ],
)
def test_to_si(value: float, unit: str, si: float) -> None:
    assert math.isclose(to_si(value, unit), si, rel_tol=1e-12)
    assert math.isclose(from_si(si, unit), value, rel_tol=1e-12)


def test_arrays_convert_elementwise() -> None:
    values = np.array([0.0, 20.0, 100.0])
    np.testing.assert_allclose(to_si(values, "degC"), [273.15, 293.15, 373.15])
    np.testing.assert_allclose(from_si(to_si(values, "degC"), "degC"), values)
    np.testing.assert_allclose(convert(np.array([1.0, 2.5]), "km", "m"), [1000.0, 2500.0])


@pytest.mark.parametrize("text", ["dB", "dBi", "dBW", "dBHz", "dBK"])
def test_decibels_are_additive_dimensionless_numbers(text: str) -> None:
    assert parse_unit(text).dimensionless
    assert si_factor_offset(text) == (1.0, 0.0)
    assert same_dimension(text, "dB")


def test_dbm_is_dbw_shifted_by_30() -> None:
    assert convert(30.0, "dBm", "dBW") == 0.0
    assert convert(-3.0, "dBW", "dBm") == 27.0
    assert is_offset_unit("dBm")


def test_offset_units() -> None:
    assert is_offset_unit("degC")
    assert not is_offset_unit("K")
    assert not is_offset_unit("degC/m")  # a gradient is a plain multiplicative unit
    assert math.isclose(convert(100.0, "degC", "degF"), 212.0, rel_tol=1e-12)
    assert si_unit("degC") == "K"


def test_convert_and_mismatch() -> None:
    assert convert(1.0, "km", "m") == 1000.0
    assert convert(2.0, "W*h", "J") == 7200.0
    assert convert(120.0, "s", "min") == 2.0
    assert convert(0.2, "", "%") == pytest.approx(20.0)
    with pytest.raises(DimensionMismatch) as info:
        convert(1.0, "kg", "m/s")
    assert info.value.code == "UNIT_MISMATCH"
    assert "[mass]" in info.value.message
    assert "[length] / [time]" in info.value.message
    assert isinstance(info.value, EngineError)


def test_same_dimension_and_names() -> None:
    assert same_dimension("W*h", "J")
    assert same_dimension("Mbit/s", "Hz")  # bit is dimensionless in pint
    assert not same_dimension("kg", "g*m")
    assert dimensionality("m/s") == "[length] / [time]"
    assert dimensionality("%") == "dimensionless"
    assert si_unit("km^3/s^2") == "m**3/s**2"
    assert si_unit("W*h") == "kg*m**2/s**2"
    assert si_unit("%") == ""
    assert si_unit("deg") == "rad"
    assert format_unit("") == ""
    assert format_unit("km/s") == "km/s"


@pytest.mark.parametrize(
    "text",
    [
        "foo",
        "kg m)",
        "m**m",
        "\x00",
        "1000 m",
        "2",
        "-m",
        "import os",
        "__import__('os')",
        "m**1e400",
        "km**200",
        "x" * (MAX_UNIT_LENGTH + 1),
    ],
)
def test_bad_units_raise_unit_error_only(text: str) -> None:
    with pytest.raises(UnitError) as info:
        parse_unit(text)
    assert info.value.code == "UNKNOWN_UNIT"


def test_non_string_unit() -> None:
    with pytest.raises(UnitError):
        parse_unit(5)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=40))
def test_random_unit_strings_raise_only_unit_error(text: str) -> None:
    try:
        unit = parse_unit(text)
    except UnitError as exc:
        assert exc.code == "UNKNOWN_UNIT"
    else:
        factor, offset = si_factor_offset(unit)
        assert math.isfinite(factor) and factor != 0.0 and math.isfinite(offset)
