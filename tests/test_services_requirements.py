"""Requirements with rules (compliance, margin), the requirement tree, trace links."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.principal import Principal
from app.components.service import component_create
from app.parameters.models import Parameter
from app.parameters.service import parameter_create, parameter_update
from app.projects.service import project_create
from app.requirements.models import Requirement, TraceLink
from app.requirements.service import (
    RuleInput,
    requirement_create,
    requirement_delete,
    requirement_update,
    suspect_clear,
    trace_link_create,
    trace_link_delete,
)
from tests.conftest import Factory
from tests.services_kit import Maker, fails, fingerprint, ok, principal


@dataclass
class World:
    actor: Principal
    project_id: uuid.UUID
    params: dict[str, Parameter]


@pytest.fixture
async def world(factory: Factory, sessionmaker: Maker) -> World:
    actor = await principal(sessionmaker, await factory.account())
    pid = (await ok(sessionmaker, project_create, actor=actor, name="Reqs")).id
    params: dict[str, Parameter] = {}
    for symbol, kw in (
        ("mass", {"value": 10.0, "unit": "kg"}),
        ("flag", {"value": True, "value_kind": "boolean"}),
        ("label", {"value": "alpha", "value_kind": "text"}),
        ("double", {"formula": "mass * 2", "unit": "kg"}),
    ):
        params[symbol] = await ok(
            sessionmaker,
            parameter_create,
            actor=actor,
            project_id=pid,
            symbol=symbol,
            name=symbol,
            **kw,
        )
    return World(actor, pid, params)


async def _req(world: World, sessionmaker: Maker, key: str, **kw: Any) -> Requirement:
    return await ok(
        sessionmaker,
        requirement_create,
        actor=world.actor,
        project_id=world.project_id,
        key=key,
        title=key,
        **kw,
    )


async def test_rule_validation_is_typed_and_changes_nothing(
    world: World, sessionmaker: Maker
) -> None:
    await _req(world, sessionmaker, "REQ-1")
    snapshot = await fingerprint(sessionmaker, world.project_id)

    def rule(**kw: Any) -> RuleInput:
        return RuleInput(**{"operator": "<=", "threshold": 1.0, "parameter_symbol": "mass", **kw})

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"rule": rule(unit="m")}, "UNIT_MISMATCH", "rule.unit"),
        ({"rule": rule(unit="kilobananas")}, "UNKNOWN_UNIT", "rule.unit"),
        ({"rule": rule(parameter_symbol="label")}, "VALIDATION_ERROR", "rule.operator"),
        (
            {"rule": rule(parameter_symbol="label", operator="==")},
            "VALIDATION_ERROR",
            "rule.parameterSymbol",
        ),
        (
            {"rule": rule(parameter_symbol="flag", operator=">")},
            "VALIDATION_ERROR",
            "rule.operator",
        ),
        (
            {"rule": rule(parameter_symbol="flag", operator="==", threshold=2.0)},
            "VALIDATION_ERROR",
            "rule.threshold",
        ),
        ({"rule": rule(operator="between")}, "VALIDATION_ERROR", "rule.thresholdHigh"),
        (
            {"rule": rule(operator="between", threshold_high=0.5)},
            "VALIDATION_ERROR",
            "rule.thresholdHigh",
        ),
        ({"rule": rule(threshold_high=5.0)}, "VALIDATION_ERROR", "rule.thresholdHigh"),
        ({"rule": rule(operator="=<")}, "VALIDATION_ERROR", "rule.operator"),
        ({"rule": rule(threshold=float("inf"))}, "VALIDATION_ERROR", "rule.threshold"),
        ({"rule": rule(parameter_symbol="nope")}, "NOT_FOUND", "rule.parameterSymbol"),
        (
            {"rule": rule(parameter_id=uuid.uuid4(), parameter_symbol=None)},
            "NOT_FOUND",
            "rule.parameterId",
        ),
        ({"rule": rule(), "verification_method": "test"}, "VALIDATION_ERROR", "verificationMethod"),
        ({"key": "REQ-1"}, "DUPLICATE", "key"),
        ({"key": "REQ 2"}, "VALIDATION_ERROR", "key"),
        ({"parent_id": uuid.uuid4()}, "NOT_FOUND", "parentId"),
        ({"priority": "urgent"}, "VALIDATION_ERROR", "priority"),
    ]
    for inputs, code, field in cases:
        args = {"key": "REQ-2", "title": "T", **inputs}
        error = await fails(
            sessionmaker,
            requirement_create,
            actor=world.actor,
            project_id=world.project_id,
            **args,
        )
        assert (error.code, error.field) == (code, field), (inputs, error.details())
    assert await fingerprint(sessionmaker, world.project_id) == snapshot


@pytest.mark.parametrize(
    ("rule", "compliance", "margin"),
    [
        ({"operator": "<=", "threshold": 12000.0, "unit": "g"}, "PASS", 2000.0),
        ({"operator": "<", "threshold": 10.0}, "FAIL", 0.0),
        ({"operator": ">=", "threshold": 10.0}, "PASS", 0.0),
        ({"operator": ">", "threshold": 0.011, "unit": "t"}, "FAIL", -0.001),
        ({"operator": "==", "threshold": 10.0}, "PASS", 0.0),
        ({"operator": "==", "threshold": 11.0}, "FAIL", -1.0),
        ({"operator": "between", "threshold": 5.0, "threshold_high": 8.0}, "FAIL", -2.0),
        ({"operator": "between", "threshold": 9.0, "threshold_high": 15.0}, "PASS", 1.0),
    ],
)
async def test_compliance_and_margin_in_rule_unit(
    world: World, sessionmaker: Maker, rule: dict[str, Any], compliance: str, margin: float
) -> None:
    req = await _req(world, sessionmaker, "REQ-M", rule=RuleInput(parameter_symbol="mass", **rule))
    assert req.verification_method == "rule"
    assert req.compliance == compliance
    assert req.margin == pytest.approx(margin, abs=1e-9)


async def test_boolean_rule_and_recompute_keeps_compliance_current(
    world: World, sessionmaker: Maker
) -> None:
    actor, params = world.actor, world.params
    flag_req = await _req(
        world,
        sessionmaker,
        "REQ-FLAG",
        rule=RuleInput(operator="==", threshold=1.0, parameter_id=params["flag"].id),
    )
    assert (flag_req.compliance, flag_req.margin) == ("PASS", None)
    dbl = await _req(
        world,
        sessionmaker,
        "REQ-DBL",
        rule=RuleInput(operator="<=", threshold=25.0, parameter_symbol="double"),
    )
    link = await ok(
        sessionmaker,
        trace_link_create,
        actor=actor,
        requirement_id=dbl.id,
        kind="verified_by",
        target_id=params["double"].id,
    )
    result = await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=params["mass"].id,
        expected_version=1,
        value=13.0,
    )
    change = result.compliance_changes[0]
    assert (change.key, change.old_compliance, change.new_compliance) == ("REQ-DBL", "PASS", "FAIL")
    assert (change.old_margin, change.new_margin) == (5.0, -1.0)
    assert result.suspect_link_ids == (link.id,)
    result = await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=params["flag"].id,
        expected_version=1,
        value=False,
    )
    assert [(c.key, c.new_compliance) for c in result.compliance_changes] == [("REQ-FLAG", "FAIL")]
    # A rule's parameter cannot move to a unit its rule cannot compare.
    error = await fails(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=params["mass"].id,
        expected_version=2,
        unit="m",
    )
    assert error.code == "UNIT_MISMATCH"


async def test_update_tree_links_suspect_and_delete(world: World, sessionmaker: Maker) -> None:
    actor, pid = world.actor, world.project_id
    top = await _req(world, sessionmaker, "REQ-TOP")
    mid = await _req(world, sessionmaker, "REQ-MID", parent_id=top.id)
    leaf = await _req(
        world,
        sessionmaker,
        "REQ-LEAF",
        parent_id=mid.id,
        rule=RuleInput(operator="<=", threshold=20.0, parameter_symbol="mass"),
    )
    comp = await ok(
        sessionmaker, component_create, actor=actor, project_id=pid, tag="SAT", name="Sat"
    )
    derived = await ok(
        sessionmaker,
        trace_link_create,
        actor=actor,
        requirement_id=leaf.id,
        kind="derived_from",
        target_id=mid.id,
    )
    sat = await ok(
        sessionmaker,
        trace_link_create,
        actor=actor,
        requirement_id=leaf.id,
        kind="satisfied_by",
        target_id=comp.id,
    )
    snapshot = await fingerprint(sessionmaker, pid)
    for kwargs, code, field in [
        (
            {"requirement_id": leaf.id, "kind": "derived_from", "target_id": mid.id},
            "DUPLICATE",
            "targetId",
        ),
        (
            {"requirement_id": leaf.id, "kind": "verified_by", "target_id": comp.id},
            "NOT_FOUND",
            "targetId",
        ),
        (
            {"requirement_id": leaf.id, "kind": "refines", "target_id": leaf.id},
            "VALIDATION_ERROR",
            "targetId",
        ),
        (
            {"requirement_id": leaf.id, "kind": "blames", "target_id": comp.id},
            "VALIDATION_ERROR",
            "kind",
        ),
    ]:
        error = await fails(sessionmaker, trace_link_create, actor=actor, **kwargs)
        assert (error.code, error.field) == (code, field)
    error = await fails(
        sessionmaker, requirement_update, actor=actor, requirement_id=top.id, parent_id=leaf.id
    )
    assert error.code == "CYCLE_DETECTED"
    assert error.details()["path"] == ["REQ-TOP", "REQ-LEAF", "REQ-MID", "REQ-TOP"]
    error = await fails(sessionmaker, requirement_delete, actor=actor, requirement_id=mid.id)
    assert (error.code, error.details()["dependents"]) == ("HAS_DEPENDENTS", ["REQ-LEAF"])
    stale = await fails(
        sessionmaker,
        requirement_update,
        actor=actor,
        requirement_id=leaf.id,
        expected_version=5,
        title="x",
    )
    assert stale.code == "VERSION_CONFLICT"
    assert await fingerprint(sessionmaker, pid) == snapshot

    # Tightening the rule flips compliance: version + 1, links suspect.
    updated = await ok(
        sessionmaker,
        requirement_update,
        actor=actor,
        requirement_id=leaf.id,
        expected_version=1,
        rule=RuleInput(operator="<=", threshold=5000.0, parameter_symbol="mass", unit="g"),
    )
    assert (updated.version, updated.compliance, updated.margin) == (2, "FAIL", -5000.0)
    async with sessionmaker() as s:
        links = {
            link.id: link
            for link in await s.scalars(select(TraceLink).where(TraceLink.project_id == pid))
        }
    assert links[derived.id].suspect and links[sat.id].suspect
    assert "compliance PASS -> FAIL" in (links[sat.id].suspect_reason or "")
    cleared = await ok(sessionmaker, suspect_clear, actor=actor, link_id=sat.id)
    assert (cleared.suspect, cleared.suspect_reason) == (False, None)

    # Removing the rule leaves compliance unknown; a priority edit leaves links alone.
    plain = await ok(
        sessionmaker,
        requirement_update,
        actor=actor,
        requirement_id=leaf.id,
        rule=None,
        verification_method="test",
    )
    assert (plain.compliance, plain.margin, plain.rule_parameter_id) == ("UNKNOWN", None, None)
    async with sessionmaker() as s:
        link = await s.get(TraceLink, sat.id)
        assert link is not None and link.suspect is True  # the rule changed again
    await ok(sessionmaker, suspect_clear, actor=actor, link_id=sat.id)
    await ok(sessionmaker, requirement_update, actor=actor, requirement_id=leaf.id, priority="high")
    async with sessionmaker() as s:
        link = await s.get(TraceLink, sat.id)
        assert link is not None and link.suspect is False

    removed = await ok(sessionmaker, trace_link_delete, actor=actor, link_id=derived.id)
    assert removed.id == derived.id
    deleted = await ok(sessionmaker, requirement_delete, actor=actor, requirement_id=leaf.id)
    assert deleted.deleted_at is not None
    async with sessionmaker() as s:
        assert await s.get(TraceLink, sat.id) is None
    await ok(sessionmaker, requirement_delete, actor=actor, requirement_id=mid.id)
