"""Parameter services: the demo mass chain, optimistic concurrency, formula validation,
bulk edits, deletes. Every rejected call is checked to leave the project untouched."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth.principal import Principal
from app.demo.model import demo_model
from app.errors import DomainError
from app.parameters.errors import UnknownSymbol
from app.parameters.models import Parameter, ParameterDependency, ParameterVersion
from app.parameters.results import ParameterChangeResult
from app.parameters.service import (
    ParameterValueInput,
    parameter_create,
    parameter_delete,
    parameter_set_values,
    parameter_update,
)
from app.projects.models import Project, ProjectEvent
from app.projects.service import member_add, project_create
from app.requirements.models import TraceLink
from tests.conftest import Factory
from tests.services_kit import (
    Demo,
    Maker,
    call,
    fails,
    fingerprint,
    load_demo_copy,
    ok,
    param,
    principal,
    requirement,
)

G0 = 9.80665


def direct_mass_chain(payload: float) -> dict[str, float]:
    """DESIGN §7 computed by hand (no engine): m_dry, m_prop, m_wet in kg."""
    items = {
        "structure": (18.0, 0.10),
        "eps": (12.0, 0.05),
        "solar_array": (8.0, 0.10),
        "adcs": (9.0, 0.05),
        "obc": (2.0, 0.05),
        "comms": (4.0, 0.05),
        "thermal": (3.0, 0.20),
        "harness": (5.0, 0.20),
        "payload": (payload, 0.20),
        "propulsion": (6.0, 0.10),
    }
    m_dry = sum(m * (1 + margin) for m, margin in items.values()) * (1 + 0.20)
    m_prop = m_dry * (math.exp(148.5 / (220.0 * G0)) - 1)
    return {"m_dry": m_dry, "m_prop": m_prop, "m_wet": m_dry + m_prop}


@pytest.fixture
async def demo(sessionmaker: Maker) -> Demo:
    return await load_demo_copy(sessionmaker)


@pytest.fixture(scope="module")
async def shared_demo(sessionmaker: Maker) -> AsyncIterator[Demo]:
    """One demo for tests that only make failing calls (each checks nothing changed)."""
    yield await load_demo_copy(sessionmaker)


async def test_payload_mass_edit_updates_chain_flips_requirement_and_records_it(
    sessionmaker: Maker, demo: Demo, factory: Factory
) -> None:
    pid = demo.project_id
    payload = await param(sessionmaker, pid, "m_payload")
    assert (payload.value_number, payload.version) == (20.0, 1)
    before = {s: await param(sessionmaker, pid, s) for s in ("m_dry", "m_prop", "m_wet")}
    assert (await requirement(sessionmaker, pid, "REQ-MASS-001")).compliance == "PASS"
    async with sessionmaker() as s:
        seq_before = await s.scalar(select(Project.event_sequence).where(Project.id == pid))
        events_before = await s.scalar(
            select(func.count()).select_from(ProjectEvent).where(ProjectEvent.project_id == pid)
        )
    assert seq_before is not None

    result = await ok(
        sessionmaker,
        parameter_update,
        actor=demo.actor,
        parameter_id=payload.id,
        expected_version=1,
        value=24.0,
    )

    expected = direct_mass_chain(24.0)
    assert expected["m_wet"] > 130 > direct_mass_chain(20.0)["m_wet"]
    assert [(c.symbol, c.old_value, c.new_value, c.version) for c in result.edited] == [
        ("m_payload", 20.0, 24.0, 2)
    ]
    # Topological order, every derived value of the chain, each version + 1.
    assert [c.symbol for c in result.recomputed] == ["m_dry", "m_prop", "m_wet"]
    for change in result.recomputed:
        assert change.new_value == pytest.approx(expected[change.symbol], rel=1e-9)
        assert change.old_value == before[change.symbol].value_number
        assert (change.old_version, change.version, change.unit) == (1, 2, "kg")
        row = await param(sessionmaker, pid, change.symbol)
        assert row.value_number == pytest.approx(expected[change.symbol], rel=1e-9)
        assert row.version == 2
    # Compliance flips with margin in the rule's unit (negative = violated).
    flips = result.compliance_changes
    assert [(c.key, c.old_compliance, c.new_compliance) for c in flips] == [
        ("REQ-MASS-001", "PASS", "FAIL")
    ]
    assert flips[0].new_margin == pytest.approx(130.0 - expected["m_wet"], rel=1e-9)
    req = await requirement(sessionmaker, pid, "REQ-MASS-001")
    assert (req.compliance, req.margin) == ("FAIL", flips[0].new_margin)

    async with sessionmaker() as s:
        links = (await s.scalars(select(TraceLink).where(TraceLink.project_id == pid))).all()
        suspect = {link.id for link in links if link.suspect}
        mass_links = {link.id for link in links if link.requirement_id == req.id}
        assert len(mass_links) == 3 and suspect == mass_links == set(result.suspect_link_ids)
        reasons = [link.suspect_reason or "" for link in links if link.suspect]
        assert any("parameter m_wet changed" in r for r in reasons)
        assert all("REQ-MASS-001 compliance changed: PASS -> FAIL" in r for r in reasons)

        # History: one new version row each, with the cause, actor and event sequence.
        history = (
            await s.execute(
                select(Parameter.symbol, ParameterVersion)
                .join(Parameter, Parameter.id == ParameterVersion.parameter_id)
                .where(Parameter.project_id == pid, ParameterVersion.version == 2)
            )
        ).all()
        assert {sym: (v.cause, v.event_sequence, v.actor_id) for sym, v in history} == {
            "m_payload": ("edit", seq_before + 1, demo.actor.user_id),
            "m_dry": ("recompute", seq_before + 1, demo.actor.user_id),
            "m_prop": ("recompute", seq_before + 1, demo.actor.user_id),
            "m_wet": ("recompute", seq_before + 1, demo.actor.user_id),
        }
        # Audit: the edit, each recompute and the re-evaluation, with the request id.
        audit = (
            await s.execute(
                select(AuditEntry.action, AuditEntry.diff, AuditEntry.request_id).where(
                    AuditEntry.project_id == pid,
                    AuditEntry.action.in_(
                        ["parameter.update", "parameter.recompute", "requirement.evaluate"]
                    ),
                )
            )
        ).all()
        actions = sorted(a for a, _, _ in audit)
        assert actions == [
            "parameter.recompute",
            "parameter.recompute",
            "parameter.recompute",
            "parameter.update",
            "requirement.evaluate",
        ]
        edit_diff = next(d for a, d, _ in audit if a == "parameter.update")
        assert edit_diff == {"value": [20.0, 24.0], "version": [1, 2]}
        assert {r for _, _, r in audit} == {"test-req"}

        # Exactly one event, with the next sequence, carrying the same data.
        events = (
            await s.scalars(
                select(ProjectEvent)
                .where(ProjectEvent.project_id == pid, ProjectEvent.sequence > seq_before)
                .order_by(ProjectEvent.sequence)
            )
        ).all()
        assert [(e.sequence, e.kind) for e in events] == [(seq_before + 1, "parameter.changed")]
        assert result.event is not None and result.event.sequence == seq_before + 1
        payload_json = events[0].payload
        assert [e["symbol"] for e in payload_json["recomputed"]] == ["m_dry", "m_prop", "m_wet"]
        assert payload_json["edited"][0]["new_value"] == 24.0
        assert payload_json["requirements"][0]["key"] == "REQ-MASS-001"
        assert payload_json["requirements"][0]["new_compliance"] == "FAIL"
        assert (
            await s.scalar(
                select(func.count()).select_from(ProjectEvent).where(ProjectEvent.project_id == pid)
            )
            == (events_before or 0) + 1
        )
        assert await s.scalar(select(Project.event_sequence).where(Project.id == pid)) == (
            seq_before + 1
        )

    # A second editor who read version 1 gets a conflict; nothing changes.
    other = await factory.account(org=_org_name(demo))
    await ok(
        sessionmaker,
        member_add,
        actor=demo.actor,
        project_id=pid,
        user_id=other.user.id,
        role="editor",
    )
    editor = await principal(sessionmaker, other)
    snapshot = await fingerprint(sessionmaker, pid)
    error = await fails(
        sessionmaker,
        parameter_update,
        actor=editor,
        parameter_id=payload.id,
        expected_version=1,
        value=30.0,
    )
    assert error.code == "VERSION_CONFLICT" and error.field == "expectedVersion"
    assert error.details()["current_version"] == 2
    assert error.details()["current_value"] == 24.0
    assert await fingerprint(sessionmaker, pid) == snapshot


def _org_name(demo: Demo) -> str:
    # load_demo_copy names the organization "Demo Org <tag>"; the tag is in the email.
    return "Demo Org " + demo.account_email.removeprefix("demo-").split("@")[0]


async def _small_project(
    factory: Factory, sessionmaker: Maker
) -> tuple[Principal, uuid.UUID, dict[str, Parameter]]:
    """x1 = 1 kg, x2 = 2 kg, y = x1 + x2 (kg), label (text)."""
    actor = await principal(sessionmaker, await factory.account())
    project = await ok(sessionmaker, project_create, actor=actor, name="Small")
    params: dict[str, Parameter] = {}
    for symbol, kw in (
        ("x1", {"value": 1.0, "unit": "kg"}),
        ("x2", {"value": 2.0, "unit": "kg"}),
        ("y", {"formula": "x1 + x2", "unit": "kg"}),
        ("label", {"value": "hello", "value_kind": "text"}),
    ):
        params[symbol] = await ok(
            sessionmaker,
            parameter_create,
            actor=actor,
            project_id=project.id,
            symbol=symbol,
            name=symbol.upper(),
            **kw,
        )
    return actor, project.id, params


async def test_twenty_concurrent_updates_with_one_expected_version_one_wins(
    factory: Factory, sessionmaker: Maker
) -> None:
    actor, pid, params = await _small_project(factory, sessionmaker)
    x1 = params["x1"]
    snapshot_seq = (await fingerprint(sessionmaker, pid))["projects"]

    async def attempt(i: int) -> ParameterChangeResult | DomainError:
        return await call(
            sessionmaker,
            parameter_update,
            actor=actor,
            parameter_id=x1.id,
            expected_version=1,
            value=float(100 + i),
        )

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    wins = [r for r in results if isinstance(r, ParameterChangeResult)]
    losses = [r for r in results if isinstance(r, DomainError)]
    assert len(wins) == 1
    assert [e.code for e in losses] == ["VERSION_CONFLICT"] * 19
    winner_value = wins[0].edited[0].new_value
    assert isinstance(winner_value, float)
    assert all(e.details()["current_version"] == 2 for e in losses)
    row = await param(sessionmaker, pid, "x1")
    assert (row.version, row.value_number) == (2, winner_value)
    y = await param(sessionmaker, pid, "y")
    assert (y.version, y.value_number) == (2, winner_value + 2.0)
    async with sessionmaker() as s:
        versions = (
            await s.scalars(
                select(ParameterVersion.version)
                .where(ParameterVersion.parameter_id == x1.id)
                .order_by(ParameterVersion.version)
            )
        ).all()
        assert versions == [1, 2]  # create + exactly one edit
        events = await s.scalar(
            select(func.count())
            .select_from(ProjectEvent)
            .where(ProjectEvent.project_id == pid, ProjectEvent.kind == "parameter.changed")
        )
        assert events == 1
    assert (await fingerprint(sessionmaker, pid))["projects"] != snapshot_seq


def _chain(n: int, op: str) -> str:
    return op.join(["dv"] * n)


FORMULA_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    # (target symbol or "+new", inputs, expected code, expected field)
    ("m_dry", {"formula": "m_wet * 0.9"}, "CYCLE_DETECTED", "formula"),
    ("+new", {"formula": "m_dry + bogus", "unit": "kg"}, "UNKNOWN_SYMBOL", "formula"),
    ("+new", {"formula": "m_dry + dv", "unit": "kg"}, "UNIT_MISMATCH", "formula"),
    ("+new", {"formula": "exp(m_dry)", "unit": ""}, "UNIT_MISMATCH", "formula"),
    ("+new", {"formula": "m_dry * 2", "unit": "m"}, "UNIT_MISMATCH", "formula"),
    ("+new", {"formula": "__import__('os').system('true')"}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "m_dry.__class__"}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "(lambda: 1)()"}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "open('/etc/passwd')"}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "1" + " + 1" * 50_000}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "(" * 200 + "1" + ")" * 200}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": "-" * 300 + "1"}, "FORMULA_ERROR", "formula"),
    ("+new", {"formula": _chain(400, "+"), "unit": "m/s"}, "FORMULA_ERROR", "formula"),
    ("+new", {"value": 1.0, "unit": "furlongz"}, "UNKNOWN_UNIT", "unit"),
    ("m_payload", {"unit": "bananas"}, "UNKNOWN_UNIT", "unit"),
    ("m_dry", {"value": 100.0}, "VALIDATION_ERROR", "value"),
    ("m_dry", {"unit": "m"}, "UNIT_MISMATCH", "unit"),
    ("dv", {"unit": "kg"}, "UNIT_MISMATCH", "unit"),
    ("m_wet", {"unit": "s"}, "UNIT_MISMATCH", "unit"),
    ("h", {"value": -7000.0}, "EVALUATION_ERROR", "value"),
    ("m_payload", {"value": float("nan")}, "VALIDATION_ERROR", "value"),
    ("m_payload", {"value": "heavy"}, "VALIDATION_ERROR", "value"),
    ("m_payload", {"uncertainty": -1.0}, "VALIDATION_ERROR", "uncertainty"),
    ("m_payload", {"name": "  "}, "VALIDATION_ERROR", "name"),
]


@pytest.mark.parametrize(("target", "inputs", "code", "field"), FORMULA_CASES)
async def test_rejected_edits_are_typed_and_change_nothing(
    sessionmaker: Maker,
    shared_demo: Demo,
    target: str,
    inputs: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    pid = shared_demo.project_id
    snapshot = await fingerprint(sessionmaker, pid)
    if target == "+new":
        error = await fails(
            sessionmaker,
            parameter_create,
            actor=shared_demo.actor,
            project_id=pid,
            symbol="new_param",
            name="New",
            **inputs,
        )
    else:
        row = await param(sessionmaker, pid, target)
        error = await fails(
            sessionmaker,
            parameter_update,
            actor=shared_demo.actor,
            parameter_id=row.id,
            expected_version=row.version,
            **inputs,
        )
    assert (error.code, error.field) == (code, field), error.details()
    assert await fingerprint(sessionmaker, pid) == snapshot


async def test_error_details_name_the_cycle_symbols_and_position(
    sessionmaker: Maker, shared_demo: Demo
) -> None:
    pid, actor = shared_demo.project_id, shared_demo.actor
    m_dry = await param(sessionmaker, pid, "m_dry")
    cycle = await fails(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=m_dry.id,
        expected_version=m_dry.version,
        formula="m_wet * 0.9",
    )
    path = cycle.details()["path"]
    assert path[0] == path[-1] == "m_dry" and "m_wet" in path
    assert "m_dry -> " in cycle.message

    unknown = await fails(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="bad",
        name="Bad",
        formula="m_dry + bogus + ghost",
        unit="kg",
    )
    assert isinstance(unknown, UnknownSymbol) and unknown.symbols == ["bogus", "ghost"]

    mismatch = await fails(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="bad",
        name="Bad",
        formula="m_dry + dv",
        unit="kg",
    )
    assert mismatch.details()["position"] == 6  # the "+"
    assert "[mass]" in mismatch.message

    h = await param(sessionmaker, pid, "h")
    evaluation = await fails(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=h.id,
        expected_version=h.version,
        value=-7000.0,
    )
    assert evaluation.details()["symbol"] in {"T_orbit", "f_eclipse", "d_slant"}

    self_ref = await fails(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="loop",
        name="Loop",
        formula="loop + 1",
    )
    assert self_ref.code == "CYCLE_DETECTED"
    assert self_ref.details()["path"] == ["loop", "loop"]

    for symbol, code in (("pi", "VALIDATION_ERROR"), ("1x", "VALIDATION_ERROR")):
        bad = await fails(
            sessionmaker,
            parameter_create,
            actor=actor,
            project_id=pid,
            symbol=symbol,
            name="N",
            value=1.0,
        )
        assert (bad.code, bad.field) == (code, "symbol")
    dup = await fails(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="m_dry",
        name="N",
        value=1.0,
        unit="kg",
    )
    assert (dup.code, dup.field) == ("DUPLICATE", "symbol")


async def test_delete_of_depended_on_parameter_lists_dependents(
    sessionmaker: Maker, shared_demo: Demo
) -> None:
    pid, actor = shared_demo.project_id, shared_demo.actor
    snapshot = await fingerprint(sessionmaker, pid)
    m_dry = await param(sessionmaker, pid, "m_dry")
    error = await fails(sessionmaker, parameter_delete, actor=actor, parameter_id=m_dry.id)
    assert error.code == "HAS_DEPENDENTS"
    assert error.details()["dependents"] == ["m_prop", "m_wet"]
    m_wet = await param(sessionmaker, pid, "m_wet")
    error = await fails(sessionmaker, parameter_delete, actor=actor, parameter_id=m_wet.id)
    assert error.details()["requirements"] == ["REQ-MASS-001"]
    assert "rule of REQ-MASS-001" in error.message
    assert await fingerprint(sessionmaker, pid) == snapshot


async def test_bulk_set_values_is_all_or_nothing_with_one_recompute(
    factory: Factory, sessionmaker: Maker
) -> None:
    actor, pid, params = await _small_project(factory, sessionmaker)
    snapshot = await fingerprint(sessionmaker, pid)
    bad_batches: list[tuple[list[ParameterValueInput], str, str]] = [
        (
            [
                ParameterValueInput(id=params["x1"].id, value=5.0),
                ParameterValueInput(symbol="x2", value="abc"),
            ],
            "VALIDATION_ERROR",
            "items.1.value",
        ),
        (
            [
                ParameterValueInput(symbol="x1", value=5.0),
                ParameterValueInput(symbol="x2", value=1.0, expected_version=7),
            ],
            "VERSION_CONFLICT",
            "items.1.expectedVersion",
        ),
        (
            [
                ParameterValueInput(symbol="x1", value=5.0),
                ParameterValueInput(symbol="y", value=1.0),
            ],
            "VALIDATION_ERROR",
            "items.1.value",
        ),
        (
            [
                ParameterValueInput(symbol="x1", value=5.0),
                ParameterValueInput(symbol="nope", value=1.0),
            ],
            "NOT_FOUND",
            "items.1.symbol",
        ),
        (
            [ParameterValueInput(symbol="x1", value=5.0, unit="m")],
            "UNIT_MISMATCH",
            "items.0.unit",
        ),
        (
            [
                ParameterValueInput(symbol="x1", value=5.0),
                ParameterValueInput(symbol="x1", value=6.0),
            ],
            "VALIDATION_ERROR",
            "items.1.id",
        ),
    ]
    for items, code, field in bad_batches:
        error = await fails(
            sessionmaker, parameter_set_values, actor=actor, project_id=pid, items=items
        )
        assert (error.code, error.field) == (code, field), error.details()
        assert await fingerprint(sessionmaker, pid) == snapshot

    result = await ok(
        sessionmaker,
        parameter_set_values,
        actor=actor,
        project_id=pid,
        items=[
            ParameterValueInput(id=params["x1"].id, value=500.0, unit="g", expected_version=1),
            ParameterValueInput(symbol="x2", value=3.0),
            ParameterValueInput(symbol="label", value="world"),
        ],
    )
    assert [(c.symbol, c.new_value) for c in result.edited] == [
        ("x1", 0.5),
        ("x2", 3.0),
        ("label", "world"),
    ]
    # One recompute for all edits: y moves once, to its final value.
    assert [(c.symbol, c.new_value, c.version) for c in result.recomputed] == [("y", 3.5, 2)]
    async with sessionmaker() as s:
        kinds = (
            await s.scalars(
                select(ProjectEvent.kind)
                .where(ProjectEvent.project_id == pid)
                .order_by(ProjectEvent.sequence)
            )
        ).all()
    assert kinds[-1] == "parameter.changed" and kinds.count("parameter.changed") == 1


async def test_formula_unit_and_independence_edits(factory: Factory, sessionmaker: Maker) -> None:
    actor, pid, params = await _small_project(factory, sessionmaker)
    y = params["y"]
    # A unit change alone keeps the quantity (and downstream values stay put).
    result = await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=params["x1"].id,
        expected_version=1,
        unit="g",
    )
    assert (result.edited[0].new_value, result.edited[0].unit) == (1000.0, "g")
    assert result.recomputed == ()
    assert (await param(sessionmaker, pid, "y")).version == 1

    # Make y independent (keeps its value), then derive it again from a new formula.
    result = await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=y.id,
        expected_version=1,
        formula=None,
    )
    assert result.edited[0].changes == {"formula": ["x1 + x2", None]}
    await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=y.id,
        expected_version=2,
        value=10.0,
    )
    result = await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=y.id,
        expected_version=3,
        formula="x2 * 3",
    )
    assert result.edited[0].new_value == pytest.approx(6.0)
    async with sessionmaker() as s:
        deps = (
            await s.scalars(
                select(Parameter.symbol)
                .join(ParameterDependency, ParameterDependency.depends_on_id == Parameter.id)
                .where(ParameterDependency.parameter_id == y.id)
            )
        ).all()
    assert deps == ["x2"]
    # Nothing depends on x1 any more: it can go; x2 cannot.
    deleted = await ok(sessionmaker, parameter_delete, actor=actor, parameter_id=params["x1"].id)
    assert deleted.deleted_at is not None
    error = await fails(sessionmaker, parameter_delete, actor=actor, parameter_id=params["x2"].id)
    assert error.details()["dependents"] == ["y"]
    # The symbol of a deleted parameter is free again.
    await ok(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="x1",
        name="X1",
        value=7.0,
        unit="kg",
    )


async def test_demo_values_match_engine(sessionmaker: Maker, shared_demo: Demo) -> None:
    expected = direct_mass_chain(20.0)
    for symbol, value in expected.items():
        row = await param(sessionmaker, shared_demo.project_id, symbol)
        assert row.value_number == pytest.approx(value, rel=1e-12)
    model = demo_model()
    assert len(model.parameters) == sum(
        [1 async for _ in _live_params(sessionmaker, shared_demo.project_id)]
    )


async def _live_params(sessionmaker: Maker, project_id: uuid.UUID) -> AsyncIterator[Parameter]:
    async with sessionmaker() as s:
        for row in await s.scalars(
            select(Parameter).where(
                Parameter.project_id == project_id, Parameter.deleted_at.is_(None)
            )
        ):
            yield row
