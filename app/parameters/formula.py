"""The formula language: tokenizer, recursive-descent parser, dimensional analysis, evaluation.

Grammar (Python's precedence; ``^`` is accepted as ``**``)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("+" | "-") unary | power
    power   := primary (("**" | "^") unary)?        # right-associative: 2**3**2 == 2**9
    primary := NUMBER | SYMBOL | CONSTANT | FUNC "(" expr ("," expr)* ")" | "(" expr ")"

so ``-2**2 == -4`` and ``2**-1 == 0.5``. Text never reaches ``eval``: it becomes
a tree of the frozen dataclasses below, and evaluation runs closures built from
that tree over numpy ufuncs. Every string yields a :class:`Formula` or a
:class:`FormulaError` (limits on length, tokens and nesting keep the parser's
recursion far from Python's limit).

Values are SI base magnitudes (see :mod:`app.parameters.units`), so evaluation
needs no unit handling; :func:`infer_unit` / :func:`check_dimensions` prove
beforehand that the arithmetic is dimensionally meaningful.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias, cast

import numpy as np

from app.parameters.engine_errors import (
    FORMULA_TOO_DEEP,
    FORMULA_TOO_LONG,
    INVALID_VALUE,
    OFFSET_UNIT,
    UNIT_MISMATCH,
    EngineError,
    UnknownSymbolError,
)
from app.parameters.engine_errors import DimensionError as DimensionError  # re-export
from app.parameters.engine_errors import EvaluationError as EvaluationError  # re-export
from app.parameters.engine_errors import FormulaError as FormulaError  # re-export
from app.parameters.units import Unit, UnitLike, format_unit, is_offset_unit, parse_unit, ureg

MAX_FORMULA_LENGTH = 2_000
MAX_TOKENS = 500
MAX_DEPTH = 64
MAX_SYMBOL_LENGTH = 64  # the DB column

# name -> (min args, max args or None for variadic)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "sqrt": (1, 1),
    "exp": (1, 1),
    "log": (1, 1),
    "log10": (1, 1),
    "sin": (1, 1),
    "cos": (1, 1),
    "tan": (1, 1),
    "asin": (1, 1),
    "acos": (1, 1),
    "atan": (1, 1),
    "atan2": (2, 2),
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
}
# name -> (SI magnitude, unit)
CONSTANTS: dict[str, tuple[float, str]] = {
    "pi": (math.pi, ""),
    "e": (math.e, ""),
    "g0": (9.80665, "m/s^2"),
}
RESERVED_NAMES = frozenset(FUNCTIONS) | frozenset(CONSTANTS)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def is_valid_symbol(name: str) -> bool:
    """Whether ``name`` can name a parameter (an identifier that is not reserved)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_SYMBOL_LENGTH
        and _IDENT.fullmatch(name) is not None
        and name not in RESERVED_NAMES
    )


# --------------------------------------------------------------------------- AST
# ``pos`` is the 0-based offset of the node's token (the operator for Binary);
# it is excluded from equality so trees compare structurally.


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Constant:
    name: str  # a key of CONSTANTS
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # only "-": unary plus is dropped by the parser
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # one of + - * / **
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    func: str  # a key of FUNCTIONS
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node: TypeAlias = Number | Symbol | Constant | Unary | Binary | Call


@dataclass(frozen=True)
class Formula:
    """A parsed formula. Build with :func:`parse`."""

    text: str
    root: Node
    symbols: frozenset[str]

    def __str__(self) -> str:
        return self.text

    @functools.cached_property
    def compiled(self) -> _Compiled:
        """The evaluator over SI magnitudes: a closure ``env -> value``, or a float if constant.

        Built once per Formula (cached_property writes around the frozen __setattr__).
        """
        return compile_node(self.root, {})


# --------------------------------------------------------------------------- tokenizer


