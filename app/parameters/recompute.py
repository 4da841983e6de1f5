"""Applying parameter edits: validate against the project's formula graph, recompute the
downstream closure, re-evaluate rule requirements, mark trace links suspect, and write
values, history, audit rows and the one ``parameter.changed`` event.

Everything is validated and computed in memory before the first row changes, so an
error leaves the session untouched (the caller rolls back anyway).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta, record
from app.auth.principal import Principal
from app.events import append_event
from app.parameters import units as U
from app.parameters.engine_errors import EngineError
from app.parameters.errors import (
    CycleDetected,
    EvaluationFailed,
    FormulaError,
    UnitMismatch,
    UnknownSymbol,
    ValidationError,
    from_engine_error,
)
from app.parameters.formula import Formula, check_dimensions, evaluate, parse
from app.parameters.graph import ParameterGraph
from app.parameters.models import Parameter, ParameterDependency, ParameterVersion

# Re-exported: callers import the result types from here or from app.parameters.results.
from app.parameters.results import ParameterChangeResult as ParameterChangeResult
from app.parameters.results import ParameterValueChange as ParameterValueChange
from app.parameters.results import RequirementComplianceChange as RequirementComplianceChange
from app.requirements.compliance import ParameterValue, evaluate_rule
from app.requirements.models import Requirement, TraceLink
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    check_number,
    clean_text,
)

MAX_NAME = 200
MAX_TEXT_VALUE = 10_000
# Recomputed values closer than this (relative) to the stored one count as unchanged,
# so a unit conversion upstream does not bump versions over the last ulp.
_RECOMPUTE_REL_TOL = 1e-12


# --------------------------------------------------------------------------- values


def param_value(param: Parameter) -> ParameterValue:
    if param.value_kind == "number":
        return param.value_number
    if param.value_kind == "boolean":
        return param.value_bool
    return param.value_text


def store_value(param: Parameter, value: ParameterValue) -> None:
    if param.value_kind == "number":
        param.value_number = None if value is None else float(value)
    elif param.value_kind == "boolean":
        param.value_bool = None if value is None else bool(value)
    else:
        param.value_text = None if value is None else str(value)


def coerce_value(kind: str, value: object, *, field: str) -> ParameterValue:
    """The value as the parameter kind stores it; ValidationError if it does not fit."""
    if value is None:
        return None
    if kind == "number":
        return check_number(value, field=field)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationError("a boolean parameter takes true or false", field=field)
        return value
    if not isinstance(value, str):
        raise ValidationError("a text parameter takes a string", field=field)
    return clean_text(value, field=field, max_length=MAX_TEXT_VALUE, allow_empty=True, strip=False)


def parse_unit_field(unit: str, *, kind: str, field: str) -> str:
    """A unit string for a parameter of ``kind``: parsed by the engine, stripped."""
    if not isinstance(unit, str):
        raise ValidationError("unit must be a string", field=field)
    unit = unit.strip()
    if kind != "number":
        if unit:
            raise ValidationError(f"a {kind} parameter has no unit", field=field)
        return unit
    try:
        U.parse_unit(unit)
    except EngineError as exc:
        raise from_engine_error(exc, field=field) from None
    return unit


def _same_number(old: ParameterValue, new: ParameterValue) -> bool:
    if old is None or new is None:
        return old is new
    assert isinstance(old, float | int) and isinstance(new, float | int)
    return old == new or math.isclose(old, new, rel_tol=_RECOMPUTE_REL_TOL, abs_tol=0.0)


# --------------------------------------------------------------------------- project state


@dataclass
class ProjectParameters:
    """Every live parameter of a project, loaded in one query."""

    project_id: uuid.UUID
    rows: list[Parameter]
    by_id: dict[uuid.UUID, Parameter] = field(init=False)
    by_symbol: dict[str, Parameter] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.rows}
        self.by_symbol = {p.symbol: p for p in self.rows}

    @classmethod
    async def load(cls, session: AsyncSession, project_id: uuid.UUID) -> ProjectParameters:
        rows = await session.scalars(
            select(Parameter)
            .where(Parameter.project_id == project_id, Parameter.deleted_at.is_(None))
            .execution_options(populate_existing=True)
        )
        return cls(project_id, list(rows))

    def kinds(self) -> dict[str, str]:
        return {p.symbol: p.value_kind for p in self.rows}

    def numeric(self) -> list[Parameter]:
        return [p for p in self.rows if p.value_kind == "number"]


def build_graph(formulas: Mapping[str, str | None], units: Mapping[str, str]) -> ParameterGraph:
    try:
        return ParameterGraph(formulas, units)
    except EngineError as exc:
        raise from_engine_error(exc, field=None) from None


def check_formula(
    text: str,
    *,
    symbol: str,
    unit: str,
    units: Mapping[str, str],
    kinds: Mapping[str, str],
    field: str,
) -> Formula:
    """Parse ``text`` for parameter ``symbol`` (declared in ``unit``) and check it.

    ``units`` holds every numeric symbol's unit, ``kinds`` every symbol's value kind.
    """
    try:
        formula = parse(text)
    except EngineError as exc:
        raise from_engine_error(exc, field=field) from None
    not_numeric = sorted(s for s in formula.symbols if s in kinds and kinds[s] != "number")
    if not_numeric:
        raise FormulaError(
            f"formulas compute with numbers; {', '.join(not_numeric)} "
            f"{'is' if len(not_numeric) == 1 else 'are'} not numeric",
            field=field,
            reason="NOT_NUMERIC",
        )
    unknown = sorted(formula.symbols - kinds.keys())
    if unknown:
        raise UnknownSymbol(
            f"unknown symbol(s) in the formula of {symbol}: {', '.join(unknown)}",
            symbols=unknown,
            field=field,
        )
    try:
        check_dimensions(formula, units, unit)
    except EngineError as exc:
        raise from_engine_error(exc, field=field) from None
    return formula


def evaluate_formula(
    formula: Formula,
    *,
    symbol: str,
    unit: str,
    values: Mapping[str, ParameterValue],
    units: Mapping[str, str],
    field: str | None,
) -> float | None:
    """The formula's value in ``unit``; None if an input has no value."""
    env: dict[str, float] = {}
    for dep in formula.symbols:
        value = values.get(dep)
        if value is None:
            return None
        env[dep] = U.to_si(float(value), units[dep])
    try:
        result = float(evaluate(formula, env))
        return float(U.from_si(result, unit))
    except EngineError as exc:
        raise EvaluationFailed(
            f"{symbol}: {exc.message}",
            symbol=symbol,
            field=field,
        ) from None


