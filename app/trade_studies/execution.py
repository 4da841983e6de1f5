"""Evaluating a frozen trade study (pure: numpy over the compiled graph, no database).

A :class:`Plan` is everything a run needs, read back from the study's snapshot:
the design spec (method, variables in their parameters' units, sample count,
seed, rows), the frozen numeric parameters (formulas, units, values), outputs,
objectives and constraints, and the chunking. :func:`prepare` compiles it once
per process (cached); :meth:`Prepared.evaluate` evaluates a slice of the design
vectorised and marks each scenario feasible or infeasible with a reason;
:meth:`Prepared.finalize` computes summary statistics, the Pareto front and (SOBOL)
sensitivity indices over the whole design.

Everything is deterministic: a chunk evaluated twice, or the final pass, gives
the same numbers the stored rows hold.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.parameters import units as U
from app.parameters.graph import CompiledModel, ParameterGraph
from app.requirements.compliance import EQUALITY_REL_TOL
from app.trade_studies.pareto import pareto_mask
from app.trade_studies.sampling import Design, DesignSpec, Variable, make_design
from app.trade_studies.sensitivity import sobol_indices

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

OPERATORS = ("<=", "<", ">=", ">", "==", "between")
PERCENTILES = (5, 25, 50, 75, 95)
MAX_CONSTRAINTS = 32
# Exact percentiles up to this many output values; beyond, an evenly strided sample.
_MAX_PERCENTILE_CELLS = 20_000_000
_FINAL_BLOCK = 250_000


@dataclass(frozen=True, slots=True)
class Constraint:
    """A rule requirement a feasible scenario must pass (``threshold`` in ``unit``)."""

    key: str
    symbol: str
    operator: str
    threshold: float
    unit: str
    value_unit: str  # unit of the symbol's values (its parameter's unit)
    threshold_high: float | None = None

    @property
    def label(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.operator == "between":
            return (
                f"{self.key} ({_num(self.threshold)} <= {self.symbol} <= "
                f"{_num(self.threshold_high)}{unit})"
            )
        return f"{self.key} ({self.symbol} {self.operator} {_num(self.threshold)}{unit})"

    def satisfied(self, values: FloatArray) -> BoolArray:
        """Element-wise pass/fail; non-finite values fail."""
        v = values
        if self.unit != self.value_unit:
            v = np.asarray(U.convert(values, self.value_unit, self.unit), dtype=np.float64)
        t = self.threshold
        with np.errstate(invalid="ignore"):
            if self.operator == "<=":
                ok = v <= t
            elif self.operator == "<":
                ok = v < t
            elif self.operator == ">=":
                ok = v >= t
            elif self.operator == ">":
                ok = v > t
            elif self.operator == "between":
                assert self.threshold_high is not None
                ok = (v >= t) & (v <= self.threshold_high)
            else:  # "=="
                ok = np.isclose(v, t, rtol=EQUALITY_REL_TOL, atol=1e-12)
        return np.asarray(ok & np.isfinite(v))

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "symbol": self.symbol,
            "operator": self.operator,
            "threshold": self.threshold,
            "threshold_high": self.threshold_high,
            "unit": self.unit,
            "value_unit": self.value_unit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Constraint:
        high = data.get("threshold_high")
        return cls(
            key=str(data["key"]),
            symbol=str(data["symbol"]),
            operator=str(data["operator"]),
            threshold=float(data["threshold"]),
            unit=str(data.get("unit") or ""),
            value_unit=str(data.get("value_unit") or ""),
            threshold_high=None if high is None else float(high),
        )


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


@dataclass(frozen=True, slots=True)
class Objective:
    symbol: str
    sense: str  # "minimize" | "maximize"


@dataclass(frozen=True, slots=True)
class FrozenParameter:
    symbol: str
    unit: str
    formula: str | None
    value: float | None


@dataclass(frozen=True)
class Plan:
    """A frozen run (see the module doc); built from and stored as the study snapshot."""

    design: DesignSpec
    parameters: tuple[FrozenParameter, ...]
    outputs: tuple[str, ...]
    output_units: tuple[str, ...]
    objectives: tuple[Objective, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    total: int = 0
    full_size: int = 0
    chunk_size: int = 1

    @property
    def variables(self) -> tuple[Variable, ...]:
        return self.design.variables

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.design.symbols

    @property
    def chunks(self) -> int:
        return max(1, math.ceil(self.total / self.chunk_size)) if self.total else 0

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(self.total, start + self.chunk_size)

    def snapshot(self) -> dict[str, Any]:
        """The JSON stored in ``trade_studies.snapshot`` (besides sequence/revision)."""
        return {
            "method": self.design.method,
            "seed": self.design.seed,
            "sample_count": self.design.sample_count,
            "variables": [v.as_json() for v in self.design.variables],
            "rows": np.asarray(self.design.rows).tolist() if self.design.rows is not None else None,
            "parameters": [
                {"symbol": p.symbol, "unit": p.unit, "formula": p.formula, "value": p.value}
                for p in self.parameters
            ],
            "outputs": [
                {"symbol": s, "unit": u}
                for s, u in zip(self.outputs, self.output_units, strict=True)
            ],
            "objectives": [{"symbol": o.symbol, "sense": o.sense} for o in self.objectives],
            "constraints": [c.as_json() for c in self.constraints],
            "total": self.total,
            "full_size": self.full_size,
            "chunk_size": self.chunk_size,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Plan:
        rows = data.get("rows")
        design = DesignSpec(
            method=str(data["method"]),
            variables=tuple(Variable.from_json(v) for v in data["variables"]),
            sample_count=data.get("sample_count"),
            seed=data.get("seed"),
            rows=np.asarray(rows, dtype=np.float64) if rows is not None else None,
        )
        return cls(
            design=design,
            parameters=tuple(
                FrozenParameter(
                    symbol=p["symbol"],
                    unit=p.get("unit") or "",
                    formula=p.get("formula"),
                    value=p.get("value"),
                )
                for p in data["parameters"]
            ),
            outputs=tuple(o["symbol"] for o in data["outputs"]),
            output_units=tuple(o.get("unit") or "" for o in data["outputs"]),
            objectives=tuple(Objective(o["symbol"], o["sense"]) for o in data["objectives"]),
            constraints=tuple(Constraint.from_json(c) for c in data["constraints"]),
            total=int(data.get("total") or 0),
            full_size=int(data.get("full_size") or 0),
            chunk_size=max(1, int(data.get("chunk_size") or 1)),
        )


@dataclass
class Evaluation:
    """Outputs and feasibility of a slice of the design (rows ``start:stop``)."""

    inputs: FloatArray  # (rows, variables)
    outputs: FloatArray  # (rows, outputs)
    feasible: BoolArray
    reason_index: IntArray  # -1 when feasible, else an index into ``reasons``
    # Stored per scenario, so short: "violates REQ-COM-001, REQ-ORB-001",
    # "not computable: d_slant is nan".
    reasons: list[str]
    # Per reason: how many rows have it, and the long form (rules and formulas spelled out).
    reason_counts: list[int] = field(default_factory=list)
    reason_details: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.feasible.shape[0])


@dataclass
class Final:
    """What the last chunk writes: the summary JSON and the Pareto front's scenario indexes."""

    summary: dict[str, Any]
    pareto: IntArray


