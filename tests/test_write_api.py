"""The write API over real HTTP on the demo model: recompute, compliance, conflicts, errors."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.parameters.models import Parameter, ParameterVersion
from app.projects.models import ProjectEvent, ProjectMember
from tests.conftest import Demo, Factory, GraphQLCall
from tests.test_read_api import gid

PARAM = """query($p: ID!, $s: String!) { project(id: $p) { parameter(symbol: $s) {
  id version number unit } } }"""

UPDATE = """mutation($input: ParameterUpdateInput!) { parameterUpdate(input: $input) {
  __typename
  ... on ParameterChangeSuccess { sequence parameter { symbol number version }
    edited { symbol oldValue newValue version }
    recomputed { symbol oldValue newValue unit version parameter { number } }
    requirements { key oldCompliance newCompliance newMargin unit flipped } }
  ... on UserError { code message field }
  ... on VersionConflictError { currentVersion currentValue }
  ... on CycleDetectedError { path }
  ... on FormulaError { position symbols }
  ... on DimensionError { reason }
} }"""


async def _param(graphql: GraphQLCall, demo: Demo, symbol: str) -> dict[str, Any]:
    data = (
        await graphql(PARAM, {"p": gid("Project", demo.project_id), "s": symbol}, token=demo.token)
    ).ok()
    return data["project"]["parameter"]  # type: ignore[no-any-return]


def _expected_masses(payload: float) -> tuple[float, float, float]:
    items = [
        (18, 0.1),
        (12, 0.05),
        (8, 0.1),
        (9, 0.05),
        (2, 0.05),
        (4, 0.05),
        (3, 0.2),
        (5, 0.2),
        (payload, 0.2),
        (6, 0.1),
    ]
    m_dry = sum(m * (1 + k) for m, k in items) * 1.2
    m_prop = m_dry * (math.exp(148.5 / (220 * 9.80665)) - 1)
    return m_dry, m_prop, m_dry + m_prop


async def test_payload_edit_recomputes_chain_and_flips_requirement(
    demo: Demo, graphql: GraphQLCall, db: Any
) -> None:
    before = await _param(graphql, demo, "m_payload")
    assert before["number"] == 20.0
    wet_before = await _param(graphql, demo, "m_wet")
    assert wet_before["number"] == pytest.approx(_expected_masses(20)[2], rel=1e-9)
    events_before = await db.scalar(
        select(func.count())
        .select_from(ProjectEvent)
        .where(ProjectEvent.project_id == demo.project_id)
    )

    resp = await graphql(
        UPDATE,
        {"input": {"id": before["id"], "expectedVersion": before["version"], "number": 24.0}},
        token=demo.token,
    )
    r = resp.ok()["parameterUpdate"]
    assert r["__typename"] == "ParameterChangeSuccess"
    assert r["parameter"] == {
        "symbol": "m_payload",
        "number": 24.0,
        "version": before["version"] + 1,
    }
    assert r["edited"] == [
        {
            "symbol": "m_payload",
            "oldValue": 20.0,
            "newValue": 24.0,
            "version": before["version"] + 1,
        }
    ]
    m_dry, m_prop, m_wet = _expected_masses(24)
    rec = {c["symbol"]: c for c in r["recomputed"]}
    assert [c["symbol"] for c in r["recomputed"]] == ["m_dry", "m_prop", "m_wet"]
    for symbol, expected in (("m_dry", m_dry), ("m_prop", m_prop), ("m_wet", m_wet)):
        assert rec[symbol]["newValue"] == pytest.approx(expected, rel=1e-9)
        assert rec[symbol]["parameter"]["number"] == pytest.approx(expected, rel=1e-9)
        assert rec[symbol]["unit"] == "kg" and rec[symbol]["version"] == 2
    assert m_wet > 130
    flipped = [q for q in r["requirements"] if q["flipped"]]
    assert flipped == [
        {
            "key": "REQ-MASS-001",
            "oldCompliance": "PASS",
            "newCompliance": "FAIL",
            "newMargin": pytest.approx(130 - m_wet, rel=1e-9),
            "unit": "kg",
            "flipped": True,
        }
    ]
    # Exactly one project event, history rows and audit rows.
    assert r["sequence"] is not None
    events_after = await db.scalar(
        select(func.count())
        .select_from(ProjectEvent)
        .where(ProjectEvent.project_id == demo.project_id)
    )
    assert events_after == events_before + 1
    pids = {s: (await _param(graphql, demo, s))["id"] for s in ("m_payload", "m_wet")}
    assert pids
    versions = await db.scalar(
        select(func.count())
        .select_from(ParameterVersion)
        .join(Parameter, Parameter.id == ParameterVersion.parameter_id)
        .where(Parameter.project_id == demo.project_id, ParameterVersion.cause == "recompute")
    )
    assert versions == 3
    audit = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.project_id == demo.project_id, AuditEntry.action == "parameter.update")
    )
    assert audit >= 1

    # The requirement reads FAIL with suspect links now.
    q = """query($p: ID!) { project(id: $p) { requirement(key: "REQ-MASS-001") {
      compliance margin suspect links { kind suspect } } } }"""
    req = (await graphql(q, {"p": gid("Project", demo.project_id)}, token=demo.token)).ok()[
        "project"
    ]["requirement"]
    assert req["compliance"] == "FAIL" and req["margin"] == pytest.approx(130 - m_wet)
    assert req["suspect"] is True

    # A second editor with the old version: VersionConflict, nothing changed.
    resp = await graphql(
        UPDATE,
        {"input": {"id": before["id"], "expectedVersion": before["version"], "number": 19.0}},
        token=demo.token,
    )
    r = resp.ok()["parameterUpdate"]
    assert r["__typename"] == "VersionConflictError"
    assert r["code"] == "VERSION_CONFLICT" and r["field"] == "expectedVersion"
    assert r["currentVersion"] == before["version"] + 1 and r["currentValue"] == 24.0
    assert (await _param(graphql, demo, "m_payload"))["number"] == 24.0
    assert (
        await db.scalar(
            select(func.count())
            .select_from(ProjectEvent)
            .where(ProjectEvent.project_id == demo.project_id)
        )
        == events_after
    )


@pytest.mark.parametrize(
    ("symbol", "changes", "typename", "code"),
    [
        ("m_dry", {"formula": "m_wet * 0.9"}, "CycleDetectedError", "CYCLE_DETECTED"),
        ("m_dry", {"formula": "m_payload + nonexistent"}, "FormulaError", "UNKNOWN_SYMBOL"),
        ("m_dry", {"formula": "m_payload + dv"}, "DimensionError", "UNIT_MISMATCH"),
        ("m_dry", {"formula": "exp(m_payload)"}, "DimensionError", "UNIT_MISMATCH"),
        ("m_dry", {"formula": "__import__('os')"}, "FormulaError", "FORMULA_ERROR"),
        ("m_dry", {"formula": "m_payload.real"}, "FormulaError", "FORMULA_ERROR"),
        ("m_dry", {"formula": "(" * 5000 + "1" + ")" * 5000}, "FormulaError", "FORMULA_ERROR"),
        ("m_payload", {"unit": "furlongz"}, "UnknownUnitInputError", "UNKNOWN_UNIT"),
        ("m_payload", {"number": 1, "text": "x"}, "ValidationError", "VALIDATION_ERROR"),
    ],
)
async def test_bad_edits_are_typed_errors_and_change_nothing(
    demo: Demo,
    graphql: GraphQLCall,
    db: Any,
    symbol: str,
    changes: dict[str, Any],
    typename: str,
    code: str,
) -> None:
    p = await _param(graphql, demo, symbol)
    events = await db.scalar(
        select(func.count())
        .select_from(ProjectEvent)
        .where(ProjectEvent.project_id == demo.project_id)
    )
    resp = await graphql(
        UPDATE,
        {"input": {"id": p["id"], "expectedVersion": p["version"], **changes}},
        token=demo.token,
    )
    r = resp.ok()["parameterUpdate"]
    assert r["__typename"] == typename, r
    assert r["code"] == code or (typename == "FormulaError" and r["code"].startswith("FORMULA")), r
    if typename == "CycleDetectedError":
        assert r["path"][0] == r["path"][-1] and "m_dry" in r["path"] and "m_wet" in r["path"]
    after = await _param(graphql, demo, symbol)
    assert after == p
    assert (
        await db.scalar(
            select(func.count())
            .select_from(ProjectEvent)
            .where(ProjectEvent.project_id == demo.project_id)
        )
        == events
    )


async def test_viewer_cannot_write_and_stranger_sees_nothing(
    demo: Demo, graphql: GraphQLCall, factory: Factory, sessionmaker: Any
) -> None:
    p = await _param(graphql, demo, "m_payload")
    viewer = await factory.account(org=demo.org)
    async with sessionmaker() as s:
        s.add(ProjectMember(project_id=demo.project_id, user_id=viewer.user.id, role="viewer"))
        await s.commit()
    stranger = await factory.account()
    edit = {"input": {"id": p["id"], "expectedVersion": p["version"], "number": 1.0}}
    r = (await graphql(UPDATE, edit, token=viewer.token)).ok()["parameterUpdate"]
    assert (r["__typename"], r["code"]) == ("ForbiddenError", "FORBIDDEN")
    r = (await graphql(UPDATE, edit, token=stranger.token)).ok()["parameterUpdate"]
    assert (r["__typename"], r["code"]) == ("NotFoundError", "NOT_FOUND")
    r = (await graphql(UPDATE, edit)).ok()["parameterUpdate"]
    assert (r["__typename"], r["code"]) == ("UnauthenticatedError", "UNAUTHENTICATED")
    assert (await _param(graphql, demo, "m_payload")) == p


async def test_concurrent_updates_with_same_version_exactly_one_wins(
    demo: Demo, graphql: GraphQLCall, db: Any
) -> None:
    p = await _param(graphql, demo, "m_payload")
    pid = uuid.UUID(__import__("base64").b64decode(p["id"]).decode().split(":")[1])
    history_before = await db.scalar(
        select(func.count())
        .select_from(ParameterVersion)
        .where(ParameterVersion.parameter_id == pid)
    )

    async def edit(i: int) -> str:
        resp = await graphql(
            UPDATE,
            {"input": {"id": p["id"], "expectedVersion": p["version"], "number": 21.0 + i}},
            token=demo.token,
        )
        return str(resp.ok()["parameterUpdate"]["__typename"])

    results = await asyncio.gather(*(edit(i) for i in range(20)))
    assert results.count("ParameterChangeSuccess") == 1
    assert results.count("VersionConflictError") == 19
    after = await _param(graphql, demo, "m_payload")
    assert after["version"] == p["version"] + 1
    history_after = await db.scalar(
        select(func.count())
        .select_from(ParameterVersion)
        .where(ParameterVersion.parameter_id == pid)
    )
    assert history_after == history_before + 1


SET_VALUES = """mutation($input: ParameterSetValuesInput!) { parameterSetValues(input: $input) {
  __typename ... on ParameterChangeSuccess { parameters { symbol number } recomputed { symbol } }
  ... on UserError { code field message } } }"""


async def test_bulk_set_values_is_all_or_nothing(demo: Demo, graphql: GraphQLCall) -> None:
    pid = gid("Project", demo.project_id)
    bad = {
        "input": {
            "projectId": pid,
            "items": [
                {"symbol": "m_payload", "number": 22.0},
                {"symbol": "isp", "number": 230.0, "unit": "kg"},  # wrong dimension
            ],
        }
    }
    r = (await graphql(SET_VALUES, bad, token=demo.token)).ok()["parameterSetValues"]
    assert r["__typename"] != "ParameterChangeSuccess" and r["code"] in (
        "UNIT_MISMATCH",
        "DIMENSION_MISMATCH",
    )
    assert (await _param(graphql, demo, "m_payload"))["number"] == 20.0
    good = {
        "input": {
            "projectId": pid,
            "items": [
                {"symbol": "m_payload", "number": 22000.0, "unit": "g"},
                {"symbol": "isp", "number": 230.0},
            ],
        }
    }
    r = (await graphql(SET_VALUES, good, token=demo.token)).ok()["parameterSetValues"]
    assert r["__typename"] == "ParameterChangeSuccess"
    assert r["parameters"] == [
        {"symbol": "m_payload", "number": pytest.approx(22.0)},
        {"symbol": "isp", "number": 230.0},
    ]
    assert {"m_dry", "m_prop", "m_wet"} <= {c["symbol"] for c in r["recomputed"]}


async def test_delete_of_depended_on_parameter_is_refused(demo: Demo, graphql: GraphQLCall) -> None:
    p = await _param(graphql, demo, "m_payload")
    q = """mutation($id: ID!) { parameterDelete(input: {id: $id}) { __typename
      ... on HasDependentsError { code dependents } } }"""
    r = (await graphql(q, {"id": p["id"]}, token=demo.token)).ok()["parameterDelete"]
    assert r["__typename"] == "HasDependentsError" and r["code"] == "HAS_DEPENDENTS"
    assert "m_dry" in r["dependents"]