# --------------------------------------------------------------------------- edits


@dataclass
class Edit:
    """Requested changes to one parameter (UNSET = leave as is)."""

    param: Parameter
    prefix: str = ""  # input path of this edit, e.g. "items.3."
    value: ParameterValue | Unset = UNSET
    unit: str | Unset = UNSET
    formula: str | Unset | None = UNSET
    name: str | Unset = UNSET
    description: str | Unset = UNSET
    uncertainty: float | Unset | None = UNSET
    # Filled by validation: the attribute values the parameter will have.
    target: dict[str, Any] = field(default_factory=dict)


def _prepare(edit: Edit) -> None:
    """Validate the scalar inputs of one edit into ``edit.target``."""
    p, pre, t = edit.param, edit.prefix, edit.target
    if edit.name is not UNSET:
        t["name"] = clean_text(edit.name, field=pre + "name", max_length=MAX_NAME)
    if edit.description is not UNSET:
        t["description"] = clean_text(
            edit.description,
            field=pre + "description",
            max_length=MAX_DESCRIPTION,
            allow_empty=True,
        )
    if edit.unit is not UNSET:
        t["unit"] = parse_unit_field(edit.unit, kind=p.value_kind, field=pre + "unit")
    if edit.formula is not UNSET:
        formula = edit.formula.strip() if isinstance(edit.formula, str) else edit.formula
        if formula is not None and p.value_kind != "number":
            raise ValidationError(
                f"only numeric parameters can have a formula; {p.symbol} is {p.value_kind}",
                field=pre + "formula",
            )
        t["formula"] = formula or None
    formula_after = t.get("formula", p.formula)
    if edit.value is not UNSET:
        if formula_after is not None:
            raise ValidationError(
                f"{p.symbol} is derived ({formula_after}); its value is computed. "
                "Set its formula to null to make it independent",
                field=pre + "value",
            )
        t["value"] = coerce_value(p.value_kind, edit.value, field=pre + "value")
    if edit.uncertainty is not UNSET:
        if edit.uncertainty is not None:
            if p.value_kind != "number":
                raise ValidationError(
                    "only numeric parameters have an uncertainty", field=pre + "uncertainty"
                )
            unc = check_number(edit.uncertainty, field=pre + "uncertainty")
            if unc < 0:
                raise ValidationError("uncertainty must be >= 0", field=pre + "uncertainty")
            t["uncertainty"] = unc
        else:
            t["uncertainty"] = None
    new_unit = t.get("unit", p.unit)
    if new_unit != p.unit and p.value_kind == "number" and U.same_dimension(p.unit, new_unit):
        # A unit change alone keeps the physical quantity: 20 kg becomes 20000 g.
        if "value" not in t and formula_after is None and p.value_number is not None:
            t["value"] = float(U.convert(p.value_number, p.unit, new_unit))
        if "uncertainty" not in t and p.uncertainty is not None:
            old_factor = U.si_factor_offset(p.unit)[0]
            t["uncertainty"] = p.uncertainty * old_factor / U.si_factor_offset(new_unit)[0]


