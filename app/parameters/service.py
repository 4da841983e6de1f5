"""Parameter use cases: create, update (optimistic concurrency), bulk set values, delete.

Services flush, never commit. Every edit that changes a value, unit or formula
recomputes the downstream closure and re-evaluates rule requirements in the same
transaction (see :mod:`app.parameters.recompute`); each operation appends one
project event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta, record
from app.auth.principal import Principal
from app.components.models import Component
from app.events import append_event
from app.parameters import units as U
from app.parameters.engine_errors import EngineError
from app.parameters.errors import (
    CycleDetected,
    Duplicate,
    HasDependents,
    NotFound,
    UnitMismatch,
    ValidationError,
    VersionConflict,
    from_engine_error,
)
from app.parameters.formula import is_valid_symbol
from app.parameters.models import VALUE_KINDS, Parameter, ParameterDependency, ParameterVersion
from app.parameters.recompute import (
    MAX_NAME,
    Edit,
    ProjectParameters,
    apply_edits,
    check_formula,
    coerce_value,
    evaluate_formula,
    param_value,
    parse_unit_field,
    store_value,
)
from app.parameters.results import (
    ParameterChangeResult,
    ParameterValueChange,
    RequirementComplianceChange,
)
from app.requirements.compliance import ParameterValue
from app.requirements.models import Requirement, TraceLink
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    authorize,
    authorize_object,
    check_choice,
    check_number,
    clean_text,
    lock_project,
)

MAX_BULK_ITEMS = 1000

__all__ = [
    "ParameterChangeResult",
    "ParameterValueChange",
    "ParameterValueInput",
    "RequirementComplianceChange",
    "parameter_create",
    "parameter_delete",
    "parameter_set_values",
    "parameter_update",
]


@dataclass(frozen=True, slots=True)
class ParameterValueInput:
    """One item of :func:`parameter_set_values`: the parameter by ``id`` or ``symbol``.

    ``unit`` is the unit ``value`` is given in; it is converted to the parameter's
    declared unit (which does not change). ``expected_version`` is optional here.
    """

    value: ParameterValue
    id: uuid.UUID | None = None
    symbol: str | None = None
    unit: str | None = None
    expected_version: int | None = None


async def parameter_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    symbol: str,
    name: str,
    value_kind: str = "number",
    value: ParameterValue = None,
    unit: str = "",
    formula: str | None = None,
    description: str = "",
    uncertainty: float | None = None,
    component_id: uuid.UUID | None = None,
) -> Parameter:
    """Create a parameter; with a formula it is derived and its value computed."""
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    if not isinstance(symbol, str) or not is_valid_symbol(symbol):
        raise ValidationError(
            f"{symbol!r} is not a valid symbol: use a letter or _ then letters, digits or _ "
            "(at most 64), not a function or constant name",
            field="symbol",
        )
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    check_choice(value_kind, VALUE_KINDS, field="valueKind")
    unit = parse_unit_field(unit, kind=value_kind, field="unit")
    if uncertainty is not None:
        if value_kind != "number":
            raise ValidationError(
                "only numeric parameters have an uncertainty", field="uncertainty"
            )
        uncertainty = check_number(uncertainty, field="uncertainty")
        if uncertainty < 0:
            raise ValidationError("uncertainty must be >= 0", field="uncertainty")
    formula = (formula.strip() or None) if isinstance(formula, str) else formula
    if formula is not None and value_kind != "number":
        raise ValidationError("only numeric parameters can have a formula", field="formula")
    if formula is not None and value is not None:
        raise ValidationError(
            "a derived parameter's value is computed from its formula; omit the value",
            field="value",
        )
    value = coerce_value(value_kind, value, field="value")

    await lock_project(session, project_id)
    if component_id is not None:
        found = await session.scalar(
            select(Component.id).where(
                Component.id == component_id,
                Component.project_id == project_id,
                Component.deleted_at.is_(None),
            )
        )
        if found is None:
            raise NotFound("component not found", field="componentId")
    state = await ProjectParameters.load(session, project_id)
    if symbol in state.by_symbol:
        raise Duplicate(f"a parameter with symbol {symbol!r} already exists", field="symbol")
    dependencies: list[Parameter] = []
    if formula is not None:
        units = {p.symbol: p.unit for p in state.numeric()} | {symbol: unit}
        kinds = state.kinds() | {symbol: value_kind}
        parsed = check_formula(
            formula, symbol=symbol, unit=unit, units=units, kinds=kinds, field="formula"
        )
        if symbol in parsed.symbols:
            raise CycleDetected(
                f"the formula of {symbol} refers to itself",
                path=[symbol, symbol],
                field="formula",
            )
        value = evaluate_formula(
            parsed,
            symbol=symbol,
            unit=unit,
            values={p.symbol: param_value(p) for p in state.rows},
            units=units,
            field="formula",
        )
        dependencies = [state.by_symbol[s] for s in sorted(parsed.symbols)]

    param = Parameter(
        id=uuid.uuid4(),
        project_id=project_id,
        component_id=component_id,
        symbol=symbol,
        name=name,
        description=description,
        value_kind=value_kind,
        unit=unit,
        uncertainty=uncertainty,
        formula=formula,
        version=1,
    )
    store_value(param, value)
    session.add(param)
    await session.flush()
    if dependencies:
        await session.execute(
            insert(ParameterDependency),
            [{"parameter_id": param.id, "depends_on_id": dep.id} for dep in dependencies],
        )
    fields = ("symbol", "name", "value_kind", "unit", "formula", "uncertainty", "component_id")
    diff = {k: [None, getattr(param, k)] for k in fields} | {"value": [None, value]}
    event = await append_event(
        session,
        project_id=project_id,
        kind="parameter.created",
        payload={
            "object_type": "parameter",
            "id": param.id,
            "symbol": symbol,
            "value": value,
            "unit": unit,
            "formula": formula,
            "version": 1,
        },
        actor_id=actor.user_id,
    )
    session.add(
        ParameterVersion(
            id=uuid.uuid4(),
            parameter_id=param.id,
            version=1,
            value_number=param.value_number,
            value_bool=param.value_bool,
            value_text=param.value_text,
            unit=unit,
            formula=formula,
            cause="create",
            actor_id=actor.user_id,
            event_sequence=event.sequence,
        )
    )
    record(
        session,
        actor=actor,
        meta=meta,
        action="parameter.create",
        project_id=project_id,
        object_type="parameter",
        object_id=param.id,
        diff=diff,
    )
    await session.flush()
    return param


async def _locked(
    session: AsyncSession, parameter_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Parameter]:
    """Row-lock parameters (re-read after any wait, so versions are current)."""
    rows = await session.scalars(
        select(Parameter)
        .where(Parameter.id.in_(parameter_ids), Parameter.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {p.id: p for p in rows}


async def parameter_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    parameter_id: uuid.UUID,
    expected_version: int,
    value: ParameterValue | Unset = UNSET,
    unit: str | Unset = UNSET,
    formula: str | Unset | None = UNSET,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    uncertainty: float | Unset | None = UNSET,
) -> ParameterChangeResult:
    """Edit one parameter if it is still at ``expected_version``; recompute what follows.

    A stale version raises VersionConflict (current version and value) and changes
    nothing. ``unit`` alone converts the stored value (20 kg -> 20000 g); with
    ``value`` the value is taken in the new unit. A derived parameter's value cannot
    be set: set ``formula`` to None to make it independent.
    """
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Parameter,
        object_id=parameter_id,
        what="parameter",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    param = (await _locked(session, [parameter_id])).get(parameter_id)
    if param is None:
        raise NotFound("parameter not found", field="id")
    if param.version != expected_version:
        raise VersionConflict(
            f"{param.symbol} is at version {param.version}, not {expected_version}",
            current_version=param.version,
            current_value=param_value(param),
        )
    state = await ProjectParameters.load(session, project_id)
    edit = Edit(
        param=state.by_id[param.id],
        value=value,
        unit=unit,
        formula=formula,
        name=name,
        description=description,
        uncertainty=uncertainty,
    )
    return await apply_edits(
        session,
        actor=actor,
        meta=meta,
        state=state,
        edits=[edit],
        now=now,
        action="parameter.update",
    )


async def parameter_set_values(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    items: Sequence[ParameterValueInput],
) -> ParameterChangeResult:
    """Set many values atomically: all items apply, with one recompute and one event, or none."""
    if not items:
        raise ValidationError("give at least one item", field="items")
    if len(items) > MAX_BULK_ITEMS:
        raise ValidationError(f"at most {MAX_BULK_ITEMS} items per call", field="items")
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    now = await lock_project(session, project_id)
    state = await ProjectParameters.load(session, project_id)
    edits: list[Edit] = []
    seen: set[uuid.UUID] = set()
    for i, item in enumerate(items):
        pre = f"items.{i}."
        param = _resolve_item(state, item, pre)
        if param.id in seen:
            raise ValidationError(f"{param.symbol} appears twice", field=pre + "id")
        seen.add(param.id)
        if item.expected_version is not None and param.version != item.expected_version:
            raise VersionConflict(
                f"{param.symbol} is at version {param.version}, not {item.expected_version}",
                current_version=param.version,
                current_value=param_value(param),
                field=pre + "expectedVersion",
            )
        value = item.value
        if item.unit is not None and value is not None:
            value = _convert_item(param, value, item.unit, pre)
        edits.append(Edit(param=param, prefix=pre, value=value))
    # Belt and braces under the project lock: the rows being edited are locked too.
    await session.execute(
        select(Parameter.id).where(Parameter.id.in_(list(seen))).with_for_update()
    )
    return await apply_edits(
        session,
        actor=actor,
        meta=meta,
        state=state,
        edits=edits,
        now=now,
        action="parameter.set_value",
    )


def _resolve_item(state: ProjectParameters, item: ParameterValueInput, pre: str) -> Parameter:
    if item.id is None and item.symbol is None:
        raise ValidationError("give the parameter's id or symbol", field=pre + "id")
    by_id = state.by_id.get(item.id) if item.id is not None else None
    by_symbol = state.by_symbol.get(item.symbol) if item.symbol is not None else None
    if item.id is not None and by_id is None:
        raise NotFound("parameter not found", field=pre + "id")
    if item.symbol is not None and by_symbol is None:
        raise NotFound(f"no parameter with symbol {item.symbol!r}", field=pre + "symbol")
    if by_id is not None and by_symbol is not None and by_id is not by_symbol:
        raise ValidationError("id and symbol name different parameters", field=pre + "symbol")
    param = by_id or by_symbol
    assert param is not None
    return param


def _convert_item(param: Parameter, value: ParameterValue, unit: str, pre: str) -> float:
    if param.value_kind != "number":
        raise ValidationError(f"a {param.value_kind} value has no unit", field=pre + "unit")
    number = check_number(value, field=pre + "value")
    try:
        return float(U.convert(number, U.parse_unit(unit), param.unit))
    except EngineError as exc:
        error = from_engine_error(exc, field=pre + "unit")
        if isinstance(error, UnitMismatch):
            error.message = f"{param.symbol} is in {param.unit!r}: {exc.message}"
        raise error from None


async def parameter_delete(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    parameter_id: uuid.UUID,
    expected_version: int | None = None,
) -> Parameter:
    """Soft-delete a parameter nothing depends on (no formula reads it, no rule uses it).

    Otherwise HasDependents lists the dependent symbols and requirement keys. Trace
    links to the parameter are removed with it.
    """
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Parameter,
        object_id=parameter_id,
        what="parameter",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    param = (await _locked(session, [parameter_id])).get(parameter_id)
    if param is None:
        raise NotFound("parameter not found", field="id")
    if expected_version is not None and param.version != expected_version:
        raise VersionConflict(
            f"{param.symbol} is at version {param.version}, not {expected_version}",
            current_version=param.version,
            current_value=param_value(param),
        )
    dependents = (
        await session.scalars(
            select(Parameter.symbol)
            .join(ParameterDependency, ParameterDependency.parameter_id == Parameter.id)
            .where(ParameterDependency.depends_on_id == param.id, Parameter.deleted_at.is_(None))
            .order_by(Parameter.symbol)
        )
    ).all()
    rules = (
        await session.scalars(
            select(Requirement.key)
            .where(Requirement.rule_parameter_id == param.id, Requirement.deleted_at.is_(None))
            .order_by(Requirement.key)
        )
    ).all()
    if dependents or rules:
        what = [*(f"formula of {s}" for s in dependents), *(f"rule of {k}" for k in rules)]
        raise HasDependents(
            f"{param.symbol} is used by: {', '.join(what)}",
            dependents=dependents,
            requirements=rules,
            field="id",
        )
    param.deleted_at = now
    param.updated_at = now
    await session.execute(
        delete(ParameterDependency).where(ParameterDependency.parameter_id == param.id)
    )
    links = (
        await session.scalars(
            delete(TraceLink)
            .where(TraceLink.target_parameter_id == param.id)
            .returning(TraceLink.id)
        )
    ).all()
    diff = {"deleted_at": [None, now], "trace_links_removed": [list(links), []]}
    record(
        session,
        actor=actor,
        meta=meta,
        action="parameter.delete",
        project_id=project_id,
        object_type="parameter",
        object_id=param.id,
        diff=diff,
    )
    await append_event(
        session,
        project_id=project_id,
        kind="parameter.deleted",
        payload={"object_type": "parameter", "id": param.id, "symbol": param.symbol},
        actor_id=actor.user_id,
    )
    await session.flush()
    return param