class _Token(NamedTuple):
    kind: str  # "number" | "name" | "op" | "end"
    text: str
    pos: int

    def describe(self) -> str:
        if self.kind == "end":
            return "end of formula"
        if self.kind == "number":
            return f"number {self.text!r}"
        return repr(self.text)


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\*\*|[-+*/^(),])
    """,
    re.VERBOSE | re.ASCII,
)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, end = 0, len(text)
    while pos < end:
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise FormulaError(f"unexpected character {text[pos]!r} at position {pos}", pos)
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            if len(tokens) >= MAX_TOKENS:
                raise FormulaError(
                    f"formula has more than {MAX_TOKENS} tokens (at position {pos})",
                    pos,
                    FORMULA_TOO_LONG,
                )
            token_text = match.group()
            tokens.append(_Token(kind, "**" if token_text == "^" else token_text, pos))
        pos = match.end()
    tokens.append(_Token("end", "", end))
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_op(self, *ops: str) -> bool:
        token = self.tokens[self.index]
        return token.kind == "op" and token.text in ops

    def unexpected(self, token: _Token) -> FormulaError:
        return FormulaError(f"unexpected {token.describe()} at position {token.pos}", token.pos)

    def expect(self, text: str) -> _Token:
        token = self.advance()
        if token.kind != "op" or token.text != text:
            raise FormulaError(
                f"expected {text!r} but found {token.describe()} at position {token.pos}",
                token.pos,
            )
        return token

    def enter(self, pos: int) -> None:
        # Counts parentheses, calls, unary operators and exponents: the syntactic
        # nesting that drives recursion here and in every tree walk later.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(
                f"formula nests deeper than {MAX_DEPTH} levels at position {pos}",
                pos,
                FORMULA_TOO_DEEP,
            )

    def leave(self) -> None:
        self.depth -= 1

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise FormulaError("empty formula at position 0", 0)
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token)
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.at_op("+", "-"):
            token = self.advance()
            node = Binary(token.text, node, self.term(), token.pos)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at_op("*", "/"):
            token = self.advance()
            node = Binary(token.text, node, self.unary(), token.pos)
        return node

    def unary(self) -> Node:
        if self.at_op("+", "-"):
            token = self.advance()
            self.enter(token.pos)
            operand = self.unary()
            self.leave()
            return Unary("-", operand, token.pos) if token.text == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.at_op("**"):
            token = self.advance()
            self.enter(token.pos)
            exponent = self.unary()
            self.leave()
            return Binary("**", base, exponent, token.pos)
        return base

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            value = float(token.text)
            if not math.isfinite(value):
                raise FormulaError(
                    f"number {token.text[:20]!r} is out of range at position {token.pos}",
                    token.pos,
                )
            return Number(value, token.pos)
        if token.kind == "name":
            if self.at_op("("):
                return self.call(token)
            if token.text in FUNCTIONS:
                raise FormulaError(
                    f"function {token.text!r} must be called, e.g. {token.text}(x), "
                    f"at position {token.pos}",
                    token.pos,
                )
            if token.text in CONSTANTS:
                return Constant(token.text, token.pos)
            if len(token.text) > MAX_SYMBOL_LENGTH:
                raise FormulaError(
                    f"symbol is longer than {MAX_SYMBOL_LENGTH} characters at position {token.pos}",
                    token.pos,
                )
            return Symbol(token.text, token.pos)
        if token.kind == "op" and token.text == "(":
            self.enter(token.pos)
            node = self.expr()
            self.expect(")")
            self.leave()
            return node
        raise self.unexpected(token)

    def call(self, name: _Token) -> Node:
        if name.text not in FUNCTIONS:
            if name.text in CONSTANTS:
                message = f"{name.text!r} is a constant, not a function"
            else:
                message = f"unknown function {name.text!r}"
            raise FormulaError(f"{message} at position {name.pos}", name.pos)
        self.advance()  # "("
        self.enter(name.pos)
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.advance()
                args.append(self.expr())
        self.expect(")")
        self.leave()
        low, high = FUNCTIONS[name.text]
        if len(args) < low or (high is not None and len(args) > high):
            if high is None:
                wanted = f"at least {low} arguments"
            else:
                wanted = f"{low} argument" + ("s" if low > 1 else "")
            raise FormulaError(
                f"{name.text}() takes {wanted}, got {len(args)} at position {name.pos}",
                name.pos,
            )
        return Call(name.text, tuple(args), name.pos)


def parse(text: str) -> Formula:
    """Parse formula text. Raises only :class:`FormulaError` (for any input)."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}", 0)
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(
            f"formula is longer than {MAX_FORMULA_LENGTH} characters "
            f"(at position {MAX_FORMULA_LENGTH})",
            MAX_FORMULA_LENGTH,
            FORMULA_TOO_LONG,
        )
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Formula:
    # Formulas are immutable, so one parse (and one compiled evaluator) per text
    # is shared by every graph built from the same rows.
    root = _Parser(_tokenize(text)).parse()
    return Formula(text=text, root=root, symbols=frozenset(_collect_symbols(root)))