def _first_field(edits: Sequence[Edit]) -> str | None:
    """The input most likely at fault when a downstream formula fails."""
    if len(edits) != 1:
        return "items" if edits and edits[0].prefix else None
    t = edits[0].target
    name = "formula" if "formula" in t else "value" if "value" in t else "unit"
    return edits[0].prefix + name


@dataclass
class _Candidate:
    """The project's numeric formulas, units and all values with the edits applied."""

    formulas: dict[str, str | None]
    units: dict[str, str]
    values: dict[str, ParameterValue]
    kinds: dict[str, str]


def _candidate(state: ProjectParameters, edits: Sequence[Edit]) -> _Candidate:
    numeric = state.numeric()
    cand = _Candidate(
        formulas={p.symbol: p.formula for p in numeric},
        units={p.symbol: p.unit for p in numeric},
        values={p.symbol: param_value(p) for p in state.rows},
        kinds=state.kinds(),
    )
    for edit in edits:
        s, t = edit.param.symbol, edit.target
        if edit.param.value_kind == "number":
            cand.formulas[s] = t.get("formula", cand.formulas[s])
            cand.units[s] = t.get("unit", cand.units[s])
        if "value" in t:
            cand.values[s] = t["value"]
    return cand


def _check_graph(cand: _Candidate, edits: Sequence[Edit]) -> ParameterGraph:
    """New formulas parse, name numeric symbols, fit dimensions and close no cycle;
    changed units still fit every formula that reads them."""
    for edit in edits:
        t, p = edit.target, edit.param
        if t.get("formula") is not None and t["formula"] != p.formula:
            check_formula(
                t["formula"],
                symbol=p.symbol,
                unit=cand.units[p.symbol],
                units=cand.units,
                kinds=cand.kinds,
                field=edit.prefix + "formula",
            )
    graph = build_graph(cand.formulas, cand.units)
    for edit in edits:
        if "formula" in edit.target:
            cycle = graph.find_cycle(prefer=edit.param.symbol)
            if cycle is not None:
                raise CycleDetected(
                    "the formula would make a cycle: " + " -> ".join(cycle),
                    path=cycle,
                    field=edit.prefix + "formula",
                )
    for edit in edits:
        p = edit.param
        if edit.target.get("unit", p.unit) == p.unit:
            continue
        for symbol in sorted({p.symbol, *graph.dependents(p.symbol)}):
            formula = graph.formula(symbol)
            if formula is None:
                continue
            try:
                check_dimensions(formula, cand.units, cand.units[symbol])
            except EngineError as exc:
                raise UnitMismatch(
                    f"unit {cand.units[p.symbol]!r} breaks {symbol} = {formula.text}: "
                    f"{exc.message}",
                    field=edit.prefix + "unit",
                    reason=exc.code,
                ) from None
    return graph


