"""Formula language: parsing, limits, hostile input, dimensions and evaluation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.parameters.engine_errors import EngineError, UnknownSymbolError
from app.parameters.formula import (
    MAX_DEPTH,
    MAX_FORMULA_LENGTH,
    Binary,
    Call,
    Constant,
    DimensionError,
    EvaluationError,
    Formula,
    FormulaError,
    Node,
    Number,
    Symbol,
    Unary,
    check_dimensions,
    evaluate,
    infer_unit,
    is_valid_symbol,
    parse,
    rename_symbols,
    unparse,
)
from app.parameters.units import same_dimension

NO_DB = settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ev(text: str, **values: float) -> float:
    result = evaluate(parse(text), values)
    assert isinstance(result, float)
    return result


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),  # left-associative
        ("64 / 4 / 2", 8.0),
        ("2 ** 3 ** 2", 512.0),  # right-associative
        ("2 ^ 3 ^ 2", 512.0),
        ("-2 ** 2", -4.0),  # ** binds tighter than unary minus
        ("(-2) ** 2", 4.0),
        ("2 ** -1", 0.5),
        ("-3 * -2", 6.0),
        ("+4 - -1", 5.0),
        ("--3", 3.0),
        ("2 * 3 ** 2", 18.0),
        ("1e-3 * 1E3", 1.0),
        (".5 + 2.", 2.5),
        ("1.5e+2", 150.0),
    ],
)
def test_precedence_and_associativity(text: str, expected: float) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqrt(16)", 4.0),
        ("exp(0)", 1.0),
        ("log(e)", 1.0),
        ("log10(1000)", 3.0),
        ("sin(pi/2)", 1.0),
        ("cos(0)", 1.0),
        ("tan(pi/4)", math.tan(math.pi / 4)),
        ("asin(1)", math.pi / 2),
        ("acos(1)", 0.0),
        ("atan(1)", math.pi / 4),
        ("atan2(1, -1)", 3 * math.pi / 4),
        ("abs(-2.5)", 2.5),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2, 7)", 7.0),
        ("min(4, 5)", 4.0),
        ("pi", math.pi),
        ("e", math.e),
        ("g0", 9.80665),
    ],
)
def test_every_function_and_constant(text: str, expected: float) -> None:
    assert ev(text) == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_tree_shape_and_symbols() -> None:
    formula = parse("m_dry*(exp(dv/(isp*g0)) - 1)")
    assert isinstance(formula, Formula)
    assert formula.symbols == frozenset({"m_dry", "dv", "isp"})  # g0 is a constant
    assert formula.root == Binary(
        "*",
        Symbol("m_dry"),
        Binary(
            "-",
            Call("exp", (Binary("/", Symbol("dv"), Binary("*", Symbol("isp"), Constant("g0"))),)),
            Number(1.0),
        ),
    )
    assert parse("-2**2").root == Unary("-", Binary("**", Number(2.0), Number(2.0)))
    assert parse("2^3").root == parse("2**3").root


def test_symbols_are_evaluated() -> None:
    assert ev("a * b + c", a=2.0, b=3.0, c=1.0) == 7.0
    assert ev("lambda_ * 2", lambda_=4.0) == 8.0


def test_valid_symbol_names() -> None:
    assert is_valid_symbol("m_dry")
    assert is_valid_symbol("_x1")
    for bad in ("pi", "e", "g0", "sqrt", "min", "1a", "a-b", "", "a" * 65, "é"):
        assert not is_valid_symbol(bad)


def test_rename_symbols() -> None:
    renamed = rename_symbols(parse("m_a + 2*m_b"), {"m_a": "mass_a"})
    assert renamed.symbols == frozenset({"mass_a", "m_b"})
    assert renamed.text == "mass_a + 2.0 * m_b"
    with pytest.raises(FormulaError):
        rename_symbols(parse("x"), {"x": "pi"})


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("(a + b))", 7, "unexpected ')' at position 7"),
        ("a +", 3, "unexpected end of formula at position 3"),
        ("(a + b", 6, "expected ')' but found end of formula at position 6"),
        ("a b", 2, "unexpected 'b' at position 2"),
        ("2x", 1, "unexpected 'x' at position 1"),
        ("a * * b", 4, "unexpected '*' at position 4"),
        ("a.b", 1, "unexpected character '.' at position 1"),
        ("", 0, "empty formula"),
        ("   ", 0, "empty formula"),
        ("sqrt + 1", 0, "function 'sqrt' must be called"),
        ("pi(2)", 0, "'pi' is a constant, not a function"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("1 + atan2(1)", 4, "atan2() takes 2 arguments, got 1"),
        ("min(1)", 0, "min() takes at least 2 arguments, got 1"),
        ("sqrt(1, 2)", 0, "sqrt() takes 1 argument, got 2"),
        ("sqrt()", 0, "sqrt() takes 1 argument, got 0"),
        ("f(1,)", 0, "unknown function 'f'"),
        ("max(1,)", 6, "unexpected ')' at position 6"),
        ("1e999", 0, "out of range"),
        ("1,2", 1, "unexpected ','"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse(text)
    assert info.value.code == "FORMULA_SYNTAX"
    assert info.value.position == position
    assert fragment in info.value.message
    assert isinstance(info.value, EngineError)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('ls')",
        "a.b",
        "lambda x: x",
        "[1]",
        "'str'",
        '"str"',
        "a; b",
        "a if b else c",
        "a == b",
        "a = 1",
        "{1: 2}",
        "x[0]",
        "a @ b",
        "a % b",
        "not a",
        "a & b",
        "`a`",
        "$a",
        "1_000",
        "0x10",
        "a\\\nb",
        "\u00e9t\u00e9",
        "a\u2003+ b",  # unicode whitespace is not whitespace here
    ],
)
def test_malicious_or_foreign_input_is_a_syntax_error(text: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse(text)
    assert info.value.code == "FORMULA_SYNTAX"
    assert 0 <= info.value.position <= len(text)


def test_length_limit() -> None:
    huge = "1+" * 50_000 + "1"  # ~100 kB
    with pytest.raises(FormulaError) as info:
        parse(huge)
    assert info.value.code == "FORMULA_TOO_LONG"
    assert info.value.position == MAX_FORMULA_LENGTH
    assert parse("1" + " " * (MAX_FORMULA_LENGTH - 1))  # exactly at the limit is fine


def test_token_limit() -> None:
    with pytest.raises(FormulaError) as info:
        parse("+".join(["a"] * 300))  # 599 tokens in 599 characters
    assert info.value.code == "FORMULA_TOO_LONG"
    assert parse("+".join(["a"] * 250)).symbols == {"a"}


def test_deep_nesting_is_rejected_before_recursion_fails() -> None:
    with pytest.raises(FormulaError) as info:
        parse("(" * 10_000 + "1" + ")" * 10_000)
    assert info.value.code == "FORMULA_TOO_LONG"  # 20 kB: the length check comes first
    for text in (
        "(" * 100 + "1" + ")" * 100,
        "-" * 100 + "1",
        "sqrt(" * 100 + "1" + ")" * 100,
        "2**" * 100 + "2",
    ):
        with pytest.raises(FormulaError) as info:
            parse(text)
        assert info.value.code == "FORMULA_TOO_DEEP", text
        assert f"{MAX_DEPTH} levels" in info.value.message
    assert ev("(" * 60 + "1" + ")" * 60) == 1.0


def test_long_flat_chains_are_fine() -> None:
    # 250 terms: deep as a tree, flat as syntax; walks and evaluation cope.
    formula = parse(" + ".join(f"m{i}" for i in range(250)))
    values = {f"m{i}": 1.0 for i in range(250)}
    assert evaluate(formula, values) == 250.0
    assert same_dimension(infer_unit(formula, dict.fromkeys(values, "kg")), "kg")


def test_non_string_input() -> None:
    with pytest.raises(FormulaError):
        parse(None)  # type: ignore[arg-type]
    with pytest.raises(FormulaError):
        parse(b"1+1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dimensions

UNITS = {
    "m_dry": "kg",
    "m_wet": "kg",
    "dv": "m/s",
    "isp": "s",
    "a": "km",
    "mu": "km^3/s^2",
    "h": "km",
    "x": "",
    "pct": "%",
    "theta": "deg",
    "t_c": "degC",
    "t_c2": "degC",
    "p_db": "dB",
    "g_db": "dBi",
}


def dim_error(text: str, target: str = "") -> DimensionError:
    with pytest.raises(DimensionError) as info:
        check_dimensions(parse(text), UNITS, target)
    return info.value


def test_inferred_units() -> None:
    assert same_dimension(infer_unit(parse("m_dry*(exp(dv/(isp*g0)) - 1)"), UNITS), "kg")
    assert same_dimension(infer_unit(parse("2*pi*sqrt(a**3/mu)"), UNITS), "min")
    assert same_dimension(infer_unit(parse("dv/g0"), UNITS), "s")
    assert same_dimension(infer_unit(parse("a**1.5"), UNITS), "m*m**0.5")
    assert infer_unit(parse("asin(h/a)/pi"), UNITS).dimensionless
    assert infer_unit(parse("sin(theta) + pct + x**pct"), UNITS).dimensionless
    assert infer_unit(parse("p_db + g_db - 3"), UNITS).dimensionless
    assert same_dimension(infer_unit(parse("min(m_dry, m_wet) + abs(m_dry)"), UNITS), "g")
    assert infer_unit(parse("atan2(a, h)"), UNITS).dimensionless
    assert same_dimension(check_dimensions(parse("t_c - t_c2"), UNITS, "K"), "K")
    assert same_dimension(check_dimensions(parse("m_dry + m_wet"), UNITS, "g"), "kg")


def test_adding_mass_and_velocity_is_rejected() -> None:
    error = dim_error("m_dry + dv", "kg")
    assert error.code == "DIMENSION_MISMATCH"
    assert error.position == 6
    assert "[mass]" in error.message and "[length] / [time]" in error.message
    assert "position 6" in error.message


def test_dimensionless_functions() -> None:
    error = dim_error("1 + exp(m_dry)")
    assert error.code == "DIMENSION_MISMATCH"
    assert error.message == "exp() needs a dimensionless argument, got [mass] at position 4"
    assert error.position == 4
    for func in ("log", "log10", "sin", "cos", "tan", "asin", "acos", "atan"):
        assert dim_error(f"{func}(dv)").code == "DIMENSION_MISMATCH"


@pytest.mark.parametrize(
    "text",
    ["min(m_dry, dv)", "max(m_dry, m_wet, isp)", "atan2(a, isp)", "m_dry - isp", "x**dv"],
)
def test_other_dimension_mismatches(text: str) -> None:
    assert dim_error(text).code == "DIMENSION_MISMATCH"


def test_dimensional_base_needs_constant_exponent() -> None:
    error = dim_error("a**x", "km")
    assert error.code == "DIMENSION_MISMATCH"
    assert "constant" in error.message
    assert infer_unit(parse("x**x"), UNITS).dimensionless  # a dimensionless base is fine
    assert same_dimension(check_dimensions(parse("a**(1+1)"), UNITS, "m^2"), "m^2")


def test_result_unit_mismatch() -> None:
    error = dim_error("m_dry * 2", "m")
    assert error.code == "UNIT_MISMATCH"
    assert "[mass]" in error.message and "[length]" in error.message
    assert dim_error("dv", "km").code == "UNIT_MISMATCH"


def test_offset_result_unit_rejected() -> None:
    assert dim_error("t_c * 1", "degC").code == "OFFSET_UNIT"


def test_unknown_symbols_are_listed() -> None:
    with pytest.raises(UnknownSymbolError) as info:
        infer_unit(parse("zeta + m_dry + alpha"), UNITS)
    assert info.value.code == "UNKNOWN_SYMBOL"
    assert info.value.symbols == ("alpha", "zeta")
    assert "alpha, zeta" in info.value.message


# --------------------------------------------------------------------------- evaluation


def test_evaluation_in_si() -> None:
    # 20 degC is 293.15 K inside formulas; a difference stays a difference.
    assert evaluate(parse("t - 273.15"), {"t": 293.15}) == pytest.approx(20.0)
    assert evaluate(parse("2*pi*sqrt(a**3/mu)"), {"a": 6921e3, "mu": 398600.4418e9}) == (
        pytest.approx(5730.127, rel=1e-6)
    )


@pytest.mark.parametrize(
    ("text", "x", "reason"),
    [
        ("sqrt(x)", -1.0, "sqrt() of a negative number"),
        ("log(x)", 0.0, "log() of zero"),
        ("log10(x)", -1.0, "log10() of a negative number"),
        ("1/x", 0.0, "division by zero"),
        ("x/x", 0.0, "0/0"),
        ("exp(x)", 1000.0, "too large"),
        ("x**0.5", -8.0, "non-integer power"),
        ("x**-1", 0.0, "zero raised to a negative power"),
        ("asin(x)", 2.0, "asin() of a value outside [-1, 1]"),
        ("acos(x)", -1.5, "acos()"),
        ("x*1e300*1e300", 1.0, "too large"),
        ("sqrt(-1) * x", 1.0, "sqrt() of a negative number"),  # a constant part, too
    ],
)
def test_scalar_evaluation_errors(text: str, x: float, reason: str) -> None:
    with pytest.raises(EvaluationError) as info:
        evaluate(parse(text), {"x": x})
    assert info.value.code == "EVALUATION_ERROR"
    assert reason in info.value.message
    # The same formula over an array never raises: the bad entry is nan or inf.
    result = evaluate(parse(text), {"x": np.array([x, 0.25])})
    assert result.shape == (2,)
    assert not math.isfinite(result[0]) or text == "x**-1"


def test_non_finite_input_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError):
        evaluate(parse("x + 1"), {"x": math.inf})


def test_vector_evaluation_broadcasts() -> None:
    formula = parse("a*b + 1")
    result = evaluate(formula, {"a": np.array([1.0, 2.0, 3.0]), "b": 2.0})
    np.testing.assert_array_equal(result, [3.0, 5.0, 7.0])
    constant = evaluate(parse("2 + 0*a"), {"a": np.zeros(4)})
    np.testing.assert_array_equal(constant, [2.0] * 4)
    with pytest.raises(EngineError) as info:
        evaluate(formula, {"a": np.zeros(3), "b": np.zeros(4)})
    assert info.value.code == "INVALID_VALUE"


def test_missing_values_and_bad_values() -> None:
    with pytest.raises(UnknownSymbolError):
        evaluate(parse("a + b"), {"a": 1.0})
    with pytest.raises(EngineError) as info:
        evaluate(parse("a"), {"a": "ten"})
    assert info.value.code == "INVALID_VALUE"
    assert evaluate(parse("a / 2"), {"a": 3}) == 1.5  # ints are floats


# --------------------------------------------------------------------------- properties

SYMBOLS = ("a", "b", "c")
_leaves = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False).map(Number),
    st.sampled_from(SYMBOLS).map(Symbol),
    st.sampled_from(("pi", "e", "g0")).map(Constant),
)
_UNARY_FUNCS = ("sqrt", "exp", "log", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "abs")


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        children.map(lambda node: Unary("-", node)),
        st.builds(Binary, st.sampled_from(("+", "-", "*", "/", "**")), children, children),
        st.builds(lambda f, x: Call(f, (x,)), st.sampled_from(_UNARY_FUNCS), children),
        st.builds(lambda x, y: Call("atan2", (x, y)), children, children),
        st.builds(
            lambda f, xs: Call(f, tuple(xs)),
            st.sampled_from(("min", "max")),
            st.lists(children, min_size=2, max_size=3),
        ),
    )


expressions = st.recursive(_leaves, _extend, max_leaves=12)
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


def _parse_generated(node: Node) -> Formula:
    try:
        return parse(unparse(node))
    except FormulaError as exc:
        assume(exc.code == "FORMULA_SYNTAX")  # limits may cut big trees; syntax may not
        raise


@settings(NO_DB, max_examples=400)
@given(expressions)
def test_print_parse_round_trip(node: Node) -> None:
    formula = _parse_generated(node)
    assert formula.root == node
    assert parse(formula.text).root == node


@settings(NO_DB, max_examples=400)
@given(expressions, st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=4))
def test_scalar_and_vector_paths_agree(node: Node, rows: list[tuple[float, float, float]]) -> None:
    formula = _parse_generated(node)
    columns: Mapping[str, np.ndarray] = {
        name: np.array([row[i] for row in rows]) for i, name in enumerate(SYMBOLS)
    }
    vector = evaluate(formula, columns)
    assert vector.shape == (len(rows),)
    for i, row in enumerate(rows):
        try:
            scalar = evaluate(formula, dict(zip(SYMBOLS, row, strict=True)))
        except EvaluationError:
            continue  # the vector path marks such rows instead of raising
        assert math.isclose(vector[i], scalar, rel_tol=1e-12, abs_tol=1e-12), (formula.text, row)


@settings(NO_DB, max_examples=500)
@given(st.text(max_size=300))
def test_random_text_only_raises_formula_error(text: str) -> None:
    try:
        parse(text)
    except FormulaError as exc:
        assert 0 <= exc.position <= max(len(text), MAX_FORMULA_LENGTH)


@settings(NO_DB, max_examples=500)
@given(st.text(alphabet="ab1.e()+-*/^, sqrtminpg0\t", max_size=120))
def test_formula_like_text_only_raises_formula_error(text: str) -> None:
    try:
        formula = parse(text)
    except FormulaError as exc:
        assert exc.code in {"FORMULA_SYNTAX", "FORMULA_TOO_LONG", "FORMULA_TOO_DEEP"}
        assert str(exc.position) in exc.message
        return
    with contextlib.suppress(EvaluationError):
        evaluate(formula, dict.fromkeys(formula.symbols, 0.5))