def _collect_symbols(node: Node, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(node, Symbol):
        out.add(node.name)
    for child in _children(node):
        _collect_symbols(child, out)
    return out


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


# --------------------------------------------------------------------------- printing

_PREC_ADD, _PREC_MUL, _PREC_UNARY, _PREC_POW, _PREC_ATOM = 1, 2, 3, 4, 5
_BINARY_PREC = {"+": _PREC_ADD, "-": _PREC_ADD, "*": _PREC_MUL, "/": _PREC_MUL, "**": _PREC_POW}


def _prec(node: Node) -> int:
    if isinstance(node, Binary):
        return _BINARY_PREC[node.op]
    if isinstance(node, Unary):
        return _PREC_UNARY
    if isinstance(node, Number) and (node.value < 0 or math.copysign(1.0, node.value) < 0):
        return _PREC_UNARY
    return _PREC_ATOM


def unparse(node: Node) -> str:
    """Text that parses back to an equal tree (minimal parentheses)."""
    if isinstance(node, Number):
        if not math.isfinite(node.value):
            raise ValueError(f"cannot print the non-finite number {node.value!r}")
        text = repr(float(node.value))
        return f"({text})" if _prec(node) == _PREC_UNARY else text
    if isinstance(node, Symbol | Constant):
        return node.name
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(arg) for arg in node.args)})"
    if isinstance(node, Unary):
        inner = unparse(node.operand)
        return f"-({inner})" if _prec(node.operand) < _PREC_UNARY else f"-{inner}"
    prec = _BINARY_PREC[node.op]
    left, right = unparse(node.left), unparse(node.right)
    if node.op == "**":
        # Left of ** binds tighter than unary minus; the exponent may be unary.
        if _prec(node.left) <= _PREC_POW:
            left = f"({left})"
        if _prec(node.right) < _PREC_UNARY:
            right = f"({right})"
        return f"{left}**{right}"
    if _prec(node.left) < prec:
        left = f"({left})"
    if _prec(node.right) <= prec:
        right = f"({right})"
    return f"{left} {node.op} {right}"


def rename_symbols(formula: Formula, mapping: Mapping[str, str]) -> Formula:
    """The same formula with symbols renamed (text is re-printed canonically)."""

    def walk(node: Node) -> Node:
        if isinstance(node, Symbol):
            return Symbol(mapping.get(node.name, node.name), node.pos)
        if isinstance(node, Unary):
            return Unary(node.op, walk(node.operand), node.pos)
        if isinstance(node, Binary):
            return Binary(node.op, walk(node.left), walk(node.right), node.pos)
        if isinstance(node, Call):
            return Call(node.func, tuple(walk(arg) for arg in node.args), node.pos)
        return node

    for new in mapping.values():
        if not is_valid_symbol(new):
            raise FormulaError(f"{new!r} is not a valid symbol name", 0)
    root = walk(formula.root)
    return Formula(text=unparse(root), root=root, symbols=frozenset(_collect_symbols(root)))


# --------------------------------------------------------------------------- dimensions