def _recompute(graph: ParameterGraph, cand: _Candidate, edits: Sequence[Edit]) -> list[str]:
    """Recompute (into ``cand.values``) everything downstream of what the edits changed;
    returns the recomputed symbols in topological order."""
    changed = [
        e.param.symbol
        for e in edits
        if e.param.value_kind == "number"
        and any(
            k in e.target and e.target[k] != _current(e.param, k)
            for k in ("value", "unit", "formula")
        )
    ]
    order = graph.downstream(changed) if changed else []
    fail_field = _first_field(edits)
    by_symbol = {e.param.symbol: e for e in edits}
    for symbol in order:
        formula = graph.formula(symbol)
        assert formula is not None
        edit = by_symbol.get(symbol)
        cand.values[symbol] = evaluate_formula(
            formula,
            symbol=symbol,
            unit=cand.units[symbol],
            values=cand.values,
            units=cand.units,
            field=edit.prefix + "formula" if edit else fail_field,
        )
    return order


_Plan = tuple[Parameter, dict[str, Any], str]  # (row, {field: [old, new]}, cause)


def _plan(
    state: ProjectParameters, cand: _Candidate, edits: Sequence[Edit], order: Sequence[str]
) -> list[_Plan]:
    """The rows to write: edited ones that differ, then recomputed ones whose value moved."""
    plans: list[_Plan] = []
    for edit in edits:
        p, target = edit.param, dict(edit.target)
        if p.formula is not None or target.get("formula") is not None:
            target["value"] = cand.values[p.symbol]
        diff = {
            k: [_current(p, k), v]
            for k, v in target.items()
            if _current(p, k) != v and not (k == "value" and _same_value(p, v))
        }
        if diff:
            plans.append((p, diff, "edit"))
    skip = {e.param.symbol for e in edits}
    for symbol in order:
        if symbol in skip:
            continue
        row = state.by_symbol[symbol]
        if not _same_number(row.value_number, cand.values[symbol]):
            plans.append((row, {"value": [row.value_number, cand.values[symbol]]}, "recompute"))
    return plans


def _check_rule_units(
    rules: Iterable[Requirement], state: ProjectParameters, cand: _Candidate, edits: Sequence[Edit]
) -> None:
    prefixes = {e.param.id: e.prefix for e in edits}
    for req in rules:
        row = state.by_id.get(req.rule_parameter_id) if req.rule_parameter_id else None
        if row is None or req.rule_unit is None or row.value_kind != "number":
            continue
        unit = cand.units[row.symbol]
        if not U.same_dimension(req.rule_unit, unit):
            raise UnitMismatch(
                f"requirement {req.key} compares {row.symbol} in {req.rule_unit!r}, which "
                f"cannot be converted from {unit!r}",
                field=prefixes.get(row.id, "") + "unit",
            )


def _apply_plans(plans: Sequence[_Plan], now: datetime) -> list[ParameterValueChange]:
    changes: list[ParameterValueChange] = []
    for p, diff, cause in plans:
        old_value, old_unit, old_version = param_value(p), p.unit, p.version
        for k, (_, new) in diff.items():
            if k == "value":
                store_value(p, new)
            else:
                setattr(p, k, new)
        p.version = old_version + 1
        p.updated_at = now
        changes.append(
            ParameterValueChange(
                parameter=p,
                cause=cause,
                old_value=old_value,
                new_value=param_value(p),
                old_unit=old_unit,
                unit=p.unit,
                old_version=old_version,
                version=p.version,
                changes=diff,
            )
        )
    return changes


