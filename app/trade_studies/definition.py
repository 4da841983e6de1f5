"""Study definitions: validate what a user asks for, and freeze it into a :class:`Plan`.

Pure: callers pass the project's parameters and rule requirements as plain records.

* :func:`normalize` checks a create/update request and returns the definition JSON
  stored on the study (variable bounds in the units the user gave; outputs,
  objectives and constraints resolved to explicit lists).
* :func:`freeze` turns a stored definition into a runnable :class:`Plan` against the
  parameters as they are *now* (values, formulas, units): bounds are converted to
  the parameters' units, the model is compiled, the design size is checked. The
  planner calls it when a run starts; :func:`normalize` calls it to validate.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.parameters import units as U
from app.parameters.engine_errors import EngineError
from app.parameters.errors import UnitMismatch
from app.parameters.graph import ParameterGraph
from app.trade_studies.errors import DesignTooLarge, ModelError, NotFound, ValidationError
from app.trade_studies.execution import (
    MAX_CONSTRAINTS,
    OPERATORS,
    Constraint,
    FrozenParameter,
    Objective,
    Plan,
)
from app.trade_studies.sampling import (
    DISTRIBUTIONS,
    MAX_LEVELS,
    MAX_LIST_ROWS,
    MAX_SCENARIOS,
    MAX_VARIABLES,
    METHODS,
    DesignSpec,
    Variable,
    design_size,
    grid_levels,
)

MAX_OUTPUTS = 100
MAX_OBJECTIVES = 8
MAX_CHUNK = 100_000
SENSES = ("minimize", "maximize")
SAMPLED = ("LATIN_HYPERCUBE", "SOBOL", "RANDOM")


@dataclass(frozen=True, slots=True)
class ParamInfo:
    id: uuid.UUID
    symbol: str
    unit: str
    value_kind: str
    formula: str | None
    value: float | None


@dataclass(frozen=True, slots=True)
class RuleInfo:
    id: uuid.UUID
    key: str
    symbol: str  # the rule parameter's symbol
    operator: str
    threshold: float
    threshold_high: float | None
    unit: str | None
    value_kind: str


@dataclass(frozen=True, slots=True)
class VariableInput:
    """A variable as requested: the parameter (symbol or id) and how to vary it.

    ``unit`` is the unit of every number given (default: the parameter's unit).
    """

    symbol: str | None = None
    parameter_id: uuid.UUID | None = None
    unit: str | None = None
    values: Sequence[float] | None = None
    min: float | None = None
    max: float | None = None
    levels: int | None = None
    distribution: str | None = None
    mean: float | None = None
    std_dev: float | None = None
    mode: float | None = None


@dataclass(frozen=True, slots=True)
class ObjectiveInput:
    symbol: str
    sense: str  # "minimize" | "maximize"


@dataclass(frozen=True, slots=True)
class Normalized:
    definition: dict[str, Any]
    sample_count: int | None
    seed: int | None
    total: int


def _finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number", field=field)
    out = float(value)
    if not math.isfinite(out):
        raise ValidationError(f"{field} must be finite", field=field)
    return out


def _opt(value: Any, field: str) -> float | None:
    return None if value is None else _finite(value, field)


class _Project:
    def __init__(self, params: Sequence[ParamInfo], rules: Sequence[RuleInfo]) -> None:
        self.params = [p for p in params if p.value_kind == "number"]
        self.by_symbol = {p.symbol: p for p in params}
        self.by_id = {p.id: p for p in params}
        self.rules = {r.key: r for r in rules}
        self.rule_list = list(rules)

    def graph(self) -> ParameterGraph:
        try:
            return ParameterGraph(
                {p.symbol: p.formula for p in self.params},
                {p.symbol: p.unit for p in self.params},
                {p.symbol: p.value for p in self.params if p.formula is None},
            )
        except EngineError as exc:
            raise ModelError(f"the project's formulas do not load: {exc.message}") from None


def _resolve_variable(project: _Project, v: VariableInput, pre: str) -> ParamInfo:
    param: ParamInfo | None = None
    if v.parameter_id is not None:
        param = project.by_id.get(v.parameter_id)
        if param is None:
            raise NotFound("parameter not found", field=pre + "parameterId")
    if v.symbol is not None:
        by_symbol = project.by_symbol.get(v.symbol)
        if by_symbol is None:
            raise NotFound(f"no parameter with symbol {v.symbol!r}", field=pre + "symbol")
        if param is not None and param.id != by_symbol.id:
            raise ValidationError("parameterId and symbol name different parameters", field=pre)
        param = by_symbol
    if param is None:
        raise ValidationError("give the parameter's symbol or id", field=pre + "symbol")
    if param.value_kind != "number":
        raise ValidationError(f"{param.symbol} is not numeric", field=pre + "symbol")
    if param.formula is not None:
        raise ValidationError(
            f"{param.symbol} is derived ({param.formula}); only independent parameters "
            "can be varied",
            field=pre + "symbol",
        )
    return param


def _check_unit(unit: str, param: ParamInfo, field: str) -> str:
    if not isinstance(unit, str) or len(unit) > 64 or "\x00" in unit:
        raise ValidationError("a unit is at most 64 characters, without NUL", field=field)
    unit = unit.strip()
    try:
        U.parse_unit(unit)
    except EngineError as exc:
        raise ValidationError(f"unknown unit {unit!r}: {exc.message}", field=field) from None
    if not U.same_dimension(unit, param.unit):
        raise UnitMismatch(
            f"{param.symbol} is in {param.unit!r}; {unit!r} cannot be converted to it",
            field=field,
        )
    return unit


def _variable_json(method: str, v: VariableInput, param: ParamInfo, pre: str) -> dict[str, Any]:
    unit = _check_unit(v.unit if v.unit is not None else param.unit, param, pre + "unit")
    out: dict[str, Any] = {"symbol": param.symbol, "parameter_id": str(param.id), "unit": unit}
    if method == "LIST":
        return out
    if v.values is not None:
        if not 1 <= len(v.values) <= MAX_LEVELS:
            raise ValidationError(f"give 1 to {MAX_LEVELS} values", field=pre + "values")
        values = [_finite(x, f"{pre}values.{i}") for i, x in enumerate(v.values)]
        if len(set(values)) != len(values):
            raise ValidationError("values must be distinct", field=pre + "values")
        out["values"] = values
        return out
    distribution = (v.distribution or "UNIFORM").upper()
    if distribution not in DISTRIBUTIONS:
        raise ValidationError(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)}", field=pre + "distribution"
        )
    low, high = _opt(v.min, pre + "min"), _opt(v.max, pre + "max")
    if method == "GRID":
        if low is None or high is None or v.levels is None:
            raise ValidationError(
                "a GRID variable needs values, or min, max and levels", field=pre + "levels"
            )
        if not 2 <= v.levels <= MAX_LEVELS:
            raise ValidationError(f"levels must be 2 to {MAX_LEVELS}", field=pre + "levels")
        if not low < high:
            raise ValidationError("min must be less than max", field=pre + "max")
        return {**out, "min": low, "max": high, "levels": v.levels}
    out["distribution"] = distribution
    if distribution == "NORMAL":
        mean, std = _opt(v.mean, pre + "mean"), _opt(v.std_dev, pre + "stdDev")
        if mean is None or std is None or std <= 0:
            raise ValidationError("NORMAL needs mean and stdDev > 0", field=pre + "stdDev")
        return {**out, "mean": mean, "std_dev": std}
    if low is None or high is None:
        raise ValidationError("give min and max (or values)", field=pre + "min")
    if not low < high:
        raise ValidationError("min must be less than max", field=pre + "max")
    out.update(min=low, max=high)
    if distribution == "LOG_UNIFORM" and low <= 0:
        raise ValidationError("LOG_UNIFORM needs min > 0", field=pre + "min")
    if distribution == "TRIANGULAR":
        mode = _opt(v.mode, pre + "mode")
        mode = (low + high) / 2 if mode is None else mode
        if not low <= mode <= high:
            raise ValidationError("mode must lie between min and max", field=pre + "mode")
        out["mode"] = mode
    return out


def normalize(
    *,
    method: str,
    variables: Sequence[VariableInput],
    outputs: Sequence[str] | None,
    objectives: Sequence[ObjectiveInput],
    constraints: Sequence[str] | None,
    rows: Sequence[Sequence[float]] | None,
    sample_count: int | None,
    seed: int | None,
    params: Sequence[ParamInfo],
    rules: Sequence[RuleInfo],
    default_seed: int,
) -> Normalized:
    """Validate a definition (see the module doc); errors name the input field at fault."""
    if method not in METHODS:
        raise ValidationError(f"method must be one of {', '.join(METHODS)}", field="method")
    project = _Project(params, rules)
    if not 1 <= len(variables) <= MAX_VARIABLES:
        raise ValidationError(f"give 1 to {MAX_VARIABLES} variables", field="variables")
    resolved: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, v in enumerate(variables):
        pre = f"variables.{i}."
        param = _resolve_variable(project, v, pre)
        if param.symbol in seen:
            raise ValidationError(f"{param.symbol} is varied twice", field=pre + "symbol")
        seen.add(param.symbol)
        resolved.append(_variable_json(method, v, param, pre))
    symbols = [v["symbol"] for v in resolved]
    graph = project.graph()

    if outputs is None:
        out_symbols = [s for s in graph.downstream(symbols) if s not in seen]
        if not out_symbols:
            raise ValidationError(
                "no parameter depends on these variables; name the outputs", field="outputs"
            )
    else:
        out_symbols = []
        for i, symbol in enumerate(outputs):
            found = project.by_symbol.get(symbol)
            if found is None:
                raise NotFound(f"no parameter with symbol {symbol!r}", field=f"outputs.{i}")
            if found.value_kind != "number":
                raise ValidationError(f"{symbol} is not numeric", field=f"outputs.{i}")
            if symbol in seen:
                raise ValidationError(f"{symbol} is a variable", field=f"outputs.{i}")
            if symbol in out_symbols:
                raise ValidationError(f"{symbol} is listed twice", field=f"outputs.{i}")
            out_symbols.append(symbol)
        if not out_symbols:
            raise ValidationError("give at least one output", field="outputs")
    if len(out_symbols) > MAX_OUTPUTS:
        raise ValidationError(f"at most {MAX_OUTPUTS} outputs", field="outputs")

    if len(objectives) > MAX_OBJECTIVES:
        raise ValidationError(f"at most {MAX_OBJECTIVES} objectives", field="objectives")
    objective_json: list[dict[str, str]] = []
    for i, o in enumerate(objectives):
        sense = o.sense.lower()
        if sense not in SENSES:
            raise ValidationError("sense must be MINIMIZE or MAXIMIZE", field=f"objectives.{i}")
        if o.symbol not in out_symbols:
            raise ValidationError(
                f"objective {o.symbol!r} is not an output", field=f"objectives.{i}.symbol"
            )
        if any(x["symbol"] == o.symbol for x in objective_json):
            raise ValidationError(f"{o.symbol} is listed twice", field=f"objectives.{i}.symbol")
        objective_json.append({"symbol": o.symbol, "sense": sense})

    if constraints is None:
        keys = sorted(
            r.key for r in project.rule_list if r.symbol in out_symbols and r.value_kind == "number"
        )
    else:
        keys = []
        for i, key in enumerate(constraints):
            rule = project.rules.get(key)
            if rule is None:
                raise NotFound(f"no rule requirement with key {key!r}", field=f"constraints.{i}")
            if rule.value_kind != "number":
                raise ValidationError(f"{key} is not a numeric rule", field=f"constraints.{i}")
            if key not in keys:
                keys.append(key)
    if len(keys) > MAX_CONSTRAINTS:
        raise ValidationError(f"at most {MAX_CONSTRAINTS} constraints", field="constraints")

    definition: dict[str, Any] = {
        "variables": resolved,
        "outputs": out_symbols,
        "objectives": objective_json,
        "constraints": keys,
    }
    if method == "LIST":
        if rows is None or len(rows) == 0:
            raise ValidationError("a LIST study needs rows", field="rows")
        if len(rows) > MAX_LIST_ROWS:
            raise DesignTooLarge(f"at most {MAX_LIST_ROWS:,} rows", field="rows")
        try:
            table = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            table = None
        d = len(resolved)
        if table is None or table.ndim != 2 or table.shape[1] != d:
            raise ValidationError(
                f"every row needs {d} number(s), one per variable in variable order",
                field="rows",
            )
        bad = np.flatnonzero(~np.isfinite(table).all(axis=1))
        if bad.size:
            raise ValidationError("rows must hold finite numbers", field=f"rows.{bad[0]}")
        definition["rows"] = table.tolist()
    elif rows:
        raise ValidationError("rows are only for LIST studies", field="rows")

    if method in SAMPLED:
        if sample_count is None:
            raise ValidationError(f"{method} needs sampleCount", field="sampleCount")
        if not 1 <= sample_count <= MAX_SCENARIOS:
            raise DesignTooLarge(f"sampleCount must be 1 to {MAX_SCENARIOS:,}", field="sampleCount")
        if seed is None:
            seed = default_seed
        if not 0 <= seed < 2**63:
            raise ValidationError("seed must be 0 to 2^63-1", field="seed")
    else:
        sample_count, seed = None, None
    plan = freeze(
        method=method,
        definition=definition,
        sample_count=sample_count,
        seed=seed,
        params=params,
        rules=rules,
    )
    return Normalized(definition, sample_count, seed, plan.full_size)


def freeze(
    *,
    method: str,
    definition: Mapping[str, Any],
    sample_count: int | None,
    seed: int | None,
    params: Sequence[ParamInfo],
    rules: Sequence[RuleInfo],
    chunk_size: int | None = None,
) -> Plan:
    """A runnable plan of a stored definition against the parameters as they are now.

    ``total`` is left 0: the planner sets it once the design is generated (repeated
    rows dropped). Raises ValidationError/ModelError/DesignTooLarge.
    """
    project = _Project(params, rules)
    variables: list[Variable] = []
    for i, v in enumerate(definition.get("variables") or []):
        pre = f"variables.{i}."
        pid = v.get("parameter_id")
        param = project.by_id.get(uuid.UUID(pid)) if pid else project.by_symbol.get(v["symbol"])
        if param is None:
            raise NotFound(f"variable {v['symbol']} no longer exists", field=pre + "symbol")
        if param.value_kind != "number" or param.formula is not None:
            raise ValidationError(
                f"{param.symbol} is no longer an independent numeric parameter",
                field=pre + "symbol",
            )
        variables.append(_to_parameter_unit(v, param, pre))
    if not variables:
        raise ValidationError("the study has no variables", field="variables")
    rows = None
    if method == "LIST":
        rows = np.asarray(definition.get("rows") or [], dtype=np.float64)
        rows = rows.reshape(-1, len(variables)).copy()
        for j, v in enumerate(definition["variables"]):
            unit, target = v["unit"], variables[j].unit
            if unit != target:  # one vectorised conversion per variable
                rows[:, j] = U.convert(rows[:, j], unit, target)
    spec = DesignSpec(method, tuple(variables), sample_count, seed, rows)
    size = design_size(spec)
    if size > MAX_SCENARIOS:
        detail = (
            " x ".join(str(len(grid_levels(v))) for v in variables)
            if method == "GRID"
            else str(size)
        )
        raise DesignTooLarge(
            f"the design has {detail} = {size:,} scenarios; the cap is {MAX_SCENARIOS:,}",
            field="variables" if method == "GRID" else "sampleCount",
        )
    outputs = [str(s) for s in definition.get("outputs") or []]
    for i, symbol in enumerate(outputs):
        found = project.by_symbol.get(symbol)
        if found is None or found.value_kind != "number":
            raise NotFound(f"output {symbol} no longer exists", field=f"outputs.{i}")
    constraints: list[Constraint] = []
    for i, key in enumerate(definition.get("constraints") or []):
        rule = project.rules.get(key)
        if rule is None:
            raise NotFound(f"constraint {key} no longer exists", field=f"constraints.{i}")
        if rule.operator not in OPERATORS:
            raise ValidationError(f"{key} has an unsupported rule", field=f"constraints.{i}")
        param = project.by_symbol[rule.symbol]
        rule_unit = rule.unit if rule.unit is not None else param.unit
        if not U.same_dimension(rule_unit, param.unit):
            raise UnitMismatch(
                f"{key} compares {param.symbol} in {rule_unit!r}, not convertible from "
                f"{param.unit!r}",
                field=f"constraints.{i}",
            )
        constraints.append(
            Constraint(
                key=key,
                symbol=rule.symbol,
                operator=rule.operator,
                threshold=rule.threshold,
                threshold_high=rule.threshold_high,
                unit=rule_unit,
                value_unit=param.unit,
            )
        )
    objectives = tuple(Objective(o["symbol"], o["sense"]) for o in definition.get("objectives", []))
    frozen = tuple(FrozenParameter(p.symbol, p.unit, p.formula, p.value) for p in project.params)
    graph = project.graph()
    symbols = [v.symbol for v in variables]
    extra = [c.symbol for c in constraints if c.symbol not in symbols]
    try:
        graph.check_acyclic()
        graph.compile(symbols, list(dict.fromkeys([*outputs, *extra])))
    except EngineError as exc:
        raise ModelError(f"the model cannot be evaluated: {exc.message}") from None
    if chunk_size is None:
        chunk_size = min(50_000, max(2_000, math.ceil(size / 16)))
    return Plan(
        design=spec,
        parameters=frozen,
        outputs=tuple(outputs),
        output_units=tuple(project.by_symbol[s].unit for s in outputs),
        objectives=objectives,
        constraints=tuple(constraints),
        total=0,
        full_size=size,
        chunk_size=max(1, min(MAX_CHUNK, chunk_size)),
    )


def _to_parameter_unit(v: Mapping[str, Any], param: ParamInfo, pre: str) -> Variable:
    unit = str(v.get("unit") or "")
    target = param.unit
    if not U.same_dimension(unit, target):
        raise UnitMismatch(
            f"{param.symbol} is now in {target!r}; the study's {unit!r} does not convert",
            field=pre + "unit",
        )

    def conv(x: Any) -> float | None:
        if x is None:
            return None
        return float(U.convert(float(x), unit, target)) if unit != target else float(x)

    values = v.get("values")
    std = v.get("std_dev")
    if std is not None and unit != target:
        std = float(std) * U.si_factor_offset(unit)[0] / U.si_factor_offset(target)[0]
    low, high = conv(v.get("min")), conv(v.get("max"))
    if low is not None and high is not None and low > high:  # a unit with negative scale
        low, high = high, low
    return Variable(
        symbol=param.symbol,
        unit=target,
        values=tuple(float(U.convert(float(x), unit, target)) for x in values)
        if values is not None
        else None,
        min=low,
        max=high,
        levels=v.get("levels"),
        distribution=str(v.get("distribution") or "UNIFORM"),
        mean=conv(v.get("mean")),
        std_dev=None if std is None else float(std),
        mode=conv(v.get("mode")),
    )