_DIMENSIONLESS_FUNCS = frozenset(
    {"exp", "log", "log10", "sin", "cos", "tan", "asin", "acos", "atan"}
)


def _symbol_unit(unit: UnitLike) -> Unit:
    parsed = parse_unit(unit) if isinstance(unit, str) else unit
    if is_offset_unit(parsed):
        # Engine magnitudes of offset units are absolute SI (kelvin, dBW).
        return cast(Unit, ureg.get_base_units(parsed)[1])
    return parsed


def _require_symbols(formula: Formula, available: Mapping[str, object]) -> None:
    missing = formula.symbols - available.keys()
    if missing:
        names = ", ".join(sorted(missing))
        raise UnknownSymbolError(f"unknown symbol(s) in formula: {names}", sorted(missing))


def infer_unit(formula: Formula, symbol_units: Mapping[str, UnitLike]) -> Unit:
    """The unit of the formula's result (any unit of the right dimensionality).

    Raises :class:`UnknownSymbolError` (``UNKNOWN_SYMBOL``) or :class:`DimensionError`
    (``DIMENSION_MISMATCH``, with the position of the offending operator or call).
    """
    _require_symbols(formula, symbol_units)
    units = {name: _symbol_unit(symbol_units[name]) for name in formula.symbols}
    return _infer(formula.root, units)


def _dim(unit: Unit) -> str:
    return str(unit.dimensionality)


def _infer(node: Node, units: Mapping[str, Unit]) -> Unit:
    if isinstance(node, Number):
        return ureg.dimensionless
    if isinstance(node, Constant):
        return parse_unit(CONSTANTS[node.name][1])
    if isinstance(node, Symbol):
        return units[node.name]
    if isinstance(node, Unary):
        return _infer(node.operand, units)
    if isinstance(node, Call):
        return _infer_call(node, [_infer(arg, units) for arg in node.args])
    left, right = _infer(node.left, units), _infer(node.right, units)
    if node.op in ("+", "-"):
        if left.dimensionality != right.dimensionality:
            verb = "add" if node.op == "+" else "subtract"
            raise DimensionError(
                f"cannot {verb} {_dim(left)} and {_dim(right)} at position {node.pos}",
                position=node.pos,
            )
        return left
    if node.op == "*":
        return cast(Unit, left * right)
    if node.op == "/":
        return cast(Unit, left / right)
    return _infer_power(node, left, right)


def _infer_power(node: Binary, base: Unit, exponent: Unit) -> Unit:
    if not exponent.dimensionless:
        raise DimensionError(
            f"an exponent must be dimensionless, got {_dim(exponent)} at position {node.pos}",
            position=node.pos,
        )
    if base.dimensionless:
        return ureg.dimensionless
    # A dimensional base needs a known exponent, or the result's unit is unknowable.
    compiled = compile_node(node.right, {})
    if callable(compiled):
        raise DimensionError(
            f"the exponent of a quantity with dimension {_dim(base)} must be a constant "
            f"number at position {node.pos}",
            position=node.pos,
        )
    power = float(compiled)
    if not math.isfinite(power) or abs(power) > 64:
        raise DimensionError(
            f"unsupported exponent {power!r} of a dimensional quantity at position {node.pos}",
            position=node.pos,
        )
    return cast(Unit, base**power)


def _infer_call(node: Call, args: list[Unit]) -> Unit:
    func = node.func
    if func in _DIMENSIONLESS_FUNCS:
        if not args[0].dimensionless:
            raise DimensionError(
                f"{func}() needs a dimensionless argument, got {_dim(args[0])} "
                f"at position {node.pos}",
                position=node.pos,
            )
        return ureg.dimensionless
    if func == "sqrt":
        return ureg.dimensionless if args[0].dimensionless else cast(Unit, args[0] ** 0.5)
    if func == "abs":
        return args[0]
    # atan2, min, max: all arguments share one dimension.
    for other in args[1:]:
        if other.dimensionality != args[0].dimensionality:
            raise DimensionError(
                f"{func}() needs arguments of the same dimension, got {_dim(args[0])} "
                f"and {_dim(other)} at position {node.pos}",
                position=node.pos,
            )
    return ureg.dimensionless if func == "atan2" else args[0]


