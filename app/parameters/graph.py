"""The parameter dependency graph: cycles, downstream closures, recompute, compiled sweeps.

A :class:`ParameterGraph` is an immutable snapshot of a project's numeric
parameters: for each symbol its formula (``None`` = independent input), its
declared unit and, for inputs, its current value in that unit. Edges run from a
dependency to its dependents (``m_dry -> m_prop``).

* :meth:`ParameterGraph.recompute` re-evaluates only the downstream closure of
  an edit, in topological order, on scalars (microseconds per formula).
* :meth:`ParameterGraph.compile` turns the part of the graph between some inputs
  and outputs into a :class:`CompiledModel`: the other inputs are folded in as
  constants and each formula becomes a closure over numpy ufuncs, so one call
  evaluates a million scenarios without a Python loop per scenario. Models are
  cached per (graph fingerprint, inputs, outputs).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.parameters.engine_errors import (
    INVALID_INPUT,
    INVALID_VALUE,
    MISSING_VALUE,
    CycleError,
    DimensionError,
    EngineError,
    EvaluationError,
    UnknownSymbolError,
)
from app.parameters.formula import (
    Formula,
    check_dimensions,
    compile_node,
    evaluate_scalar,
    parse,
)
from app.parameters.units import si_factor_offset

FloatArray = NDArray[np.float64]
_Step = tuple[str, Any]  # (symbol, compiled closure or folded float)


def _names(symbols: Iterable[str]) -> str:
    return ", ".join(sorted(symbols))


class ParameterGraph:
    """An immutable snapshot of formulas, units and input values (see the module doc).

    ``formulas`` maps every numeric symbol to its formula (a :class:`Formula` or
    its text) or ``None``; ``units`` gives each symbol's unit (missing means
    dimensionless); ``values`` gives independent parameters' values in their
    own unit (used by :meth:`compile` and as a fallback by :meth:`recompute`).
    Raises ``UNKNOWN_SYMBOL`` if a formula names a symbol that is not in the
    graph, ``UNKNOWN_UNIT`` for an unparseable unit, ``FORMULA_*`` for bad text.
    Cycles are reported by :meth:`check_acyclic`, not here, so a candidate
    graph can be built to ask for the cycle's path.
    """

    def __init__(
        self,
        formulas: Mapping[str, Formula | str | None],
        units: Mapping[str, str] | None = None,
        values: Mapping[str, float | None] | None = None,
    ) -> None:
        units = units or {}
        self._formulas: dict[str, Formula | None] = {
            symbol: parse(formula) if isinstance(formula, str) else formula
            for symbol, formula in formulas.items()
        }
        self._units: dict[str, str] = {symbol: units.get(symbol, "") for symbol in self._formulas}
        # Parsing every unit up front turns a bad unit into an error here, not mid-sweep.
        self._si: dict[str, tuple[float, float]] = {
            symbol: si_factor_offset(unit) for symbol, unit in self._units.items()
        }
        # Current values; derived ones only serve as recompute fallbacks.
        self._values: dict[str, float] = {
            symbol: _as_float(symbol, value)
            for symbol, value in (values or {}).items()
            if symbol in self._formulas and value is not None
        }
        self._deps: dict[str, frozenset[str]] = {}
        dependents: dict[str, set[str]] = {symbol: set() for symbol in self._formulas}
        for symbol, formula in self._formulas.items():
            deps = formula.symbols if formula is not None else frozenset()
            unknown = deps - self._formulas.keys()
            if unknown:
                raise UnknownSymbolError(
                    f"the formula of {symbol!r} refers to unknown symbol(s): {_names(unknown)}",
                    sorted(unknown),
                )
            self._deps[symbol] = deps
            for dep in deps:
                dependents[dep].add(symbol)
        self._dependents = {symbol: frozenset(users) for symbol, users in dependents.items()}
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ inspection

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._formulas)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._formulas

    def __len__(self) -> int:
        return len(self._formulas)

    def _require(self, symbols: Iterable[str]) -> list[str]:
        listed = list(symbols)
        unknown = set(listed) - self._formulas.keys()
        if unknown:
            raise UnknownSymbolError(f"unknown symbol(s): {_names(unknown)}", sorted(unknown))
        return listed

    def formula(self, symbol: str) -> Formula | None:
        self._require([symbol])
        return self._formulas[symbol]

    def unit(self, symbol: str) -> str:
        self._require([symbol])
        return self._units[symbol]

    def value(self, symbol: str) -> float | None:
        """The stored current value (``None`` if not given)."""
        self._require([symbol])
        return self._values.get(symbol)

    def is_derived(self, symbol: str) -> bool:
        self._require([symbol])
        return self._formulas[symbol] is not None

    def dependencies(self, symbol: str) -> frozenset[str]:
        """Symbols the formula of ``symbol`` refers to directly."""
        self._require([symbol])
        return self._deps[symbol]

    def dependents(self, symbol: str) -> frozenset[str]:
        """Symbols whose formulas refer to ``symbol`` directly."""
        self._require([symbol])
        return self._dependents[symbol]

    def upstream(self, symbols: Iterable[str]) -> frozenset[str]:
        """Every symbol the given ones depend on, transitively (excluding themselves)."""
        start = self._require(symbols)
        seen: set[str] = set()
        stack = [dep for symbol in start for dep in self._deps[symbol]]
        while stack:
            symbol = stack.pop()
            if symbol not in seen:
                seen.add(symbol)
                stack.extend(self._deps[symbol])
        return frozenset(seen)

    @property
    def fingerprint(self) -> str:
        """A hash of everything a compiled model bakes in: formulas, units, input values."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for symbol in sorted(self._formulas):
                formula = self._formulas[symbol]
                value = None if formula else self._values.get(symbol)
                digest.update(
                    f"{symbol}\x1f{formula.text if formula else ''}\x1f{self._units[symbol]}"
                    f"\x1f{value!r}\x1e".encode()
                )
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParameterGraph):
            return NotImplemented
        return self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"<ParameterGraph {len(self)} symbols {self.fingerprint[:12]}>"

    # ------------------------------------------------------------------ structure

    def find_cycle(self, prefer: str | None = None) -> list[str] | None:
        """A cycle as a closed path ``[a, b, c, a]`` (each formula refers to the next), or None.

        The path starts at ``prefer`` if it is on the cycle (e.g. the symbol
        whose formula is being edited), else at its alphabetically first symbol.
        """
        state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
        # Iterative DFS: a project's dependency chains may be longer than Python's stack.
        for start in sorted(self._formulas):
            if start in state:
                continue
            path = [start]
            state[start] = 1
            pending = [iter(sorted(self._deps[start]))]
            while pending:
                nxt = next(pending[-1], None)
                if nxt is None:
                    state[path.pop()] = 2
                    pending.pop()
                elif state.get(nxt) == 1:
                    cycle = path[path.index(nxt) :]
                    first = prefer if prefer in cycle else min(cycle)
                    at = cycle.index(first)
                    cycle = cycle[at:] + cycle[:at]
                    return [*cycle, cycle[0]]
                elif nxt not in state:
                    state[nxt] = 1
                    path.append(nxt)
                    pending.append(iter(sorted(self._deps[nxt])))
        return None

    def check_acyclic(self, prefer: str | None = None) -> None:
        """Raise :class:`CycleError` (``CYCLE_DETECTED``, with ``.path``) if formulas loop."""
        cycle = self.find_cycle(prefer)
        if cycle is not None:
            raise CycleError(cycle)

    def _order(self, nodes: Iterable[str]) -> list[str]:
        """Topological order of ``nodes`` (dependencies first; ties alphabetical)."""
        subset = set(nodes)
        indegree = {node: len(self._deps[node] & subset) for node in subset}
        ready = [node for node, degree in indegree.items() if degree == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for user in self._dependents[node]:
                if user in subset:
                    indegree[user] -= 1
                    if indegree[user] == 0:
                        heapq.heappush(ready, user)
        if len(order) != len(subset):
            self.check_acyclic()
        return order

    def topological_order(self) -> list[str]:
        """All symbols, every one after everything it depends on."""
        return self._order(self._formulas)

    def downstream(self, changed: Iterable[str]) -> list[str]:
        """Derived symbols to recompute after ``changed`` changed, in topological order.

        Only the transitive closure of the changed symbols' dependents is walked.
        A changed symbol that is itself derived is included (its formula may be
        what changed).
        """
        start = self._require(changed)
        closure = {symbol for symbol in start if self._formulas[symbol] is not None}
        stack = [user for symbol in start for user in self._dependents[symbol]]
        while stack:
            symbol = stack.pop()
            if symbol not in closure:
                closure.add(symbol)
                stack.extend(self._dependents[symbol])
        return self._order(closure)

    def check_dimensions(self) -> None:
        """Check every formula against its parameter's unit (first error, by symbol)."""
        for symbol in sorted(self._formulas):
            formula = self._formulas[symbol]
            if formula is None:
                continue
            try:
                check_dimensions(formula, self._units, self._units[symbol])
            except DimensionError as exc:
                raise DimensionError(f"{symbol}: {exc.message}", exc.code, exc.position) from None

    # ------------------------------------------------------------------ scalar evaluation

    def _si_value(self, symbol: str, values: Mapping[str, float | None]) -> float:
        raw = values.get(symbol)
        if raw is None:
            raw = self._values.get(symbol)
        if raw is None:
            raise EngineError(f"no value for {symbol!r}", MISSING_VALUE)
        factor, offset = self._si[symbol]
        return _as_float(symbol, raw) * factor + offset

    def _evaluate(self, symbol: str, env: Mapping[str, float]) -> float:
        formula = self._formulas[symbol]
        assert formula is not None
        try:
            return evaluate_scalar(formula.compiled, env, f"{symbol} = {formula.text}")
        except EvaluationError as exc:
            exc.symbol = symbol
            raise

    def recompute(
        self, values: Mapping[str, float | None], changed: Iterable[str]
    ) -> dict[str, float]:
        """New values (each in its parameter's unit) of everything downstream of ``changed``.

        ``values`` are current values in each parameter's own unit; symbols it
        lacks fall back to the values stored in the graph. Raises
        :class:`EvaluationError` (with ``.symbol``) if a formula cannot be evaluated.
        """
        order = self.downstream(changed)
        recomputed = set(order)
        env: dict[str, float] = {}
        out: dict[str, float] = {}
        for symbol in order:
            for dep in self._deps[symbol]:
                if dep not in env and dep not in recomputed:
                    env[dep] = self._si_value(dep, values)
            result = self._evaluate(symbol, env)
            env[symbol] = result
            factor, offset = self._si[symbol]
            out[symbol] = (result - offset) / factor
        return out

    def evaluate_all(self, values: Mapping[str, float | None] | None = None) -> dict[str, float]:
        """Every derived value (in its own unit) from the inputs (``values`` over stored)."""
        inputs = [symbol for symbol, formula in self._formulas.items() if formula is None]
        derived = [symbol for symbol, formula in self._formulas.items() if formula is not None]
        return self.recompute(values or {}, [*inputs, *derived]) if derived else {}

    # ------------------------------------------------------------------ compiled sweeps

    def compile(self, inputs: Sequence[str], outputs: Sequence[str] | None = None) -> CompiledModel:
        """A vectorised function of ``inputs`` (see :class:`CompiledModel`), cached.

        ``outputs=None`` means every derived symbol downstream of the inputs.
        Inputs must be independent parameters; outputs may be any symbols.
        """
        inputs_key = tuple(sorted(set(self._require(inputs))))
        outputs_key = None if outputs is None else tuple(dict.fromkeys(self._require(outputs)))
        return _compile_cached(self, inputs_key, outputs_key)

    def _build(self, inputs: tuple[str, ...], outputs: tuple[str, ...] | None) -> CompiledModel:
        derived_inputs = [symbol for symbol in inputs if self._formulas[symbol] is not None]
        if derived_inputs:
            raise EngineError(
                f"only independent parameters can be inputs; {_names(derived_inputs)} "
                "have formulas",
                INVALID_INPUT,
            )
        varying = set(self.downstream(inputs)) | set(inputs)
        if outputs is None:
            outputs = tuple(self.downstream(inputs))
        needed = set(self.upstream(outputs)) | set(outputs)
        order = self._order(symbol for symbol in needed if self._formulas[symbol] is not None)
        # Everything that does not vary becomes a constant, computed once here.
        constants: dict[str, float] = {}
        for symbol in sorted(needed - varying):
            if self._formulas[symbol] is None:
                constants[symbol] = self._si_value(symbol, {})
        steps: list[_Step] = []
        for symbol in order:
            formula = self._formulas[symbol]
            assert formula is not None
            compiled = compile_node(formula.root, constants)
            if symbol in varying:
                steps.append((symbol, compiled))
            else:
                # nan rather than an error: sweeps mark bad scenarios, they never raise.
                with np.errstate(all="ignore"):
                    constants[symbol] = float(
                        compiled(constants) if callable(compiled) else compiled
                    )
        return CompiledModel(
            inputs=inputs,
            outputs=outputs,
            steps=steps,
            constants=constants,
            input_si={symbol: self._si[symbol] for symbol in inputs},
            output_si={symbol: self._si[symbol] for symbol in outputs},
            units={symbol: self._units[symbol] for symbol in (*inputs, *outputs)},
        )


@functools.lru_cache(maxsize=64)
def _compile_cached(
    graph: ParameterGraph, inputs: tuple[str, ...], outputs: tuple[str, ...] | None
) -> CompiledModel:
    # Keyed on the graph's fingerprint (its __hash__/__eq__), so a graph rebuilt
    # from unchanged rows reuses the model.
    return graph._build(inputs, outputs)


class CompiledModel:
    """``model({input: array or float in its unit}) -> {output: array in its unit}``.

    All inputs broadcast together; every output has the broadcast shape.
    Invalid operations never raise: the affected entries are nan or inf.
    """

    __slots__ = ("_constants", "_input_si", "_output_si", "_steps", "inputs", "outputs", "units")

    def __init__(
        self,
        *,
        inputs: tuple[str, ...],
        outputs: tuple[str, ...],
        steps: list[_Step],
        constants: dict[str, float],
        input_si: dict[str, tuple[float, float]],
        output_si: dict[str, tuple[float, float]],
        units: dict[str, str],
    ) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.units = units  # unit of every input and output
        self._steps = steps
        self._constants = constants
        self._input_si = input_si
        self._output_si = output_si

    @property
    def order(self) -> list[str]:
        """The derived symbols evaluated per call, in evaluation order."""
        return [symbol for symbol, _ in self._steps]

    def __repr__(self) -> str:
        return f"<CompiledModel {list(self.inputs)} -> {list(self.outputs)}>"

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, FloatArray]:
        missing = set(self.inputs) - inputs.keys()
        if missing:
            raise UnknownSymbolError(f"missing input(s): {_names(missing)}", sorted(missing))
        env: dict[str, Any] = dict(self._constants)
        given: dict[str, FloatArray] = {}
        for symbol in self.inputs:
            try:
                array = np.asarray(inputs[symbol], dtype=np.float64)
            except (TypeError, ValueError):
                raise EngineError(f"input {symbol!r} is not numeric", INVALID_VALUE) from None
            given[symbol] = array
            factor, offset = self._input_si[symbol]
            # One multiply per input array converts it to SI.
            env[symbol] = _affine(array, factor, offset)
        try:
            shape = np.broadcast_shapes(*(array.shape for array in given.values()))
        except ValueError:
            raise EngineError("input arrays have incompatible shapes", INVALID_VALUE) from None
        with np.errstate(all="ignore"):
            for symbol, compiled in self._steps:
                env[symbol] = compiled(env) if callable(compiled) else compiled
            out: dict[str, FloatArray] = {}
            # A formula like ``y = x`` passes an array through unchanged: copy such
            # aliases so no two outputs (or an output and an input) share memory.
            taken = {id(array) for array in given.values()}
            taken.update(id(env[symbol]) for symbol in self.inputs)
            for symbol in self.outputs:
                factor, offset = self._output_si[symbol]
                result = np.asarray(env[symbol], dtype=np.float64)
                if offset != 0.0:
                    result = result - offset
                if factor != 1.0:
                    result = result / factor
                if result.shape != shape or id(result) in taken:
                    result = np.array(np.broadcast_to(result, shape))
                taken.add(id(result))
                out[symbol] = result
        return out


def _affine(array: FloatArray, factor: float, offset: float) -> FloatArray:
    if factor != 1.0:
        array = array * factor
    if offset != 0.0:
        array = array + offset
    return array


def _as_float(symbol: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EngineError(f"value of {symbol!r} is not a number: {value!r}", INVALID_VALUE)
    result = float(value)
    if not math.isfinite(result):
        raise EngineError(f"value of {symbol!r} is not finite: {result!r}", INVALID_VALUE)
    return result
