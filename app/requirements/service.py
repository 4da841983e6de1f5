"""Requirements (a tree, optionally with a rule on one parameter) and trace links.

A rule requirement's compliance and margin are evaluated as soon as the rule is
set, and kept current by every parameter edit (:mod:`app.parameters.recompute`).
Changing a requirement's statement or rule marks its trace links suspect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.components.models import Component
from app.parameters import units as U
from app.parameters.engine_errors import EngineError
from app.parameters.errors import from_engine_error
from app.parameters.models import Parameter
from app.parameters.recompute import param_value
from app.requirements.compliance import NUMERIC_OPERATORS, evaluate_rule
from app.requirements.errors import (
    Duplicate,
    HasDependents,
    NotFound,
    UnitMismatch,
    ValidationError,
    VersionConflict,
)
from app.requirements.models import (
    LINK_KINDS,
    PRIORITIES,
    RULE_OPERATORS,
    STATUSES,
    VERIFICATION_METHODS,
    Requirement,
    TraceLink,
)
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    authorize,
    authorize_object,
    check_choice,
    check_key,
    check_number,
    check_reparent,
    clean_text,
    created_diff,
    finish,
    lock_project,
    set_fields,
)

MAX_KEY = 64
MAX_TITLE = 300
# What each link kind points at.
LINK_TARGETS: dict[str, str] = {
    "satisfied_by": "component",
    "allocated_to": "component",
    "verified_by": "parameter",
    "derived_from": "requirement",
    "refines": "requirement",
}
_TARGET_MODELS: dict[str, Any] = {
    "component": Component,
    "parameter": Parameter,
    "requirement": Requirement,
}
# Changes to these fields change what the requirement demands: its links get suspect.
_SUBSTANTIVE = (
    "key",
    "title",
    "text",
    "rule_parameter_id",
    "rule_operator",
    "rule_threshold",
    "rule_threshold_high",
    "rule_unit",
)


@dataclass(frozen=True, slots=True)
class RuleInput:
    """``parameter OP threshold [unit]``: the parameter by ``parameter_id`` or symbol.

    ``unit`` defaults to the parameter's unit and must have its dimension;
    ``between`` needs ``threshold_high >= threshold``. Boolean parameters take
    ``==`` with threshold 1 (true) or 0 (false); text parameters take no rule.
    """

    operator: str
    threshold: float
    parameter_id: uuid.UUID | None = None
    parameter_symbol: str | None = None
    threshold_high: float | None = None
    unit: str | None = None


_CREATE_FIELDS = ("key", "title", "text", "priority", "status", "verification_method", "parent_id")
_RULE_FIELDS = (
    "rule_parameter_id",
    "rule_operator",
    "rule_threshold",
    "rule_threshold_high",
    "rule_unit",
)


async def _rule_fields(
    session: AsyncSession, project_id: uuid.UUID, rule: RuleInput | None
) -> tuple[dict[str, Any], Parameter | None]:
    """Validated column values of a rule (all None for no rule) and its parameter."""
    if rule is None:
        return dict.fromkeys(_RULE_FIELDS), None
    check_choice(rule.operator, RULE_OPERATORS, field="rule.operator")
    threshold = check_number(rule.threshold, field="rule.threshold")
    high = None
    if rule.operator == "between":
        if rule.threshold_high is None:
            raise ValidationError("between needs thresholdHigh", field="rule.thresholdHigh")
        high = check_number(rule.threshold_high, field="rule.thresholdHigh")
        if high < threshold:
            raise ValidationError("thresholdHigh must be >= threshold", field="rule.thresholdHigh")
    elif rule.threshold_high is not None:
        raise ValidationError(
            "thresholdHigh is only for the between operator", field="rule.thresholdHigh"
        )
    query = select(Parameter).where(
        Parameter.project_id == project_id, Parameter.deleted_at.is_(None)
    )
    if rule.parameter_id is not None:
        param = await session.scalar(query.where(Parameter.id == rule.parameter_id))
        field = "rule.parameterId"
    elif rule.parameter_symbol is not None:
        param = await session.scalar(query.where(Parameter.symbol == rule.parameter_symbol))
        field = "rule.parameterSymbol"
    else:
        raise ValidationError("a rule names its parameter", field="rule.parameterId")
    if param is None:
        raise NotFound("parameter not found", field=field)
    unit = rule.unit.strip() if rule.unit is not None else None
    if param.value_kind == "number":
        unit = param.unit if unit is None else unit
        try:
            U.parse_unit(unit)
        except EngineError as exc:
            raise from_engine_error(exc, field="rule.unit") from None
        if not U.same_dimension(unit, param.unit):
            raise UnitMismatch(
                f"{param.symbol} is in {param.unit!r} ({U.dimensionality(param.unit)}); "
                f"{unit!r} is {U.dimensionality(unit)}",
                field="rule.unit",
            )
    elif rule.operator in NUMERIC_OPERATORS:
        raise ValidationError(
            f"{param.symbol} is a {param.value_kind} parameter: {rule.operator!r} compares "
            "numbers; only '==' applies",
            field="rule.operator",
        )
    elif param.value_kind == "text":
        # The rule columns hold a numeric threshold only: no text to compare with.
        raise ValidationError(
            f"{param.symbol} is a text parameter; rules on text parameters are not supported",
            field="rule.parameterId" if rule.parameter_id else "rule.parameterSymbol",
        )
    else:  # boolean ==
        if unit:
            raise ValidationError("a boolean rule has no unit", field="rule.unit")
        if threshold not in (0.0, 1.0):
            raise ValidationError(
                "a boolean rule's threshold is 1 (true) or 0 (false)", field="rule.threshold"
            )
        unit = None
    fields = {
        "rule_parameter_id": param.id,
        "rule_operator": rule.operator,
        "rule_threshold": threshold,
        "rule_threshold_high": high,
        "rule_unit": unit,
    }
    return fields, param


def _evaluate(req: Requirement, param: Parameter | None) -> tuple[str, float | None]:
    if param is None or req.rule_operator is None or req.rule_threshold is None:
        return "UNKNOWN", None
    return evaluate_rule(
        operator=req.rule_operator,
        threshold=req.rule_threshold,
        threshold_high=req.rule_threshold_high,
        rule_unit=req.rule_unit,
        value_kind=param.value_kind,
        value=param_value(param),
        unit=param.unit,
    )


async def _check_key_free(
    session: AsyncSession, project_id: uuid.UUID, key: str, exclude: uuid.UUID | None
) -> None:
    query = select(Requirement.id).where(
        Requirement.project_id == project_id,
        Requirement.key == key,
        Requirement.deleted_at.is_(None),
    )
    if exclude is not None:
        query = query.where(Requirement.id != exclude)
    if await session.scalar(query.limit(1)) is not None:
        raise Duplicate(f"a requirement with key {key!r} already exists", field="key")


async def _live_in_project(
    session: AsyncSession, model: Any, object_id: uuid.UUID, project_id: uuid.UUID
) -> Any:
    return await session.scalar(
        select(model).where(
            model.id == object_id, model.project_id == project_id, model.deleted_at.is_(None)
        )
    )


def _method(verification_method: str | None, has_rule: bool) -> str:
    method = verification_method or ("rule" if has_rule else "analysis")
    check_choice(method, VERIFICATION_METHODS, field="verificationMethod")
    if has_rule and method != "rule":
        raise ValidationError(
            "a requirement with a rule has verification method 'rule'",
            field="verificationMethod",
        )
    return method


def _payload(req: Requirement, diff: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "object_type": "requirement",
        "id": req.id,
        "key": req.key,
        "compliance": req.compliance,
        "margin": req.margin,
        "changes": diff,
    }


async def requirement_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    key: str,
    title: str,
    text: str = "",
    priority: str = "medium",
    status: str = "draft",
    verification_method: str | None = None,
    parent_id: uuid.UUID | None = None,
    rule: RuleInput | None = None,
) -> Requirement:
    """Create a requirement; a rule is checked and evaluated at once.

    ``verification_method`` defaults to ``rule`` with a rule, else ``analysis``.
    """
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    key = check_key(key, field="key", max_length=MAX_KEY)
    title = clean_text(title, field="title", max_length=MAX_TITLE)
    text = clean_text(text, field="text", max_length=MAX_DESCRIPTION, allow_empty=True)
    check_choice(priority, PRIORITIES, field="priority")
    check_choice(status, STATUSES, field="status")
    method = _method(verification_method, rule is not None)
    await lock_project(session, project_id)
    await _check_key_free(session, project_id, key, None)
    if (
        parent_id is not None
        and await _live_in_project(session, Requirement, parent_id, project_id) is None
    ):
        raise NotFound("parent requirement not found", field="parentId")
    rule_fields, param = await _rule_fields(session, project_id, rule)
    req = Requirement(
        id=uuid.uuid4(),
        project_id=project_id,
        parent_id=parent_id,
        key=key,
        title=title,
        text=text,
        priority=priority,
        status=status,
        verification_method=method,
        version=1,
        **rule_fields,
    )
    req.compliance, req.margin = _evaluate(req, param)
    session.add(req)
    await session.flush()
    diff = created_diff(
        req,
        (*_CREATE_FIELDS, *_RULE_FIELDS, "compliance", "margin"),
    )
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="requirement.create",
        event_kind="requirement.created",
        object_type="requirement",
        object_id=req.id,
        diff=diff,
        payload=_payload(req, diff),
    )
    return req


async def _load_for_update(
    session: AsyncSession, requirement_id: uuid.UUID, expected_version: int | None
) -> Requirement:
    req = await session.scalar(
        select(Requirement)
        .where(Requirement.id == requirement_id, Requirement.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if req is None:
        raise NotFound("requirement not found", field="id")
    if expected_version is not None and req.version != expected_version:
        raise VersionConflict(
            f"{req.key} is at version {req.version}, not {expected_version}",
            current_version=req.version,
            current_value=None,
        )
    return req


async def requirement_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    requirement_id: uuid.UUID,
    expected_version: int | None = None,
    key: str | Unset = UNSET,
    title: str | Unset = UNSET,
    text: str | Unset = UNSET,
    priority: str | Unset = UNSET,
    status: str | Unset = UNSET,
    verification_method: str | Unset = UNSET,
    parent_id: uuid.UUID | Unset | None = UNSET,
    rule: RuleInput | Unset | None = UNSET,
) -> Requirement:
    """Edit a requirement (version + 1). ``rule=None`` removes the rule; ``parent_id=None``
    makes it a root. Compliance is re-evaluated; a changed statement, rule or compliance
    marks its trace links suspect."""
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Requirement,
        object_id=requirement_id,
        what="requirement",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    req = await _load_for_update(session, requirement_id, expected_version)
    changes: dict[str, Any] = {}
    if key is not UNSET:
        changes["key"] = check_key(key, field="key", max_length=MAX_KEY)
        await _check_key_free(session, project_id, changes["key"], req.id)
    if title is not UNSET:
        changes["title"] = clean_text(title, field="title", max_length=MAX_TITLE)
    if text is not UNSET:
        changes["text"] = clean_text(
            text, field="text", max_length=MAX_DESCRIPTION, allow_empty=True
        )
    if priority is not UNSET:
        changes["priority"] = check_choice(priority, PRIORITIES, field="priority")
    if status is not UNSET:
        changes["status"] = check_choice(status, STATUSES, field="status")
    if parent_id is not UNSET:
        if parent_id is not None:
            if await _live_in_project(session, Requirement, parent_id, project_id) is None:
                raise NotFound("parent requirement not found", field="parentId")
            await check_reparent(
                session,
                model=Requirement,
                label=Requirement.key,
                object_id=req.id,
                object_label=req.key,
                new_parent_id=parent_id,
                field="parentId",
            )
        changes["parent_id"] = parent_id
    param: Parameter | None = None
    if rule is not UNSET:
        rule_fields, param = await _rule_fields(session, project_id, rule)
        changes.update(rule_fields)
    elif req.rule_parameter_id is not None:
        param = await session.get(Parameter, req.rule_parameter_id)
    has_rule = changes.get("rule_parameter_id", req.rule_parameter_id) is not None
    if verification_method is not UNSET:
        changes["verification_method"] = _method(verification_method, has_rule)
    elif has_rule and req.verification_method != "rule":
        changes["verification_method"] = "rule"
    diff = set_fields(req, changes)
    compliance, margin = _evaluate(req, param)
    diff |= set_fields(req, {"compliance": compliance, "margin": margin})
    if not diff:
        return req
    old_version = req.version
    req.version = old_version + 1
    req.updated_at = now
    diff["version"] = [old_version, req.version]
    reasons = [k for k in _SUBSTANTIVE if k in diff]
    if "compliance" in diff:
        reasons.append(f"compliance {diff['compliance'][0]} -> {diff['compliance'][1]}")
    if reasons:
        await _mark_links_suspect(
            session, req, f"requirement {req.key} changed: " + ", ".join(reasons)
        )
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="requirement.update",
        event_kind="requirement.updated",
        object_type="requirement",
        object_id=req.id,
        diff=diff,
        payload=_payload(req, diff),
    )
    return req


async def _mark_links_suspect(session: AsyncSession, req: Requirement, reason: str) -> None:
    links = await session.scalars(
        select(TraceLink)
        .where(
            or_(TraceLink.requirement_id == req.id, TraceLink.target_requirement_id == req.id),
            TraceLink.suspect.is_(False),
        )
        .execution_options(populate_existing=True)
    )
    for link in links:
        link.suspect = True
        link.suspect_reason = reason


async def requirement_delete(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    requirement_id: uuid.UUID,
    expected_version: int | None = None,
) -> Requirement:
    """Soft-delete a requirement without live children; its trace links go with it."""
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Requirement,
        object_id=requirement_id,
        what="requirement",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    req = await _load_for_update(session, requirement_id, expected_version)
    children = (
        await session.scalars(
            select(Requirement.key)
            .where(Requirement.parent_id == req.id, Requirement.deleted_at.is_(None))
            .order_by(Requirement.key)
        )
    ).all()
    if children:
        raise HasDependents(
            f"{req.key} has child requirements: {', '.join(children)}",
            dependents=children,
            field="id",
        )
    links = (
        await session.scalars(
            delete(TraceLink)
            .where(
                or_(TraceLink.requirement_id == req.id, TraceLink.target_requirement_id == req.id)
            )
            .returning(TraceLink.id)
        )
    ).all()
    req.deleted_at = now
    req.updated_at = now
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="requirement.delete",
        event_kind="requirement.deleted",
        object_type="requirement",
        object_id=req.id,
        diff={"deleted_at": [None, now], "trace_links_removed": [list(links), []]},
    )
    return req


# --------------------------------------------------------------------------- trace links


async def trace_link_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    requirement_id: uuid.UUID,
    kind: str,
    target_id: uuid.UUID,
) -> TraceLink:
    """Link a requirement to a component (satisfied_by, allocated_to), a parameter
    (verified_by) or another requirement (derived_from, refines) of its project."""
    check_choice(kind, LINK_KINDS, field="kind")
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Requirement,
        object_id=requirement_id,
        what="requirement",
        minimum="editor",
        field="requirementId",
    )
    await lock_project(session, project_id)
    target_type = LINK_TARGETS[kind]
    if target_type == "requirement" and target_id == requirement_id:
        raise ValidationError("a requirement cannot link to itself", field="targetId")
    target = await _live_in_project(session, _TARGET_MODELS[target_type], target_id, project_id)
    if target is None:
        raise NotFound(
            f"{target_type} not found (a {kind} link targets a {target_type})", field="targetId"
        )
    column = {
        "component": TraceLink.target_component_id,
        "parameter": TraceLink.target_parameter_id,
        "requirement": TraceLink.target_requirement_id,
    }[target_type]
    exists = await session.scalar(
        select(TraceLink.id).where(
            TraceLink.requirement_id == requirement_id, TraceLink.kind == kind, column == target_id
        )
    )
    if exists is not None:
        raise Duplicate("this link already exists", field="targetId")
    link = TraceLink(
        id=uuid.uuid4(),
        project_id=project_id,
        requirement_id=requirement_id,
        kind=kind,
        created_by_id=actor.user_id,
        suspect=False,
        **{column.key: target_id},
    )
    session.add(link)
    await session.flush()
    diff = {
        "requirement_id": [None, requirement_id],
        "kind": [None, kind],
        f"target_{target_type}_id": [None, target_id],
    }
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="trace_link.create",
        event_kind="trace_link.created",
        object_type="trace_link",
        object_id=link.id,
        diff=diff,
    )
    return link


async def _link_for_write(
    session: AsyncSession, *, actor: Principal, link_id: uuid.UUID
) -> tuple[TraceLink, datetime]:
    project_id = await session.scalar(select(TraceLink.project_id).where(TraceLink.id == link_id))
    if project_id is None:
        raise NotFound("trace link not found", field="id")
    await authorize(
        session,
        actor=actor,
        project_id=project_id,
        minimum="editor",
        not_found="trace link not found",
        field="id",
    )
    now = await lock_project(session, project_id)
    link = await session.scalar(
        select(TraceLink)
        .where(TraceLink.id == link_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if link is None:
        raise NotFound("trace link not found", field="id")
    return link, now


async def trace_link_delete(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, link_id: uuid.UUID
) -> TraceLink:
    """Delete a trace link (links have no soft delete; the audit row keeps it)."""
    link, _ = await _link_for_write(session, actor=actor, link_id=link_id)
    diff: dict[str, list[Any]] = {
        "requirement_id": [link.requirement_id, None],
        "kind": [link.kind, None],
        "target_component_id": [link.target_component_id, None],
        "target_parameter_id": [link.target_parameter_id, None],
        "target_requirement_id": [link.target_requirement_id, None],
    }
    await session.delete(link)
    await session.flush()
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=link.project_id,
        action="trace_link.delete",
        event_kind="trace_link.deleted",
        object_type="trace_link",
        object_id=link.id,
        diff={k: v for k, v in diff.items() if v[0] is not None},
    )
    return link


async def suspect_clear(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, link_id: uuid.UUID
) -> TraceLink:
    """Mark a suspect link reviewed (no-op if it is not suspect)."""
    link, now = await _link_for_write(session, actor=actor, link_id=link_id)
    diff = set_fields(link, {"suspect": False, "suspect_reason": None})
    if diff:
        link.updated_at = now
        await finish(
            session,
            actor=actor,
            meta=meta,
            project_id=link.project_id,
            action="trace_link.suspect_clear",
            event_kind="trace_link.updated",
            object_type="trace_link",
            object_id=link.id,
            diff=diff,
        )
    return link