def check_dimensions(
    formula: Formula, symbol_units: Mapping[str, UnitLike], target_unit: UnitLike
) -> Unit:
    """Check a formula for a parameter declared in ``target_unit``; returns the inferred unit.

    Codes: ``UNKNOWN_SYMBOL``, ``DIMENSION_MISMATCH``, ``UNIT_MISMATCH`` (result not
    convertible to the target), ``OFFSET_UNIT`` (target is degC/dBm: ambiguous
    whether the result is absolute or a difference; use K / dBW).
    """
    inferred = infer_unit(formula, symbol_units)
    target = parse_unit(target_unit) if isinstance(target_unit, str) else target_unit
    shown = target_unit if isinstance(target_unit, str) else format_unit(target)
    if is_offset_unit(target):
        raise DimensionError(
            f"a formula result cannot be in the offset unit {shown!r}: use an absolute "
            "unit (K instead of degC, dBW instead of dBm)",
            OFFSET_UNIT,
        )
    if inferred.dimensionality != target.dimensionality:
        raise DimensionError(
            f"the formula gives {_dim(inferred)} ({format_unit(inferred) or 'dimensionless'}), "
            f"which cannot be converted to {shown!r} ({_dim(target)})",
            UNIT_MISMATCH,
        )
    return inferred


# --------------------------------------------------------------------------- evaluation
# Every node compiles to a closure ``env -> value`` (or, when it has no free
# symbols, to a folded float). numpy ufuncs make one closure serve a float or a
# million-element array alike, with identical arithmetic.

_Env: TypeAlias = Mapping[str, Any]
_Fn: TypeAlias = Callable[[_Env], Any]
_Compiled: TypeAlias = "_Fn | float"

_BINARY_UFUNCS: dict[str, np.ufunc] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}
_UNARY_UFUNCS: dict[str, np.ufunc] = {
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "abs": np.absolute,
    "-": np.negative,
}
_VARIADIC_UFUNCS: dict[str, np.ufunc] = {"atan2": np.arctan2, "min": np.minimum, "max": np.maximum}


def _fold(ufunc: np.ufunc, args: list[_Compiled]) -> _Compiled | None:
    """Evaluate a node whose arguments are all constants, unless that is not finite."""
    if not all(isinstance(arg, float) for arg in args):
        return None
    with np.errstate(all="ignore"):
        value = float(ufunc(*args))
    # Non-finite folds are left to run, so scalar evaluation reports the real error.
    return value if math.isfinite(value) else None


def _apply1(ufunc: np.ufunc, arg: _Compiled) -> _Compiled:
    folded = _fold(ufunc, [arg])
    if folded is not None:
        return folded
    if callable(arg):
        fn = arg
        return lambda env: ufunc(fn(env))
    const = arg
    return lambda env: ufunc(const)


def _apply2(ufunc: np.ufunc, left: _Compiled, right: _Compiled) -> _Compiled:
    folded = _fold(ufunc, [left, right])
    if folded is not None:
        return folded
    if callable(left) and callable(right):
        lf, rf = left, right
        return lambda env: ufunc(lf(env), rf(env))
    if callable(left):
        lf, rc = left, right
        return lambda env: ufunc(lf(env), rc)
    if callable(right):
        lc, rf = left, right
        return lambda env: ufunc(lc, rf(env))
    lc, rc = left, right
    return lambda env: ufunc(lc, rc)