async def apply_edits(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    state: ProjectParameters,
    edits: Sequence[Edit],
    now: datetime,
    action: str,
) -> ParameterChangeResult:
    """Validate, recompute and write ``edits`` (see the module docstring)."""
    for edit in edits:
        _prepare(edit)
    cand = _candidate(state, edits)
    graph = _check_graph(cand, edits)
    order = _recompute(graph, cand, edits)
    plans = _plan(state, cand, edits, order)
    rules = await _rules_on(
        session, {p.id for p, diff, _ in plans if "value" in diff or "unit" in diff}
    )
    _check_rule_units(rules, state, cand, edits)
    if not plans:
        return ParameterChangeResult(tuple(e.param for e in edits), (), (), (), (), None)

    # ---- write: nothing below raises a domain error.
    changes = _apply_plans(plans, now)
    edited = [c for c in changes if c.cause == "edit"]
    recomputed = [c for c in changes if c.cause == "recompute"]
    await _write_dependencies(session, state, [(p, d) for p, d, _ in plans if "formula" in d])
    req_changes = _evaluate_rules(rules, state, now)
    flipped = {c.id: c for c in req_changes if c.compliance_changed}
    changed_params = {c.id: c for c in changes if _content_changed(c)}
    suspect_ids = await _mark_suspect(session, state.project_id, changed_params, flipped)

    event = await append_event(
        session,
        project_id=state.project_id,
        kind="parameter.changed",
        payload={
            "edited": [c.as_payload() for c in edited],
            "recomputed": [c.as_payload() for c in recomputed],
            "requirements": [c.as_payload() for c in req_changes],
            "suspect_links": list(suspect_ids),
        },
        actor_id=actor.user_id,
    )
    # One multi-row INSERT (nothing to read back), not one ORM round trip per row.
    await session.execute(
        insert(cast(Table, ParameterVersion.__table__)),
        [
            {
                "id": uuid.uuid4(),
                "parameter_id": c.parameter.id,
                "version": c.parameter.version,
                "value_number": c.parameter.value_number,
                "value_bool": c.parameter.value_bool,
                "value_text": c.parameter.value_text,
                "unit": c.parameter.unit,
                "formula": c.parameter.formula,
                "cause": c.cause,
                "actor_id": actor.user_id,
                "event_sequence": event.sequence,
            }
            for c in changes
        ],
    )
    for change in changes:
        p = change.parameter
        record(
            session,
            actor=actor,
            meta=meta,
            action=action if change.cause == "edit" else "parameter.recompute",
            project_id=state.project_id,
            object_type="parameter",
            object_id=p.id,
            diff={**change.changes, "version": [change.old_version, change.version]},
        )
    for rc in req_changes:
        record(
            session,
            actor=actor,
            meta=meta,
            action="requirement.evaluate",
            project_id=state.project_id,
            object_type="requirement",
            object_id=rc.id,
            diff={
                "compliance": [rc.old_compliance, rc.new_compliance],
                "margin": [rc.old_margin, rc.new_margin],
            },
        )
    await session.flush()
    return ParameterChangeResult(
        parameters=tuple(e.param for e in edits),
        edited=tuple(edited),
        recomputed=tuple(recomputed),
        requirements=tuple(req_changes),
        suspect_link_ids=tuple(suspect_ids),
        event=event,
    )


def _current(p: Parameter, key: str) -> Any:
    return param_value(p) if key == "value" else getattr(p, key)


def _same_value(p: Parameter, new: ParameterValue) -> bool:
    old = param_value(p)
    if p.value_kind == "number" and p.formula is not None:
        return _same_number(old, new)
    return old == new and type(old) is type(new)