class Prepared:
    """A plan compiled for evaluation; the design is generated on first use."""

    def __init__(self, plan: Plan, design: Design | None = None) -> None:
        self.plan = plan
        self._design = design
        self.graph = ParameterGraph(
            {p.symbol: p.formula for p in plan.parameters},
            {p.symbol: p.unit for p in plan.parameters},
            {p.symbol: p.value for p in plan.parameters if p.formula is None},
        )
        symbols = set(plan.symbols)
        extra = [
            c.symbol
            for c in plan.constraints
            if c.symbol not in symbols and c.symbol not in plan.outputs
        ]
        self._model_outputs = tuple(dict.fromkeys([*plan.outputs, *extra]))
        self.model: CompiledModel = self.graph.compile(list(plan.symbols), self._model_outputs)

    @property
    def design(self) -> Design:
        if self._design is None:
            self._design = make_design(self.plan.design)
        return self._design

    @functools.cached_property
    def _diagnosis(self) -> tuple[CompiledModel, list[str]]:
        """A model of every derived symbol the outputs need, in evaluation order."""
        needed = set(self.graph.upstream(self._model_outputs)) | set(self._model_outputs)
        order = [s for s in self.graph.topological_order() if s in needed]
        derived = [s for s in order if self.graph.is_derived(s)]
        return self.graph.compile(list(self.plan.symbols), derived), derived

    # ------------------------------------------------------------------ chunks

    def evaluate(self, start: int, stop: int) -> Evaluation:
        return self.evaluate_inputs(self.design.rows(start, stop))

    def evaluate_inputs(self, inputs: FloatArray) -> Evaluation:
        plan = self.plan
        env = {symbol: inputs[:, j] for j, symbol in enumerate(plan.symbols)}
        values = self.model(env)
        n = inputs.shape[0]
        outputs = np.empty((n, len(plan.outputs)), dtype=np.float64)
        for j, symbol in enumerate(plan.outputs):
            outputs[:, j] = values[symbol]
        finite = np.isfinite(outputs).all(axis=1)
        for symbol in self._model_outputs[len(plan.outputs) :]:
            finite &= np.isfinite(values[symbol])
        # Reason key: violated-constraint bits (low 32) | root-cause code (high bits).
        key = np.zeros(n, dtype=np.int64)
        for bit, constraint in enumerate(plan.constraints):
            source = env if constraint.symbol in env else values
            column = source[constraint.symbol]
            failed = ~constraint.satisfied(np.asarray(column, dtype=np.float64))
            # A constraint on a value that could not be computed is not a separate reason.
            key |= (failed & np.isfinite(column)).astype(np.int64) << bit
        bad = np.flatnonzero(~finite)
        if bad.size:
            key[bad] |= (self._root_causes(inputs[bad]) + 1) << 32
        feasible = key == 0
        reason_index = np.full(n, -1, dtype=np.int64)
        reasons: list[str] = []
        details: list[str] = []
        counts: list[int] = []
        infeasible = np.flatnonzero(~feasible)
        if infeasible.size:
            unique, inverse, count = np.unique(
                key[infeasible], return_inverse=True, return_counts=True
            )
            for k in unique:
                short, long = self._reason(int(k))
                reasons.append(short)
                details.append(long)
            reason_index[infeasible] = inverse.reshape(-1)
            counts = [int(c) for c in count]
        return Evaluation(inputs, outputs, feasible, reason_index, reasons, counts, details)

    def _root_causes(self, inputs: FloatArray) -> IntArray:
        """For rows with a non-finite result: the first formula (in evaluation order)
        that produced nan/inf, as a code per row (see :attr:`_root_texts`)."""
        model, derived = self._diagnosis
        values = model({symbol: inputs[:, j] for j, symbol in enumerate(self.plan.symbols)})
        n = inputs.shape[0]
        first = np.full(n, -1, dtype=np.int64)
        is_inf = np.zeros(n, dtype=bool)
        for i, symbol in enumerate(derived):  # per formula, vectorised over rows
            column = np.broadcast_to(np.asarray(values[symbol], dtype=np.float64), (n,))
            hit = (first < 0) & ~np.isfinite(column)
            first[hit] = i
            is_inf[hit] = np.isinf(column[hit])
        codes = np.where(first < 0, 2 * len(derived), 2 * first + is_inf.astype(np.int64))
        return codes.astype(np.int64)

    @functools.cached_property
    def _root_texts(self) -> list[tuple[str, str]]:
        """(short, long) description of each root-cause code."""
        _, derived = self._diagnosis
        texts: list[tuple[str, str]] = []
        for symbol in derived:
            formula = self.graph.formula(symbol)
            text = formula.text if formula is not None else ""
            for bad in ("nan", "inf"):
                texts.append(
                    (
                        f"not computable: {symbol} is {bad}",
                        f"not computable: {symbol} = {text} gives {bad}",
                    )
                )
        texts.append(("not computable", "not computable: an output is not finite"))
        return texts

    def _reason(self, key: int) -> tuple[str, str]:
        """(short, long) reason of a key: root cause (high bits), violated rules (low)."""
        short: list[str] = []
        long: list[str] = []
        root = key >> 32
        if root:
            s_text, l_text = self._root_texts[root - 1]
            short.append(s_text)
            long.append(l_text)
        violated = [c for bit, c in enumerate(self.plan.constraints) if key >> bit & 1]
        if violated:
            short.append("violates " + ", ".join(c.key for c in violated))
            long.extend(f"violates {c.label}" for c in violated)
        return "; ".join(short), "; ".join(long)

    # ------------------------------------------------------------------ final pass

    def finalize(self, *, seed: int | None = None) -> Final:
        """Summary statistics, infeasibility reasons, Pareto front and (SOBOL) sensitivity
        over the whole design, evaluated again in blocks (deterministic)."""
        plan, design = self.plan, self.design
        n, m = design.size, len(plan.outputs)
        step = max(1, math.ceil(n * max(1, m) / _MAX_PERCENTILE_CELLS))
        count = np.zeros(m, dtype=np.int64)
        total = np.zeros(m)
        squares = np.zeros(m)
        low = np.full(m, np.inf)
        high = np.full(m, -np.inf)
        sampled: list[FloatArray] = []
        feasible = np.zeros(n, dtype=bool)
        objective_idx = [plan.outputs.index(o.symbol) for o in plan.objectives]
        objectives = np.empty((n, len(objective_idx)), dtype=np.float64)
        keep_all = plan.design.method == "SOBOL"
        all_outputs = np.empty((n, m), dtype=np.float64) if keep_all else None
        reasons: dict[str, int] = {}
        details: dict[str, str] = {}
        for start in range(0, n, _FINAL_BLOCK):
            stop = min(n, start + _FINAL_BLOCK)
            ev = self.evaluate(start, stop)
            out = ev.outputs
            feasible[start:stop] = ev.feasible
            objectives[start:stop] = out[:, objective_idx]
            if all_outputs is not None:
                all_outputs[start:stop] = out
            for text, c, detail in zip(
                ev.reasons, ev.reason_counts, ev.reason_details, strict=True
            ):
                reasons[text] = reasons.get(text, 0) + c
                details[text] = detail
            finite = np.isfinite(out)
            if finite.all():  # the common case: no masking copies
                count += out.shape[0]
                total += out.sum(axis=0)
                squares += np.einsum("ij,ij->j", out, out)
                if out.shape[0]:
                    low = np.minimum(low, out.min(axis=0))
                    high = np.maximum(high, out.max(axis=0))
            else:
                clean = np.where(finite, out, 0.0)
                count += finite.sum(axis=0)
                total += clean.sum(axis=0)
                squares += np.einsum("ij,ij->j", clean, clean)
                low = np.minimum(low, np.where(finite, out, np.inf).min(axis=0))
                high = np.maximum(high, np.where(finite, out, -np.inf).max(axis=0))
            first = (-start) % step
            sampled.append(out[first::step])
        sample = np.concatenate(sampled) if sampled else np.empty((0, m))
        outputs_summary = []
        for j, symbol in enumerate(plan.outputs):
            c = int(count[j])
            column = sample[:, j]
            column = column[np.isfinite(column)]
            mean = total[j] / c if c else None
            var = max(0.0, squares[j] / c - (total[j] / c) ** 2) if c else None
            pct = np.percentile(column, PERCENTILES) if column.size else None
            outputs_summary.append(
                {
                    "symbol": symbol,
                    "unit": plan.output_units[j],
                    "count": c,
                    "non_finite": n - c,
                    "min": _f(low[j]) if c else None,
                    "max": _f(high[j]) if c else None,
                    "mean": _f(mean),
                    "std": _f(math.sqrt(var)) if var is not None else None,
                    "percentiles": {
                        f"p{p}": _f(float(v)) for p, v in zip(PERCENTILES, pct, strict=True)
                    }
                    if pct is not None
                    else {},
                }
            )
        front = np.zeros(0, dtype=np.int64)
        if objective_idx:
            rows = np.flatnonzero(feasible)
            mask = pareto_mask(objectives[rows], [o.sense for o in plan.objectives])
            front = rows[mask].astype(np.int64)
        summary: dict[str, Any] = {
            "scenarios": n,
            "feasible": int(feasible.sum()),
            "infeasible": int(n - feasible.sum()),
            "pareto": int(front.size),
            "outputs": outputs_summary,
            "percentiles_exact": step == 1,
            "infeasible_reasons": [
                {"reason": text, "count": c, "detail": details[text]}
                for text, c in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
            ],
        }
        if all_outputs is not None:
            summary["sensitivity"] = self._sensitivity(all_outputs, seed)
        return Final(summary=summary, pareto=front)

    def _sensitivity(self, outputs: FloatArray, seed: int | None) -> dict[str, Any]:
        plan, design = self.plan, self.design
        in_design_order = outputs[design.inverse]
        indices = {
            symbol: sobol_indices(in_design_order[:, j], plan.symbols, seed=seed)
            for j, symbol in enumerate(plan.outputs)
        }
        d = len(plan.symbols)
        return {
            "variables": list(plan.symbols),
            "base_samples": design.full_size // (d + 2),
            "conf_level": 0.95,
            "outputs": indices,
        }


def _f(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


_CACHE: OrderedDict[str, Prepared] = OrderedDict()
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


def cached(key: str) -> Prepared | None:
    """The compiled plan cached under ``key`` (study id and freeze time), if any."""
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
        return hit


def prepare(key: str, load: Callable[[], Plan]) -> Prepared:
    """The compiled plan for ``key``, cached per process; ``load`` builds the plan on a
    miss (a frozen plan never changes under its key)."""
    hit = cached(key)
    if hit is not None:
        return hit
    return remember(key, Prepared(load()))


def remember(key: str, prepared: Prepared) -> Prepared:
    with _CACHE_LOCK:
        _CACHE[key] = prepared
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return prepared