def compile_node(node: Node, constants: Mapping[str, float]) -> _Compiled:
    """Compile a tree to a closure over SI magnitudes, or to a float if it is constant.

    Symbols found in ``constants`` are folded in as values (the graph uses this
    to bake non-varying parameters into a compiled model).
    """
    if isinstance(node, Number):
        return float(node.value)
    if isinstance(node, Constant):
        return CONSTANTS[node.name][0]
    if isinstance(node, Symbol):
        if node.name in constants:
            return float(constants[node.name])
        getter: _Fn = operator.itemgetter(node.name)
        return getter
    if isinstance(node, Unary):
        return _apply1(np.negative, compile_node(node.operand, constants))
    if isinstance(node, Binary):
        return _apply2(
            _BINARY_UFUNCS[node.op],
            compile_node(node.left, constants),
            compile_node(node.right, constants),
        )
    args = [compile_node(arg, constants) for arg in node.args]
    if node.func in _UNARY_UFUNCS:
        return _apply1(_UNARY_UFUNCS[node.func], args[0])
    ufunc = _VARIADIC_UFUNCS[node.func]
    result = _apply2(ufunc, args[0], args[1])
    for arg in args[2:]:  # min/max with more than two arguments: a left fold
        result = _apply2(ufunc, result, arg)
    return result


_PROBLEMS = {
    ("divide by zero", "divide"): "division by zero",
    ("divide by zero", "log"): "log() of zero",
    ("divide by zero", "log10"): "log10() of zero",
    ("divide by zero", "power"): "zero raised to a negative power",
    ("invalid value", "sqrt"): "sqrt() of a negative number",
    ("invalid value", "log"): "log() of a negative number",
    ("invalid value", "log10"): "log10() of a negative number",
    ("invalid value", "arcsin"): "asin() of a value outside [-1, 1]",
    ("invalid value", "arccos"): "acos() of a value outside [-1, 1]",
    ("invalid value", "power"): "a negative number raised to a non-integer power",
    ("invalid value", "divide"): "0/0 or inf/inf",
    ("invalid value", "multiply"): "0 * infinity",
    ("invalid value", "add"): "infinity - infinity",
    ("invalid value", "subtract"): "infinity - infinity",
}


def _reason(exc: FloatingPointError) -> str:
    """Turn numpy's 'invalid value encountered in sqrt' into a reason people read."""
    text = str(exc)
    kind, _, ufunc = text.partition(" encountered in ")
    if kind == "overflow":
        return f"the result is too large (overflow in {ufunc})"
    return _PROBLEMS.get((kind, ufunc), text)


def _as_input(name: str, value: object) -> Any:
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return value.astype(np.float64, copy=False)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EngineError(f"value of {name!r} is not a number", INVALID_VALUE) from None


def evaluate(formula: Formula, values_si: Mapping[str, Any]) -> Any:
    """Evaluate over SI magnitudes; the result is in SI base units of the inferred unit.

    All-scalar inputs give a float and raise :class:`EvaluationError` on an invalid
    operation (sqrt(-1), log(0), x/0, overflow) or a non-finite result. If any
    input is an array, the result is an array of the broadcast shape and never
    raises for such values: those entries are nan/inf.
    """
    _require_symbols(formula, values_si)
    env = {name: _as_input(name, values_si[name]) for name in formula.symbols}
    # Any array argument (used or not) asks for the vector path and sets the shape.
    shapes = [
        np.shape(value)
        for value in values_si.values()
        if isinstance(value, np.ndarray) and value.ndim > 0
    ]
    compiled = formula.compiled
    if shapes:
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise EngineError("input arrays have incompatible shapes", INVALID_VALUE) from None
        with np.errstate(all="ignore"):
            result = compiled(env) if callable(compiled) else compiled
        return np.array(np.broadcast_to(np.asarray(result, dtype=np.float64), shape))
    return evaluate_scalar(compiled, env, formula.text)


def evaluate_scalar(compiled: _Compiled, env: _Env, label: str) -> float:
    """Run a compiled formula on scalars, raising :class:`EvaluationError` on bad values."""
    if not callable(compiled):
        return compiled
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        try:
            result = float(compiled(env))
        except FloatingPointError as exc:
            raise EvaluationError(f"cannot evaluate {label}: {_reason(exc)}") from None
    if not math.isfinite(result):
        raise EvaluationError(f"cannot evaluate {label}: the result is {result}")
    return result
