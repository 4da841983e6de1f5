"""The rest of the write API over real HTTP: projects and members, component types,
components, connectors, requirements and rules, trace links, comments, revisions and
`revisionDiff`. Every typed error is checked to have changed nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from app.demo.load import load_demo
from app.projects.models import ProjectMember
from tests.conftest import SECRET, Account, Factory, GraphQLCall
from tests.test_read_api import gid


@dataclass
class Demo:
    token: str
    project_id: uuid.UUID
    user_id: uuid.UUID
    org: str

    @property
    def pid(self) -> str:
        return gid("Project", self.project_id)


@pytest.fixture
async def demo(sessionmaker: Any) -> Demo:
    tag = uuid.uuid4().hex[:8]
    async with sessionmaker() as s:
        result = await load_demo(
            s, secret_key=SECRET, email=f"demo-{tag}@example.test", organization=f"Demo {tag}"
        )
        await s.commit()
    return Demo(result.token, result.project_id, result.user_id, f"Demo {tag}")


ERRORS = "... on UserError { code message field }"


async def run(
    graphql: GraphQLCall, name: str, input_type: str, selection: str, inp: Any, token: str | None
) -> dict[str, Any]:
    """Call mutation ``name`` with one ``input``; its result (``__typename`` always)."""
    query = (
        f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ __typename "
        f"{selection} {ERRORS} }} }}"
    )
    result: dict[str, Any] = (await graphql(query, {"input": inp}, token=token)).ok()[name]
    return result


async def read(graphql: GraphQLCall, query: str, token: str, **variables: Any) -> Any:
    return (await graphql(query, variables, token=token)).ok()


def expect(result: dict[str, Any], typename: str, code: str, field: str | None = None) -> None:
    assert (result["__typename"], result["code"]) == (typename, code), result
    if field is not None:
        assert result["field"] is not None and result["field"].startswith(field), result


# --------------------------------------------------------------------------- projects

PROJECT = "... on ProjectSuccess { project { id name description viewerRole } }"
MEMBERS = """... on ProjectMemberSuccess { project { id } member { role user { email } }
  members { role user { email } } }"""
PROJECT_Q = """query($id: ID!) { project(id: $id) { name description
  members { role user { email } } } }"""


async def test_projects_and_members(factory: Factory, graphql: GraphQLCall) -> None:
    org = f"Org {uuid.uuid4().hex[:8]}"
    owner = await factory.account(org=org)
    editor = await factory.account(org=org)
    third = await factory.account(org=org)
    outsider = await factory.account()
    name = f"Probe {uuid.uuid4().hex[:6]}"

    r = await run(graphql, "projectCreate", "ProjectCreateInput", PROJECT, {"name": name}, None)
    expect(r, "UnauthenticatedError", "UNAUTHENTICATED")
    inp = {"name": name, "description": "first"}
    r = await run(graphql, "projectCreate", "ProjectCreateInput", PROJECT, inp, owner.token)
    assert r["__typename"] == "ProjectSuccess"
    project = r["project"]
    assert (project["name"], project["description"], project["viewerRole"]) == (
        name,
        "first",
        "OWNER",
    )
    pid = project["id"]
    r = await run(graphql, "projectCreate", "ProjectCreateInput", PROJECT, inp, owner.token)
    expect(r, "DuplicateError", "DUPLICATE", "name")
    listing = await read(
        graphql,
        "query($s: String!) { projects(filter: {search: $s}) { totalCount } }",
        owner.token,
        s=name,
    )
    assert listing["projects"]["totalCount"] == 1

    upd = {"id": pid, "description": "second"}
    r = await run(graphql, "projectUpdate", "ProjectUpdateInput", PROJECT, upd, owner.token)
    assert r["__typename"] == "ProjectSuccess"
    assert (r["project"]["name"], r["project"]["description"]) == (name, "second")

    def member(account: Account, role: str) -> dict[str, Any]:
        return {"projectId": pid, "userId": gid("User", account.user.id), "role": role}

    add = ("projectMemberAdd", "ProjectMemberAddInput", MEMBERS)
    r = await run(graphql, *add, member(editor, "EDITOR"), owner.token)
    assert r["__typename"] == "ProjectMemberSuccess"
    assert r["member"] == {"role": "EDITOR", "user": {"email": editor.user.email}}
    assert r["project"]["id"] == pid
    assert sorted((m["role"], m["user"]["email"]) for m in r["members"]) == sorted(
        [("OWNER", owner.user.email), ("EDITOR", editor.user.email)]
    )
    before = (await read(graphql, PROJECT_Q, owner.token, id=pid))["project"]

    # Typed errors; the member list does not move.
    expect(
        await run(graphql, *add, member(third, "VIEWER"), editor.token),
        "ForbiddenError",
        "FORBIDDEN",
    )
    expect(
        await run(graphql, *add, member(outsider, "VIEWER"), owner.token),
        "NotFoundError",
        "NOT_FOUND",
        "userId",
    )
    expect(
        await run(graphql, *add, member(editor, "VIEWER"), owner.token),
        "DuplicateError",
        "DUPLICATE",
        "userId",
    )
    wrong_type = {**member(third, "VIEWER"), "userId": gid("Project", third.user.id)}
    expect(await run(graphql, *add, wrong_type, owner.token), "NotFoundError", "NOT_FOUND")
    remove = ("projectMemberRemove", "ProjectMemberRemoveInput", MEMBERS)
    own = {"projectId": pid, "userId": gid("User", owner.user.id)}
    expect(await run(graphql, *remove, own, owner.token), "LastOwnerError", "LAST_OWNER")
    update = ("projectMemberUpdate", "ProjectMemberUpdateInput", MEMBERS)
    expect(
        await run(graphql, *update, {**own, "role": "EDITOR"}, owner.token),
        "LastOwnerError",
        "LAST_OWNER",
        "role",
    )
    expect(
        await run(graphql, *update, member(editor, "OWNER"), editor.token),
        "ForbiddenError",
        "FORBIDDEN",
    )
    expect(
        await run(graphql, *add, member(third, "VIEWER"), None),
        "UnauthenticatedError",
        "UNAUTHENTICATED",
    )
    assert (await read(graphql, PROJECT_Q, owner.token, id=pid))["project"] == before

    r = await run(graphql, *update, member(editor, "VIEWER"), owner.token)
    assert r["__typename"] == "ProjectMemberSuccess" and r["member"]["role"] == "VIEWER"
    r = await run(
        graphql, *remove, {"projectId": pid, "userId": gid("User", editor.user.id)}, owner.token
    )
    assert r["__typename"] == "ProjectMemberSuccess"
    assert r["member"]["role"] == "VIEWER"
    assert [m["user"]["email"] for m in r["members"]] == [owner.user.email]

    # Delete: the outsider cannot see it; editors may not; owners may.
    delete = (
        "projectDelete",
        "ProjectDeleteInput",
        "... on ProjectDeleteSuccess { deletedId name }",
    )
    expect(await run(graphql, *delete, {"id": pid}, outsider.token), "NotFoundError", "NOT_FOUND")
    r = await run(graphql, *delete, {"id": pid}, owner.token)
    assert r == {"__typename": "ProjectDeleteSuccess", "deletedId": pid, "name": name}
    assert (await read(graphql, PROJECT_Q, owner.token, id=pid))["project"] is None


# --------------------------------------------------------------------------- components

TYPE = "... on ComponentTypeCreateSuccess { componentType { id code name propertySchema ports { name kind direction } } }"
COMPONENT = """... on ComponentSuccess { component { id tag name properties version
  parent { tag } type { code } } }
  ... on VersionConflictError { currentVersion } ... on CycleDetectedError { path }"""
COMP_Q = """query($p: ID!, $t: String!) { project(id: $p) { component(tag: $t) {
  id tag name properties version parent { tag } } } }"""


async def _component(graphql: GraphQLCall, demo: Demo, tag: str) -> Any:
    return (await read(graphql, COMP_Q, demo.token, p=demo.pid, t=tag))["project"]["component"]


async def _type_ids(graphql: GraphQLCall, demo: Demo) -> dict[str, str]:
    q = "query($p: ID!) { project(id: $p) { componentTypes { id code } } }"
    types = (await read(graphql, q, demo.token, p=demo.pid))["project"]["componentTypes"]
    return {t["code"]: t["id"] for t in types}


async def test_component_types_and_components(demo: Demo, graphql: GraphQLCall) -> None:
    schema = {
        "type": "object",
        "properties": {"power_w": {"type": "number", "minimum": 0}},
        "required": ["power_w"],
    }
    ports = [
        {"name": "pwr_in", "kind": "POWER", "direction": "IN"},
        {"name": "data", "kind": "DATA", "direction": "INOUT"},
    ]
    inp = {
        "projectId": demo.pid,
        "code": "HEATER",
        "name": "Heater",
        "propertySchema": schema,
        "ports": ports,
    }
    mk_type = ("componentTypeCreate", "ComponentTypeCreateInput", TYPE)
    r = await run(graphql, *mk_type, inp, demo.token)
    assert r["__typename"] == "ComponentTypeCreateSuccess"
    ctype = r["componentType"]
    assert (ctype["code"], ctype["name"], ctype["propertySchema"]) == ("HEATER", "Heater", schema)
    assert ctype["ports"] == ports
    types_before = await _type_ids(graphql, demo)
    expect(await run(graphql, *mk_type, inp, demo.token), "DuplicateError", "DUPLICATE", "code")
    bad_schema = {**inp, "code": "HEATER2", "propertySchema": {"type": 5}}
    expect(
        await run(graphql, *mk_type, bad_schema, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "propertySchema",
    )
    bad_port = {**inp, "code": "HEATER3", "ports": [ports[0], ports[0]]}
    expect(
        await run(graphql, *mk_type, bad_port, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "ports.1.name",
    )
    assert await _type_ids(graphql, demo) == types_before

    create = ("componentCreate", "ComponentCreateInput", COMPONENT)
    eps = await _component(graphql, demo, "EPS")
    new = {
        "projectId": demo.pid,
        "tag": "THM-HTR-01",
        "name": "Battery heater",
        "typeId": ctype["id"],
        "parentId": eps["id"],
        "properties": {"power_w": 5},
    }
    r = await run(graphql, *create, new, demo.token)
    assert r["__typename"] == "ComponentSuccess"
    comp = r["component"]
    assert {k: comp[k] for k in ("tag", "name", "properties", "version", "parent", "type")} == {
        "tag": "THM-HTR-01",
        "name": "Battery heater",
        "properties": {"power_w": 5},
        "version": 1,
        "parent": {"tag": "EPS"},
        "type": {"code": "HEATER"},
    }
    expect(await run(graphql, *create, new, demo.token), "DuplicateError", "DUPLICATE", "tag")
    invalid = {**new, "tag": "THM-HTR-02", "properties": {"power_w": -1}}
    expect(
        await run(graphql, *create, invalid, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "properties.power_w",
    )
    missing = {**new, "tag": "THM-HTR-02", "properties": {}}
    expect(
        await run(graphql, *create, missing, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "properties.power_w",
    )
    not_object = {**new, "tag": "THM-HTR-02", "properties": [1, 2]}
    expect(
        await run(graphql, *create, not_object, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "properties",
    )
    assert await _component(graphql, demo, "THM-HTR-02") is None

    update = ("componentUpdate", "ComponentUpdateInput", COMPONENT)
    edit = {
        "id": comp["id"],
        "expectedVersion": 1,
        "name": "Heater A",
        "properties": {"power_w": 7},
    }
    r = await run(graphql, *update, edit, demo.token)
    assert r["__typename"] == "ComponentSuccess"
    assert (r["component"]["name"], r["component"]["properties"], r["component"]["version"]) == (
        "Heater A",
        {"power_w": 7},
        2,
    )
    current = await _component(graphql, demo, "THM-HTR-01")
    r = await run(graphql, *update, {**edit, "name": "stale"}, demo.token)
    expect(r, "VersionConflictError", "VERSION_CONFLICT", "expectedVersion")
    assert r["currentVersion"] == 2
    bad = {"id": comp["id"], "properties": {"power_w": "hot"}}
    expect(
        await run(graphql, *update, bad, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "properties.power_w",
    )
    # A battery's properties against the BATTERY schema (demo type).
    bat = await _component(graphql, demo, "EPS-BAT-01")
    r = await run(
        graphql, *update, {"id": bat["id"], "properties": {"chemistry": "Pb"}}, demo.token
    )
    expect(r, "ValidationError", "VALIDATION_ERROR", "properties")
    assert await _component(graphql, demo, "EPS-BAT-01") == bat
    assert await _component(graphql, demo, "THM-HTR-01") == current

    move = ("componentMove", "ComponentMoveInput", COMPONENT)
    r = await run(graphql, *move, {"id": eps["id"], "parentId": bat["id"]}, demo.token)
    expect(r, "CycleDetectedError", "CYCLE_DETECTED", "parentId")
    assert r["path"] == ["EPS", "EPS-BAT-01", "EPS"]
    r = await run(graphql, *move, {"id": eps["id"], "parentId": eps["id"]}, demo.token)
    expect(r, "CycleDetectedError", "CYCLE_DETECTED")
    assert (await _component(graphql, demo, "EPS"))["parent"] == {"tag": "SAT"}
    thm = await _component(graphql, demo, "THM")
    r = await run(
        graphql, *move, {"id": comp["id"], "parentId": thm["id"], "expectedVersion": 2}, demo.token
    )
    assert r["__typename"] == "ComponentSuccess"
    assert (r["component"]["parent"], r["component"]["version"]) == ({"tag": "THM"}, 3)

    delete = (
        "componentDelete",
        "ComponentDeleteInput",
        "... on ComponentDeleteSuccess { deletedId component { tag } } "
        "... on HasDependentsError { dependents }",
    )
    r = await run(graphql, *delete, {"id": eps["id"]}, demo.token)
    expect(r, "HasDependentsError", "HAS_DEPENDENTS")
    assert "EPS-BAT-01" in r["dependents"]
    r = await run(graphql, *delete, {"id": comp["id"]}, demo.token)
    assert r == {
        "__typename": "ComponentDeleteSuccess",
        "deletedId": comp["id"],
        "component": {"tag": "THM-HTR-01"},
    }
    assert await _component(graphql, demo, "THM-HTR-01") is None
    assert await _component(graphql, demo, "EPS") is not None


CONNECTOR = """... on ConnectorSuccess { connector { id kind name version
  source { port component { tag } } target { port component { tag } } } }"""
CONN_COUNT = """query($p: ID!) { project(id: $p) { connectors { totalCount } } }"""


async def test_connectors(demo: Demo, graphql: GraphQLCall) -> None:
    pcdu = await _component(graphql, demo, "EPS-PCDU-01")
    rw = await _component(graphql, demo, "ADCS-RW-01")

    async def count() -> int:
        data = await read(graphql, CONN_COUNT, demo.token, p=demo.pid)
        return int(data["project"]["connectors"]["totalCount"])

    before = await count()
    create = ("connectorCreate", "ConnectorCreateInput", CONNECTOR)
    inp = {
        "projectId": demo.pid,
        "sourceComponentId": pcdu["id"],
        "sourcePort": "pwr_bus",
        "targetComponentId": rw["id"],
        "targetPort": "pwr_in",
        "kind": "POWER",
        "name": "28 V to wheels",
    }
    r = await run(graphql, *create, inp, demo.token)
    assert r["__typename"] == "ConnectorSuccess"
    conn = r["connector"]
    assert {k: conn[k] for k in ("kind", "name", "version", "source", "target")} == {
        "kind": "POWER",
        "name": "28 V to wheels",
        "version": 1,
        "source": {"port": "pwr_bus", "component": {"tag": "EPS-PCDU-01"}},
        "target": {"port": "pwr_in", "component": {"tag": "ADCS-RW-01"}},
    }
    assert await count() == before + 1

    r = await run(graphql, *create, {**inp, "targetPort": "nope"}, demo.token)
    expect(r, "PortNotFoundError", "PORT_NOT_FOUND", "targetPort")
    r = await run(graphql, *create, {**inp, "sourcePort": "sa_in"}, demo.token)
    expect(r, "ValidationError", "VALIDATION_ERROR", "sourcePort")  # an input port
    r = await run(graphql, *create, {**inp, "kind": "FLUID"}, demo.token)
    expect(r, "ValidationError", "VALIDATION_ERROR", "kind")
    r = await run(graphql, *create, {**inp, "targetComponentId": demo.pid}, demo.token)
    expect(r, "NotFoundError", "NOT_FOUND", "targetComponentId")
    assert await count() == before + 1

    update = ("connectorUpdate", "ConnectorUpdateInput", CONNECTOR)
    r = await run(
        graphql, *update, {"id": conn["id"], "expectedVersion": 1, "name": "wheels"}, demo.token
    )
    assert r["__typename"] == "ConnectorSuccess"
    assert (r["connector"]["name"], r["connector"]["version"]) == ("wheels", 2)
    r = await run(graphql, *update, {"id": conn["id"], "targetPort": "gone"}, demo.token)
    expect(r, "PortNotFoundError", "PORT_NOT_FOUND", "targetPort")
    r = await run(
        graphql, *update, {"id": conn["id"], "expectedVersion": 1, "name": "x"}, demo.token
    )
    expect(r, "VersionConflictError", "VERSION_CONFLICT")

    delete = (
        "connectorDelete",
        "ConnectorDeleteInput",
        "... on ConnectorDeleteSuccess { deletedId connector { name } }",
    )
    r = await run(graphql, *delete, {"id": conn["id"]}, demo.token)
    assert r == {
        "__typename": "ConnectorDeleteSuccess",
        "deletedId": conn["id"],
        "connector": {"name": "wheels"},
    }
    assert await count() == before
    expect(
        await run(graphql, *delete, {"id": conn["id"]}, demo.token), "NotFoundError", "NOT_FOUND"
    )


# --------------------------------------------------------------------------- requirements

REQUIREMENT = """... on RequirementSuccess { requirement { id key title text priority status
  verificationMethod compliance margin version parent { key }
  rule { operator threshold thresholdHigh unit } parameter { symbol } } }"""
REQ_Q = """query($p: ID!, $k: String!) { project(id: $p) { requirement(key: $k) {
  id title version compliance margin rule { operator threshold unit }
  links { id kind suspect suspectReason } } } }"""


async def _req(graphql: GraphQLCall, demo: Demo, key: str) -> Any:
    return (await read(graphql, REQ_Q, demo.token, p=demo.pid, k=key))["project"]["requirement"]


async def test_requirements_and_rules(demo: Demo, graphql: GraphQLCall) -> None:
    wet = (
        await read(
            graphql,
            'query($p: ID!) { project(id: $p) { parameter(symbol: "m_wet") { id number } } }',
            demo.token,
            p=demo.pid,
        )
    )["project"]["parameter"]
    create = ("requirementCreate", "RequirementCreateInput", REQUIREMENT)
    parent = await _req(graphql, demo, "REQ-SYS-001")
    inp = {
        "projectId": demo.pid,
        "key": "REQ-MASS-002",
        "title": "Launcher limit",
        "priority": "HIGH",
        "parentId": parent["id"],
        "rule": {"parameterId": wet["id"], "operator": "LE", "threshold": 150000, "unit": "g"},
    }
    r = await run(graphql, *create, inp, demo.token)
    assert r["__typename"] == "RequirementSuccess"
    req = r["requirement"]
    assert {
        k: req[k]
        for k in (
            "key",
            "title",
            "priority",
            "status",
            "verificationMethod",
            "compliance",
            "version",
            "parent",
            "rule",
            "parameter",
        )
    } == {
        "key": "REQ-MASS-002",
        "title": "Launcher limit",
        "priority": "HIGH",
        "status": "DRAFT",
        "verificationMethod": "RULE",
        "compliance": "PASS",
        "version": 1,
        "parent": {"key": "REQ-SYS-001"},
        "rule": {"operator": "LE", "threshold": 150000.0, "thresholdHigh": None, "unit": "g"},
        "parameter": {"symbol": "m_wet"},
    }
    assert req["margin"] == pytest.approx(150000 - wet["number"] * 1000, rel=1e-9)

    # Typed errors, nothing created.
    expect(
        await run(graphql, *create, {**inp, "key": "REQ-MASS-001"}, demo.token),
        "DuplicateError",
        "DUPLICATE",
        "key",
    )
    bad_unit = {**inp, "key": "REQ-X-1", "rule": {**inp["rule"], "unit": "m/s"}}
    expect(
        await run(graphql, *create, bad_unit, demo.token),
        "DimensionError",
        "UNIT_MISMATCH",
        "rule.unit",
    )
    unknown_unit = {**inp, "key": "REQ-X-1", "rule": {**inp["rule"], "unit": "furlongz"}}
    expect(
        await run(graphql, *create, unknown_unit, demo.token),
        "UnknownUnitInputError",
        "UNKNOWN_UNIT",
        "rule.unit",
    )
    between = {**inp, "key": "REQ-X-1", "rule": {**inp["rule"], "operator": "BETWEEN"}}
    expect(
        await run(graphql, *create, between, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "rule.thresholdHigh",
    )
    # A text parameter: numeric operators do not apply.
    text_param = await run(
        graphql,
        "parameterCreate",
        "ParameterCreateInput",
        "... on ParameterCreateSuccess { parameter { id } }",
        {
            "projectId": demo.pid,
            "symbol": "bat_chem",
            "name": "Battery chemistry",
            "valueKind": "TEXT",
            "text": "Li-ion",
        },
        demo.token,
    )
    on_text = {
        **inp,
        "key": "REQ-X-1",
        "rule": {"parameterSymbol": "bat_chem", "operator": "GE", "threshold": 1},
    }
    expect(
        await run(graphql, *create, on_text, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "rule.operator",
    )
    mistyped = {**inp, "key": "REQ-X-1", "rule": {**inp["rule"], "parameterId": parent["id"]}}
    expect(
        await run(graphql, *create, mistyped, demo.token),
        "NotFoundError",
        "NOT_FOUND",
        "rule.parameterId",
    )
    assert text_param["parameter"]["id"]
    assert await _req(graphql, demo, "REQ-X-1") is None

    update = ("requirementUpdate", "RequirementUpdateInput", REQUIREMENT)
    r = await run(
        graphql,
        *update,
        {"id": req["id"], "expectedVersion": 1, "rule": {**inp["rule"], "threshold": 100000}},
        demo.token,
    )
    assert r["__typename"] == "RequirementSuccess"
    assert (r["requirement"]["compliance"], r["requirement"]["version"]) == ("FAIL", 2)
    assert r["requirement"]["margin"] == pytest.approx(100000 - wet["number"] * 1000, rel=1e-9)
    before = await _req(graphql, demo, "REQ-MASS-002")
    on_text_upd = {
        "id": req["id"],
        "rule": {"parameterSymbol": "bat_chem", "operator": "LT", "threshold": 3},
    }
    expect(
        await run(graphql, *update, on_text_upd, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "rule.operator",
    )
    expect(
        await run(
            graphql, *update, {"id": req["id"], "expectedVersion": 1, "title": "x"}, demo.token
        ),
        "VersionConflictError",
        "VERSION_CONFLICT",
    )
    expect(
        await run(graphql, *update, {"id": parent["id"], "parentId": req["id"]}, demo.token),
        "CycleDetectedError",
        "CYCLE_DETECTED",
        "parentId",
    )
    assert await _req(graphql, demo, "REQ-MASS-002") == before
    r = await run(
        graphql,
        *update,
        {
            "id": req["id"],
            "rule": None,
            "verificationMethod": "TEST",
            "title": "Launcher mass limit",
        },
        demo.token,
    )
    assert r["__typename"] == "RequirementSuccess"
    got = r["requirement"]
    assert (got["rule"], got["compliance"], got["margin"], got["verificationMethod"]) == (
        None,
        "UNKNOWN",
        None,
        "TEST",
    )
    assert (got["title"], got["version"]) == ("Launcher mass limit", 3)

    delete = (
        "requirementDelete",
        "RequirementDeleteInput",
        "... on RequirementDeleteSuccess { deletedId requirement { key } }",
    )
    expect(
        await run(graphql, *delete, {"id": parent["id"]}, demo.token),
        "HasDependentsError",
        "HAS_DEPENDENTS",
    )
    r = await run(graphql, *delete, {"id": req["id"], "expectedVersion": 3}, demo.token)
    assert r == {
        "__typename": "RequirementDeleteSuccess",
        "deletedId": req["id"],
        "requirement": {"key": "REQ-MASS-002"},
    }
    assert await _req(graphql, demo, "REQ-MASS-002") is None


LINK = (
    "... on TraceLinkSuccess { traceLink { id kind suspect suspectReason target { __typename } } }"
)


async def test_trace_links_and_suspect_clear(demo: Demo, graphql: GraphQLCall) -> None:
    req = await _req(graphql, demo, "REQ-PWR-001")
    load = (
        await read(
            graphql,
            'query($p: ID!) { project(id: $p) { parameter(symbol: "P_load") { id } } }',
            demo.token,
            p=demo.pid,
        )
    )["project"]["parameter"]
    create = ("traceLinkCreate", "TraceLinkCreateInput", LINK)
    inp = {"requirementId": req["id"], "kind": "VERIFIED_BY", "targetId": load["id"]}
    r = await run(graphql, *create, inp, demo.token)
    assert r["__typename"] == "TraceLinkSuccess"
    link = r["traceLink"]
    assert (link["kind"], link["suspect"], link["suspectReason"], link["target"]) == (
        "VERIFIED_BY",
        False,
        None,
        {"__typename": "Parameter"},
    )
    expect(await run(graphql, *create, inp, demo.token), "DuplicateError", "DUPLICATE", "targetId")
    sat = await _component(graphql, demo, "SAT")
    # A Component id for a link kind that targets parameters reads as missing.
    expect(
        await run(graphql, *create, {**inp, "targetId": sat["id"]}, demo.token),
        "NotFoundError",
        "NOT_FOUND",
        "targetId",
    )
    self_link = {"requirementId": req["id"], "kind": "REFINES", "targetId": req["id"]}
    expect(
        await run(graphql, *create, self_link, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "targetId",
    )
    links = (await _req(graphql, demo, "REQ-PWR-001"))["links"]
    assert len(links) == len(req["links"]) + 1 and not any(x["suspect"] for x in links)

    # Editing the requirement's statement marks its links suspect...
    r = await run(
        graphql,
        "requirementUpdate",
        "RequirementUpdateInput",
        REQUIREMENT,
        {"id": req["id"], "text": "Positive power margin, EOL, worst case."},
        demo.token,
    )
    assert r["__typename"] == "RequirementSuccess"
    links = {x["id"]: x for x in (await _req(graphql, demo, "REQ-PWR-001"))["links"]}
    assert links[link["id"]]["suspect"] is True
    assert "text" in links[link["id"]]["suspectReason"]
    # ...and the review clears exactly the one link.
    clear = ("traceLinkSuspectClear", "TraceLinkInput", LINK)
    r = await run(graphql, *clear, {"id": link["id"]}, demo.token)
    assert r["__typename"] == "TraceLinkSuccess"
    assert (r["traceLink"]["suspect"], r["traceLink"]["suspectReason"]) == (False, None)
    after = {x["id"]: x for x in (await _req(graphql, demo, "REQ-PWR-001"))["links"]}
    assert after[link["id"]]["suspect"] is False
    assert all(x["suspect"] for i, x in after.items() if i != link["id"])
    expect(await run(graphql, *clear, {"id": req["id"]}, demo.token), "NotFoundError", "NOT_FOUND")

    delete = (
        "traceLinkDelete",
        "TraceLinkInput",
        "... on TraceLinkDeleteSuccess { deletedId requirement { key } }",
    )
    r = await run(graphql, *delete, {"id": link["id"]}, demo.token)
    assert r == {
        "__typename": "TraceLinkDeleteSuccess",
        "deletedId": link["id"],
        "requirement": {"key": "REQ-PWR-001"},
    }
    assert link["id"] not in {x["id"] for x in (await _req(graphql, demo, "REQ-PWR-001"))["links"]}
    expect(
        await run(graphql, *delete, {"id": link["id"]}, demo.token), "NotFoundError", "NOT_FOUND"
    )


# --------------------------------------------------------------------------- comments

COMMENT = "... on CommentSuccess { comment { id body targetId parent { id } author { email } } }"
COMMENTS_Q = (
    "query($p: ID!) { project(id: $p) { comments { totalCount edges { node { id body } } } } }"
)


async def test_comments(
    demo: Demo, graphql: GraphQLCall, factory: Factory, sessionmaker: Any
) -> None:
    other = await factory.account(org=demo.org)
    async with sessionmaker() as s:
        s.add(ProjectMember(project_id=demo.project_id, user_id=other.user.id, role="editor"))
        await s.commit()
    req = await _req(graphql, demo, "REQ-MASS-001")
    add = ("commentAdd", "CommentAddInput", COMMENT)
    r = await run(graphql, *add, {"targetId": req["id"], "body": "Check the margin."}, demo.token)
    assert r["__typename"] == "CommentSuccess"
    first = r["comment"]
    assert (first["body"], first["targetId"], first["parent"]) == (
        "Check the margin.",
        req["id"],
        None,
    )
    r = await run(
        graphql,
        *add,
        {"targetId": req["id"], "body": "Done.", "parentId": first["id"]},
        other.token,
    )
    assert r["__typename"] == "CommentSuccess"
    reply = r["comment"]
    assert reply["parent"] == {"id": first["id"]}
    assert reply["author"]["email"] == other.user.email
    r = await run(graphql, *add, {"targetId": demo.pid, "body": "On the project."}, demo.token)
    assert r["__typename"] == "CommentSuccess" and r["comment"]["targetId"] == demo.pid
    before = (await read(graphql, COMMENTS_Q, demo.token, p=demo.pid))["project"]["comments"]
    assert before["totalCount"] == 3

    link_id = req["links"][0]["id"]  # trace links take no comments
    expect(
        await run(graphql, *add, {"targetId": link_id, "body": "x"}, demo.token),
        "NotFoundError",
        "NOT_FOUND",
        "targetId",
    )
    expect(
        await run(graphql, *add, {"targetId": gid("Nope", uuid.uuid4()), "body": "x"}, demo.token),
        "NotFoundError",
        "NOT_FOUND",
        "targetId",
    )
    expect(
        await run(graphql, *add, {"targetId": req["id"], "body": "  "}, demo.token),
        "ValidationError",
        "VALIDATION_ERROR",
        "body",
    )
    elsewhere = await run(
        graphql, *add, {"targetId": demo.pid, "body": "x", "parentId": first["id"]}, demo.token
    )
    expect(elsewhere, "ValidationError", "VALIDATION_ERROR", "parentId")
    edit = ("commentEdit", "CommentEditInput", COMMENT)
    expect(
        await run(graphql, *edit, {"id": first["id"], "body": "mine now"}, other.token),
        "ForbiddenError",
        "FORBIDDEN",
    )
    expect(
        await run(graphql, *edit, {"id": first["id"], "body": "anon"}, None),
        "UnauthenticatedError",
        "UNAUTHENTICATED",
    )
    delete = (
        "commentDelete",
        "CommentDeleteInput",
        "... on CommentDeleteSuccess { deletedId comment { body } }",
    )
    expect(
        await run(graphql, *delete, {"id": first["id"]}, other.token), "ForbiddenError", "FORBIDDEN"
    )
    assert (await read(graphql, COMMENTS_Q, demo.token, p=demo.pid))["project"]["comments"] == (
        before
    )

    r = await run(graphql, *edit, {"id": first["id"], "body": "Check the mass margin."}, demo.token)
    assert r["__typename"] == "CommentSuccess" and r["comment"]["body"] == "Check the mass margin."
    # The owner may delete someone else's comment.
    r = await run(graphql, *delete, {"id": reply["id"]}, demo.token)
    assert r == {
        "__typename": "CommentDeleteSuccess",
        "deletedId": reply["id"],
        "comment": {"body": "Done."},
    }
    after = (await read(graphql, COMMENTS_Q, demo.token, p=demo.pid))["project"]["comments"]
    assert after["totalCount"] == 2
    assert reply["id"] not in {e["node"]["id"] for e in after["edges"]}


# --------------------------------------------------------------------------- revisions

REVISION = "... on RevisionCreateSuccess { revision { id name description sequence parameterCount requirementCount componentCount } }"
KIND = """{ added { id key snapshot } removed { id key snapshot }
  changed { id key changes { field old new } } }"""
DIFF = f"""query($from: ID!, $to: ID) {{ revisionDiff(from: $from, to: $to) {{
  fromRevision {{ name }} toRevision {{ name }} fromSequence toSequence
  parameters {KIND} requirements {KIND} components {KIND} }} }}"""


def _changes(kind: dict[str, Any]) -> dict[str, dict[str, tuple[Any, Any]]]:
    return {
        c["key"]: {f["field"]: (f["old"], f["new"]) for f in c["changes"]} for c in kind["changed"]
    }


async def test_revision_create_and_diff(demo: Demo, graphql: GraphQLCall) -> None:
    create = ("revisionCreate", "RevisionCreateInput", REVISION)
    r = await run(
        graphql, *create, {"projectId": demo.pid, "name": "B", "description": "PDR"}, demo.token
    )
    assert r["__typename"] == "RevisionCreateSuccess"
    rev_b = r["revision"]
    assert (rev_b["name"], rev_b["description"]) == ("B", "PDR")
    assert rev_b["parameterCount"] > 50 and rev_b["requirementCount"] == 10
    assert rev_b["componentCount"] > 20 and rev_b["sequence"] > 0
    expect(
        await run(graphql, *create, {"projectId": demo.pid, "name": "A"}, demo.token),
        "DuplicateError",
        "DUPLICATE",
        "name",
    )
    revisions = "query($p: ID!) { project(id: $p) { revisions { totalCount } } }"
    count = (await read(graphql, revisions, demo.token, p=demo.pid))["project"]["revisions"]
    assert count == {"totalCount": 2}  # the demo's A and the new B
    expect(
        await run(graphql, *create, {"projectId": demo.pid, "name": "C"}, None),
        "UnauthenticatedError",
        "UNAUTHENTICATED",
    )

    empty = (await read(graphql, DIFF, demo.token, **{"from": rev_b["id"]}))["revisionDiff"]
    for kind in ("parameters", "requirements", "components"):
        assert empty[kind] == {"added": [], "removed": [], "changed": []}
    # Only the revision's own creation event happened since.
    assert empty["toRevision"] is None and empty["toSequence"] == empty["fromSequence"] + 1

    # Edit the payload mass (20 -> 24 kg) and add a component: the diff shows both.
    payload = (
        await read(
            graphql,
            'query($p: ID!) { project(id: $p) { parameter(symbol: "m_payload") { id version } } }',
            demo.token,
            p=demo.pid,
        )
    )["project"]["parameter"]
    r = await run(
        graphql,
        "parameterUpdate",
        "ParameterUpdateInput",
        "... on ParameterChangeSuccess { sequence }",
        {"id": payload["id"], "expectedVersion": payload["version"], "number": 24.0},
        demo.token,
    )
    assert r["__typename"] == "ParameterChangeSuccess"
    r = await run(
        graphql,
        "componentCreate",
        "ComponentCreateInput",
        COMPONENT,
        {"projectId": demo.pid, "tag": "PL-CAM-02", "name": "Second imager"},
        demo.token,
    )
    assert r["__typename"] == "ComponentSuccess"
    new_comp = r["component"]

    diff = (await read(graphql, DIFF, demo.token, **{"from": rev_b["id"]}))["revisionDiff"]
    assert diff["fromRevision"] == {"name": "B"} and diff["toRevision"] is None
    assert diff["toSequence"] > diff["fromSequence"] == rev_b["sequence"]
    params = _changes(diff["parameters"])
    assert params["m_payload"]["value"] == (20.0, 24.0)
    assert params["m_payload"]["version"] == (payload["version"], payload["version"] + 1)
    assert set(params) == {"m_payload", "m_dry", "m_prop", "m_wet"}
    old_wet, new_wet = params["m_wet"]["value"]
    assert new_wet > 130 > old_wet
    reqs = _changes(diff["requirements"])
    assert reqs["REQ-MASS-001"]["compliance"] == ("PASS", "FAIL")
    assert diff["components"]["added"] == [
        {
            "id": new_comp["id"],
            "key": "PL-CAM-02",
            "snapshot": diff["components"]["added"][0]["snapshot"],
        }
    ]
    assert diff["components"]["added"][0]["snapshot"]["name"] == "Second imager"
    assert diff["components"]["removed"] == [] and diff["parameters"]["added"] == []

    # Revision to revision gives the same; a later revision against now is empty.
    r = await run(graphql, *create, {"projectId": demo.pid, "name": "C"}, demo.token)
    rev_c = r["revision"]
    between = (await read(graphql, DIFF, demo.token, **{"from": rev_b["id"], "to": rev_c["id"]}))[
        "revisionDiff"
    ]
    assert between["toRevision"] == {"name": "C"}
    assert _changes(between["parameters"]) == params
    back = (await read(graphql, DIFF, demo.token, **{"from": rev_c["id"], "to": rev_b["id"]}))[
        "revisionDiff"
    ]
    assert _changes(back["parameters"])["m_payload"]["value"] == (24.0, 20.0)
    assert [c["key"] for c in back["components"]["removed"]] == ["PL-CAM-02"]

    # Missing, mistyped, foreign or anonymous: null.
    for variables, token in (
        ({"from": demo.pid}, demo.token),
        ({"from": rev_b["id"], "to": demo.pid}, demo.token),
        ({"from": rev_b["id"]}, None),
    ):
        assert (await read(graphql, DIFF, token, **variables))["revisionDiff"] is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- access


async def test_viewers_strangers_and_anonymous_change_nothing(
    demo: Demo, graphql: GraphQLCall, factory: Factory, sessionmaker: Any
) -> None:
    viewer = await factory.account(org=demo.org)
    async with sessionmaker() as s:
        s.add(ProjectMember(project_id=demo.project_id, user_id=viewer.user.id, role="viewer"))
        await s.commit()
    stranger = await factory.account()
    sat = await _component(graphql, demo, "SAT")
    req = await _req(graphql, demo, "REQ-MASS-001")
    calls = [
        (
            "componentCreate",
            "ComponentCreateInput",
            {"projectId": demo.pid, "tag": "X-1", "name": "x"},
        ),
        ("componentUpdate", "ComponentUpdateInput", {"id": sat["id"], "name": "x"}),
        (
            "componentTypeCreate",
            "ComponentTypeCreateInput",
            {"projectId": demo.pid, "code": "X", "name": "x"},
        ),
        ("requirementUpdate", "RequirementUpdateInput", {"id": req["id"], "title": "x"}),
        ("traceLinkSuspectClear", "TraceLinkInput", {"id": req["links"][0]["id"]}),
        ("commentAdd", "CommentAddInput", {"targetId": req["id"], "body": "x"}),
        ("revisionCreate", "RevisionCreateInput", {"projectId": demo.pid, "name": "X"}),
        ("projectUpdate", "ProjectUpdateInput", {"id": demo.pid, "name": "x"}),
    ]
    for name, input_type, inp in calls:
        r = await run(graphql, name, input_type, "", inp, viewer.token)
        expect(r, "ForbiddenError", "FORBIDDEN")
        r = await run(graphql, name, input_type, "", inp, stranger.token)
        expect(r, "NotFoundError", "NOT_FOUND")
        r = await run(graphql, name, input_type, "", inp, None)
        expect(r, "UnauthenticatedError", "UNAUTHENTICATED")
    assert await _component(graphql, demo, "SAT") == sat
    assert await _req(graphql, demo, "REQ-MASS-001") == req
    assert await _component(graphql, demo, "X-1") is None