def _content_changed(change: ParameterValueChange) -> bool:
    return any(k in change.changes for k in ("value", "unit", "formula"))


async def _rules_on(session: AsyncSession, parameter_ids: Iterable[uuid.UUID]) -> list[Requirement]:
    ids = list(parameter_ids)
    if not ids:
        return []
    rows = await session.scalars(
        select(Requirement)
        .where(Requirement.rule_parameter_id.in_(ids), Requirement.deleted_at.is_(None))
        .order_by(Requirement.key)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def _evaluate_rules(
    rules: Iterable[Requirement], state: ProjectParameters, now: datetime
) -> list[RequirementComplianceChange]:
    changes: list[RequirementComplianceChange] = []
    for req in rules:
        p = state.by_id.get(req.rule_parameter_id) if req.rule_parameter_id else None
        if p is None or req.rule_operator is None or req.rule_threshold is None:
            continue
        compliance, margin = evaluate_rule(
            operator=req.rule_operator,
            threshold=req.rule_threshold,
            threshold_high=req.rule_threshold_high,
            rule_unit=req.rule_unit,
            value_kind=p.value_kind,
            value=param_value(p),
            unit=p.unit,
        )
        if compliance != req.compliance or margin != req.margin:
            changes.append(
                RequirementComplianceChange(req, req.compliance, compliance, req.margin, margin)
            )
            req.compliance, req.margin, req.updated_at = compliance, margin, now
    return changes


async def _write_dependencies(
    session: AsyncSession,
    state: ProjectParameters,
    changed: Sequence[tuple[Parameter, dict[str, Any]]],
) -> None:
    """Replace the recorded formula edges of parameters whose formula changed."""
    if not changed:
        return
    ids = [p.id for p, _ in changed]
    await session.execute(
        delete(ParameterDependency).where(ParameterDependency.parameter_id.in_(ids))
    )
    rows = [
        {"parameter_id": p.id, "depends_on_id": state.by_symbol[dep].id}
        for p, _ in changed
        if p.formula is not None
        for dep in sorted(parse(p.formula).symbols)
    ]
    if rows:
        await session.execute(insert(ParameterDependency), rows)


def _fmt(value: ParameterValue) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)


async def _mark_suspect(
    session: AsyncSession,
    project_id: uuid.UUID,
    params: Mapping[uuid.UUID, ParameterValueChange],
    reqs: Mapping[uuid.UUID, RequirementComplianceChange],
) -> list[uuid.UUID]:
    """Flag links whose parameter changed or whose requirement's compliance flipped."""
    if not params and not reqs:
        return []
    conditions = []
    if params:
        conditions.append(TraceLink.target_parameter_id.in_(list(params)))
    if reqs:
        conditions.append(TraceLink.requirement_id.in_(list(reqs)))
        conditions.append(TraceLink.target_requirement_id.in_(list(reqs)))
    links = await session.scalars(
        select(TraceLink)
        .where(TraceLink.project_id == project_id, TraceLink.suspect.is_(False), or_(*conditions))
        .order_by(TraceLink.id)
        .execution_options(populate_existing=True)
    )
    marked: list[uuid.UUID] = []
    for link in links:
        reasons: list[str] = []
        pc = params.get(link.target_parameter_id) if link.target_parameter_id else None
        if pc is not None:
            reasons.append(
                f"parameter {pc.symbol} changed: {_fmt(pc.old_value)} {pc.old_unit} -> "
                f"{_fmt(pc.new_value)} {pc.unit}".replace("  ", " ")
            )
        for req_id in (link.requirement_id, link.target_requirement_id):
            rc = reqs.get(req_id) if req_id else None
            if rc is not None:
                reasons.append(
                    f"requirement {rc.key} compliance changed: "
                    f"{rc.old_compliance} -> {rc.new_compliance}"
                )
        link.suspect = True
        link.suspect_reason = "; ".join(reasons)
        marked.append(link.id)
    return marked
