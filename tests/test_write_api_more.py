"""The rest of the write API over real HTTP: projects and members, component types,
components, connectors, requirements and rules, trace links, comments, revisions and
`revisionDiff`. Every typed error is checked to have changed nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from app.projects.models import ProjectMember
from tests.conftest import Account, Demo, Factory, GraphQLCall
from tests.test_read_api import gid

TYPENAMES = {
    "UNAUTHENTICATED": "UnauthenticatedError",
    "NOT_FOUND": "NotFoundError",
    "FORBIDDEN": "ForbiddenError",
    "VALIDATION_ERROR": "ValidationError",
    "DUPLICATE": "DuplicateError",
    "VERSION_CONFLICT": "VersionConflictError",
    "CYCLE_DETECTED": "CycleDetectedError",
    "HAS_DEPENDENTS": "HasDependentsError",
    "UNKNOWN_UNIT": "UnknownUnitInputError",
    "UNIT_MISMATCH": "DimensionError",
    "PORT_NOT_FOUND": "PortNotFoundError",
    "LAST_OWNER": "LastOwnerError",
}
EXTRA = """... on VersionConflictError { currentVersion } ... on CycleDetectedError { path }
  ... on HasDependentsError { dependents }"""


@dataclass(frozen=True)
class Op:
    """A mutation: its name, its success type and what to select on it."""

    name: str
    success: str
    selection: str
    input_type: str = ""

    @property
    def query(self) -> str:
        input_type = self.input_type or f"{self.name[0].upper()}{self.name[1:]}Input"
        return (
            f"mutation($input: {input_type}!) {{ {self.name}(input: $input) {{ __typename "
            f"... on {self.success} {{ {self.selection} }} {EXTRA} "
            "... on UserError { code message field } } }"
        )


@dataclass(frozen=True)
class Api:
    """GraphQL over HTTP as one caller (``token`` None: anonymous)."""

    graphql: GraphQLCall
    token: str | None

    def as_(self, token: str | None) -> Api:
        return Api(self.graphql, token)

    async def call(self, op: Op, inp: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = (
            await self.graphql(op.query, {"input": inp}, token=self.token)
        ).ok()[op.name]
        return result

    async def ok(self, op: Op, inp: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(op, inp)
        assert result["__typename"] == op.success, result
        return result

    async def err(
        self, op: Op, inp: dict[str, Any], code: str, field: str | None = None
    ) -> dict[str, Any]:
        """Expect the typed error of ``code`` (and ``field``, a prefix of the error's)."""
        result = await self.call(op, inp)
        assert (result["__typename"], result.get("code")) == (TYPENAMES[code], code), result
        if field is not None:
            assert (result["field"] or "").startswith(field), result
        return result

    async def read(self, query: str, **variables: Any) -> Any:
        return (await self.graphql(query, variables, token=self.token)).ok()


@dataclass
class DemoProject:
    """The demo project seen through the API as its owner."""

    api: Api
    project_id: uuid.UUID
    org: str

    @property
    def pid(self) -> str:
        return gid("Project", self.project_id)

    async def read(self, selection: str) -> Any:
        query = f"query($p: ID!) {{ project(id: $p) {{ {selection} }} }}"
        return (await self.api.read(query, p=self.pid))["project"]

    async def component(self, tag: str) -> Any:
        sel = f'component(tag: "{tag}") {{ id tag name properties version parent {{ tag }} }}'
        return (await self.read(sel))["component"]

    async def requirement(self, key: str) -> Any:
        sel = f"""requirement(key: "{key}") {{ id title version compliance margin
          rule {{ operator threshold unit }} links {{ id kind suspect suspectReason }} }}"""
        return (await self.read(sel))["requirement"]

    async def parameter(self, symbol: str) -> Any:
        return (await self.read(f'parameter(symbol: "{symbol}") {{ id version number }}'))[
            "parameter"
        ]

    async def count(self, connection: str) -> int:
        return int((await self.read(f"{connection} {{ totalCount }}"))[connection]["totalCount"])

    async def add_member(self, sessionmaker: Any, account: Account, role: str) -> None:
        async with sessionmaker() as s:
            s.add(ProjectMember(project_id=self.project_id, user_id=account.user.id, role=role))
            await s.commit()


@pytest.fixture
def dp(demo: Demo, graphql: GraphQLCall) -> DemoProject:
    """The shared demo fixture (a fresh copy of the smallsat demo) with an API."""
    return DemoProject(Api(graphql, demo.token), demo.project_id, demo.org)


# --------------------------------------------------------------------------- projects

PROJECT_CREATE = Op("projectCreate", "ProjectSuccess", "project { id name description viewerRole }")
PROJECT_UPDATE = Op("projectUpdate", "ProjectSuccess", "project { id name description }")
PROJECT_DELETE = Op("projectDelete", "ProjectDeleteSuccess", "deletedId name")
MEMBERS = "project { id } member { role user { email } } members { role user { email } }"
MEMBER_ADD = Op("projectMemberAdd", "ProjectMemberSuccess", MEMBERS)
MEMBER_UPDATE = Op("projectMemberUpdate", "ProjectMemberSuccess", MEMBERS)
MEMBER_REMOVE = Op("projectMemberRemove", "ProjectMemberSuccess", MEMBERS)
PROJECT_Q = "query($id: ID!) { project(id: $id) { name description members { role } } }"


async def test_projects_and_members(factory: Factory, graphql: GraphQLCall) -> None:
    org = f"Org {uuid.uuid4().hex[:8]}"
    owner, editor, third = [await factory.account(org=org) for _ in range(3)]
    outsider = await factory.account()
    api, as_editor = Api(graphql, owner.token), Api(graphql, editor.token)
    name = f"Probe {uuid.uuid4().hex[:6]}"

    await api.as_(None).err(PROJECT_CREATE, {"name": name}, "UNAUTHENTICATED")
    r = await api.ok(PROJECT_CREATE, {"name": name, "description": "first"})
    pid = r["project"]["id"]
    assert r["project"] == {"id": pid, "name": name, "description": "first", "viewerRole": "OWNER"}
    await api.err(PROJECT_CREATE, {"name": name}, "DUPLICATE", "name")
    search = "query($s: String!) { projects(filter: {search: $s}) { totalCount } }"
    assert (await api.read(search, s=name))["projects"]["totalCount"] == 1
    r = await api.ok(PROJECT_UPDATE, {"id": pid, "description": "second"})
    assert r["project"] == {"id": pid, "name": name, "description": "second"}

    def member(account: Account, role: str | None = None) -> dict[str, Any]:
        inp = {"projectId": pid, "userId": gid("User", account.user.id)}
        return inp if role is None else {**inp, "role": role}

    r = await api.ok(MEMBER_ADD, member(editor, "EDITOR"))
    assert r["member"] == {"role": "EDITOR", "user": {"email": editor.user.email}}
    assert r["project"] == {"id": pid}
    assert sorted((m["role"], m["user"]["email"]) for m in r["members"]) == sorted(
        [("OWNER", owner.user.email), ("EDITOR", editor.user.email)]
    )
    before = (await api.read(PROJECT_Q, id=pid))["project"]

    # Typed errors; nothing moves.
    await as_editor.err(MEMBER_ADD, member(third, "VIEWER"), "FORBIDDEN")
    await as_editor.err(MEMBER_UPDATE, member(editor, "OWNER"), "FORBIDDEN")
    await as_editor.err(MEMBER_REMOVE, member(owner), "FORBIDDEN")
    await as_editor.err(PROJECT_DELETE, {"id": pid}, "FORBIDDEN")
    await api.err(MEMBER_ADD, member(outsider, "VIEWER"), "NOT_FOUND", "userId")
    await api.err(MEMBER_ADD, member(editor, "VIEWER"), "DUPLICATE", "userId")
    mistyped = {**member(third, "VIEWER"), "userId": gid("Project", third.user.id)}
    await api.err(MEMBER_ADD, mistyped, "NOT_FOUND", "userId")
    await api.err(MEMBER_REMOVE, member(owner), "LAST_OWNER", "userId")
    await api.err(MEMBER_UPDATE, member(owner, "EDITOR"), "LAST_OWNER", "role")
    await api.as_(None).err(MEMBER_ADD, member(third, "VIEWER"), "UNAUTHENTICATED")
    await Api(graphql, outsider.token).err(PROJECT_DELETE, {"id": pid}, "NOT_FOUND")
    assert (await api.read(PROJECT_Q, id=pid))["project"] == before

    r = await api.ok(MEMBER_UPDATE, member(editor, "VIEWER"))
    assert r["member"]["role"] == "VIEWER"
    r = await api.ok(MEMBER_REMOVE, member(editor))
    assert r["member"] == {"role": "VIEWER", "user": {"email": editor.user.email}}
    assert r["members"] == [{"role": "OWNER", "user": {"email": owner.user.email}}]
    assert (await as_editor.read(PROJECT_Q, id=pid))["project"] is None

    r = await api.ok(PROJECT_DELETE, {"id": pid})
    assert r == {"__typename": "ProjectDeleteSuccess", "deletedId": pid, "name": name}
    assert (await api.read(PROJECT_Q, id=pid))["project"] is None


# --------------------------------------------------------------------------- components

TYPE_CREATE = Op(
    "componentTypeCreate",
    "ComponentTypeCreateSuccess",
    "componentType { id code name propertySchema ports { name kind direction } }",
)
COMPONENT = "component { id tag name properties version parent { tag } type { code } }"
COMPONENT_CREATE = Op("componentCreate", "ComponentSuccess", COMPONENT)
COMPONENT_UPDATE = Op("componentUpdate", "ComponentSuccess", COMPONENT)
COMPONENT_MOVE = Op("componentMove", "ComponentSuccess", COMPONENT)
COMPONENT_DELETE = Op("componentDelete", "ComponentDeleteSuccess", "deletedId component { tag }")


async def test_component_types_and_components(dp: DemoProject) -> None:
    api = dp.api
    schema = {
        "type": "object",
        "properties": {"power_w": {"type": "number", "minimum": 0}},
        "required": ["power_w"],
    }
    ports = [
        {"name": "pwr_in", "kind": "POWER", "direction": "IN"},
        {"name": "data", "kind": "DATA", "direction": "INOUT"},
    ]
    inp = {"projectId": dp.pid, "code": "HEATER", "name": "Heater", "ports": ports}
    ctype = (await api.ok(TYPE_CREATE, {**inp, "propertySchema": schema}))["componentType"]
    assert (ctype["code"], ctype["name"], ctype["propertySchema"]) == ("HEATER", "Heater", schema)
    assert ctype["ports"] == ports
    types = await dp.read("componentTypes { code }")
    await api.err(TYPE_CREATE, inp, "DUPLICATE", "code")
    bad_schema = {**inp, "code": "HEATER2", "propertySchema": {"type": 5}}
    await api.err(TYPE_CREATE, bad_schema, "VALIDATION_ERROR", "propertySchema")
    bad_ports = {**inp, "code": "HEATER3", "ports": [ports[0], ports[0]]}
    await api.err(TYPE_CREATE, bad_ports, "VALIDATION_ERROR", "ports.1.name")
    assert await dp.read("componentTypes { code }") == types

    eps, bat = await dp.component("EPS"), await dp.component("EPS-BAT-01")
    new: dict[str, Any] = {"projectId": dp.pid, "tag": "THM-HTR-01", "name": "Battery heater"}
    new |= {"typeId": ctype["id"], "parentId": eps["id"], "properties": {"power_w": 5}}
    comp = (await api.ok(COMPONENT_CREATE, new))["component"]
    assert comp == {
        "id": comp["id"],
        "tag": "THM-HTR-01",
        "name": "Battery heater",
        "properties": {"power_w": 5},
        "version": 1,
        "parent": {"tag": "EPS"},
        "type": {"code": "HEATER"},
    }
    await api.err(COMPONENT_CREATE, new, "DUPLICATE", "tag")
    other = {**new, "tag": "THM-HTR-02"}
    field = "properties.power_w"
    await api.err(
        COMPONENT_CREATE, {**other, "properties": {"power_w": -1}}, "VALIDATION_ERROR", field
    )
    await api.err(COMPONENT_CREATE, {**other, "properties": {}}, "VALIDATION_ERROR", field)
    await api.err(COMPONENT_CREATE, {**other, "properties": [1]}, "VALIDATION_ERROR", "properties")
    await api.err(COMPONENT_CREATE, {**other, "typeId": eps["id"]}, "NOT_FOUND", "typeId")
    assert await dp.component("THM-HTR-02") is None

    edit = {
        "id": comp["id"],
        "expectedVersion": 1,
        "name": "Heater A",
        "properties": {"power_w": 7},
    }
    r = (await api.ok(COMPONENT_UPDATE, edit))["component"]
    assert (r["name"], r["properties"], r["version"]) == ("Heater A", {"power_w": 7}, 2)
    current = await dp.component("THM-HTR-01")
    r = await api.err(
        COMPONENT_UPDATE, {**edit, "name": "x"}, "VERSION_CONFLICT", "expectedVersion"
    )
    assert r["currentVersion"] == 2
    bad = {"id": comp["id"], "properties": {"power_w": "hot"}}
    await api.err(COMPONENT_UPDATE, bad, "VALIDATION_ERROR", "properties.power_w")
    # The demo's BATTERY schema: chemistry is an enum.
    bad = {"id": bat["id"], "properties": {"chemistry": "Pb"}}
    await api.err(COMPONENT_UPDATE, bad, "VALIDATION_ERROR", "properties")
    await api.err(COMPONENT_UPDATE, {"id": bat["id"], "typeId": None}, "PORT_NOT_FOUND", "typeId")
    assert await dp.component("EPS-BAT-01") == bat
    assert await dp.component("THM-HTR-01") == current

    r = await api.err(COMPONENT_MOVE, {"id": eps["id"], "parentId": bat["id"]}, "CYCLE_DETECTED")
    assert (r["path"], r["field"]) == (["EPS", "EPS-BAT-01", "EPS"], "parentId")
    await api.err(COMPONENT_MOVE, {"id": eps["id"], "parentId": eps["id"]}, "CYCLE_DETECTED")
    assert (await dp.component("EPS"))["parent"] == {"tag": "SAT"}
    thm = await dp.component("THM")
    move = {"id": comp["id"], "parentId": thm["id"], "expectedVersion": 2}
    r = (await api.ok(COMPONENT_MOVE, move))["component"]
    assert (r["parent"], r["version"]) == ({"tag": "THM"}, 3)

    r = await api.err(COMPONENT_DELETE, {"id": eps["id"]}, "HAS_DEPENDENTS")
    assert "EPS-BAT-01" in r["dependents"]
    r = await api.ok(COMPONENT_DELETE, {"id": comp["id"]})
    assert (r["deletedId"], r["component"]) == (comp["id"], {"tag": "THM-HTR-01"})
    assert await dp.component("THM-HTR-01") is None
    assert await dp.component("EPS") == eps


CONNECTOR = """connector { id kind name version
  source { port component { tag } } target { port component { tag } } }"""
CONNECTOR_CREATE = Op("connectorCreate", "ConnectorSuccess", CONNECTOR)
CONNECTOR_UPDATE = Op("connectorUpdate", "ConnectorSuccess", CONNECTOR)
CONNECTOR_DELETE = Op("connectorDelete", "ConnectorDeleteSuccess", "deletedId connector { name }")


async def test_connectors(dp: DemoProject) -> None:
    api = dp.api
    pcdu, rw = await dp.component("EPS-PCDU-01"), await dp.component("ADCS-RW-01")
    before = await dp.count("connectors")
    inp: dict[str, Any] = {"projectId": dp.pid, "kind": "POWER", "name": "28 V to wheels"}
    inp |= {"sourceComponentId": pcdu["id"], "sourcePort": "pwr_bus"}
    inp |= {"targetComponentId": rw["id"], "targetPort": "pwr_in"}
    conn = (await api.ok(CONNECTOR_CREATE, inp))["connector"]
    assert conn == {
        "id": conn["id"],
        "kind": "POWER",
        "name": "28 V to wheels",
        "version": 1,
        "source": {"port": "pwr_bus", "component": {"tag": "EPS-PCDU-01"}},
        "target": {"port": "pwr_in", "component": {"tag": "ADCS-RW-01"}},
    }
    assert await dp.count("connectors") == before + 1

    await api.err(CONNECTOR_CREATE, {**inp, "targetPort": "nope"}, "PORT_NOT_FOUND", "targetPort")
    await api.err(CONNECTOR_CREATE, {**inp, "sourcePort": "x"}, "PORT_NOT_FOUND", "sourcePort")
    # sa_in is an input: it cannot be a source.
    await api.err(
        CONNECTOR_CREATE, {**inp, "sourcePort": "sa_in"}, "VALIDATION_ERROR", "sourcePort"
    )
    await api.err(CONNECTOR_CREATE, {**inp, "kind": "FLUID"}, "VALIDATION_ERROR", "kind")
    missing = {**inp, "targetComponentId": dp.pid}
    await api.err(CONNECTOR_CREATE, missing, "NOT_FOUND", "targetComponentId")
    assert await dp.count("connectors") == before + 1

    r = await api.ok(CONNECTOR_UPDATE, {"id": conn["id"], "expectedVersion": 1, "name": "wheels"})
    assert (r["connector"]["name"], r["connector"]["version"]) == ("wheels", 2)
    await api.err(CONNECTOR_UPDATE, {"id": conn["id"], "targetPort": "gone"}, "PORT_NOT_FOUND")
    stale = {"id": conn["id"], "expectedVersion": 1, "name": "x"}
    await api.err(CONNECTOR_UPDATE, stale, "VERSION_CONFLICT", "expectedVersion")

    r = await api.ok(CONNECTOR_DELETE, {"id": conn["id"]})
    assert (r["deletedId"], r["connector"]) == (conn["id"], {"name": "wheels"})
    assert await dp.count("connectors") == before
    await api.err(CONNECTOR_DELETE, {"id": conn["id"]}, "NOT_FOUND", "id")


# --------------------------------------------------------------------------- requirements

REQUIREMENT = """requirement { id key title priority status verificationMethod compliance
  margin version parent { key } rule { operator threshold thresholdHigh unit }
  parameter { symbol } }"""
REQ_CREATE = Op("requirementCreate", "RequirementSuccess", REQUIREMENT)
REQ_UPDATE = Op("requirementUpdate", "RequirementSuccess", REQUIREMENT)
REQ_DELETE = Op("requirementDelete", "RequirementDeleteSuccess", "deletedId requirement { key }")
PARAM_CREATE = Op("parameterCreate", "ParameterCreateSuccess", "parameter { id }")


async def test_requirements_and_rules(dp: DemoProject) -> None:
    api = dp.api
    wet, parent = await dp.parameter("m_wet"), await dp.requirement("REQ-SYS-001")
    rule = {"parameterId": wet["id"], "operator": "LE", "threshold": 150000, "unit": "g"}
    inp: dict[str, Any] = {"projectId": dp.pid, "key": "REQ-MASS-002", "title": "Launcher limit"}
    inp |= {"priority": "HIGH", "parentId": parent["id"], "rule": rule}
    req = (await api.ok(REQ_CREATE, inp))["requirement"]
    assert req == {
        "id": req["id"],
        "key": "REQ-MASS-002",
        "title": "Launcher limit",
        "priority": "HIGH",
        "status": "DRAFT",
        "verificationMethod": "RULE",
        "compliance": "PASS",
        "margin": pytest.approx(150000 - wet["number"] * 1000, rel=1e-9),
        "version": 1,
        "parent": {"key": "REQ-SYS-001"},
        "rule": {"operator": "LE", "threshold": 150000.0, "thresholdHigh": None, "unit": "g"},
        "parameter": {"symbol": "m_wet"},
    }

    # Typed errors; nothing is created.
    x = {**inp, "key": "REQ-X-1"}
    await api.err(REQ_CREATE, {**inp, "key": "REQ-MASS-001"}, "DUPLICATE", "key")
    await api.err(REQ_CREATE, {**x, "rule": {**rule, "unit": "m/s"}}, "UNIT_MISMATCH", "rule.unit")
    await api.err(
        REQ_CREATE, {**x, "rule": {**rule, "unit": "furlongz"}}, "UNKNOWN_UNIT", "rule.unit"
    )
    between = {**x, "rule": {**rule, "operator": "BETWEEN"}}
    await api.err(REQ_CREATE, between, "VALIDATION_ERROR", "rule.thresholdHigh")
    mistyped = {**x, "rule": {**rule, "parameterId": parent["id"]}}
    await api.err(REQ_CREATE, mistyped, "NOT_FOUND", "rule.parameterId")
    # A numeric operator on a text parameter.
    text = {"projectId": dp.pid, "symbol": "bat_chem", "name": "Chemistry", "valueKind": "TEXT"}
    await api.ok(PARAM_CREATE, {**text, "text": "Li-ion"})
    on_text = {"parameterSymbol": "bat_chem", "operator": "GE", "threshold": 1}
    await api.err(REQ_CREATE, {**x, "rule": on_text}, "VALIDATION_ERROR", "rule.operator")
    assert await dp.requirement("REQ-X-1") is None

    tighter = {"id": req["id"], "expectedVersion": 1, "rule": {**rule, "threshold": 100000}}
    r = (await api.ok(REQ_UPDATE, tighter))["requirement"]
    assert (r["compliance"], r["version"]) == ("FAIL", 2)
    assert r["margin"] == pytest.approx(100000 - wet["number"] * 1000, rel=1e-9)
    before = await dp.requirement("REQ-MASS-002")
    on_text = {**on_text, "operator": "LT"}
    await api.err(
        REQ_UPDATE, {"id": req["id"], "rule": on_text}, "VALIDATION_ERROR", "rule.operator"
    )
    stale = {"id": req["id"], "expectedVersion": 1, "title": "x"}
    await api.err(REQ_UPDATE, stale, "VERSION_CONFLICT", "expectedVersion")
    cycle = {"id": parent["id"], "parentId": req["id"]}
    await api.err(REQ_UPDATE, cycle, "CYCLE_DETECTED", "parentId")
    assert await dp.requirement("REQ-MASS-002") == before
    no_rule = {"id": req["id"], "rule": None, "verificationMethod": "TEST", "title": "Mass limit"}
    r = (await api.ok(REQ_UPDATE, no_rule))["requirement"]
    assert (r["rule"], r["compliance"], r["margin"], r["verificationMethod"]) == (
        None,
        "UNKNOWN",
        None,
        "TEST",
    )
    assert (r["title"], r["version"]) == ("Mass limit", 3)

    await api.err(REQ_DELETE, {"id": parent["id"]}, "HAS_DEPENDENTS", "id")
    r = await api.ok(REQ_DELETE, {"id": req["id"], "expectedVersion": 3})
    assert (r["deletedId"], r["requirement"]) == (req["id"], {"key": "REQ-MASS-002"})
    assert await dp.requirement("REQ-MASS-002") is None


LINK = "traceLink { id kind suspect suspectReason target { __typename } }"
LINK_CREATE = Op("traceLinkCreate", "TraceLinkSuccess", LINK)
LINK_CLEAR = Op("traceLinkSuspectClear", "TraceLinkSuccess", LINK, "TraceLinkInput")
LINK_DELETE = Op(
    "traceLinkDelete", "TraceLinkDeleteSuccess", "deletedId requirement { key }", "TraceLinkInput"
)


async def test_trace_links_and_suspect_clear(dp: DemoProject) -> None:
    api = dp.api
    req, load = await dp.requirement("REQ-PWR-001"), await dp.parameter("P_load")
    inp = {"requirementId": req["id"], "kind": "VERIFIED_BY", "targetId": load["id"]}
    link = (await api.ok(LINK_CREATE, inp))["traceLink"]
    assert link == {
        "id": link["id"],
        "kind": "VERIFIED_BY",
        "suspect": False,
        "suspectReason": None,
        "target": {"__typename": "Parameter"},
    }
    await api.err(LINK_CREATE, inp, "DUPLICATE", "targetId")
    # A Component id for a kind that targets parameters reads as missing.
    sat = await dp.component("SAT")
    await api.err(LINK_CREATE, {**inp, "targetId": sat["id"]}, "NOT_FOUND", "targetId")
    self_link = {"requirementId": req["id"], "kind": "REFINES", "targetId": req["id"]}
    await api.err(LINK_CREATE, self_link, "VALIDATION_ERROR", "targetId")
    links = (await dp.requirement("REQ-PWR-001"))["links"]
    assert len(links) == len(req["links"]) + 1 and not any(x["suspect"] for x in links)

    # Editing the statement marks the requirement's links suspect...
    await api.ok(REQ_UPDATE, {"id": req["id"], "text": "Positive margin, EOL, worst case."})
    links = {x["id"]: x for x in (await dp.requirement("REQ-PWR-001"))["links"]}
    assert all(x["suspect"] for x in links.values())
    assert "text" in links[link["id"]]["suspectReason"]
    # ...and the review clears exactly the one link.
    r = (await api.ok(LINK_CLEAR, {"id": link["id"]}))["traceLink"]
    assert (r["suspect"], r["suspectReason"]) == (False, None)
    links = {x["id"]: x for x in (await dp.requirement("REQ-PWR-001"))["links"]}
    assert [i for i, x in links.items() if not x["suspect"]] == [link["id"]]
    await api.err(LINK_CLEAR, {"id": req["id"]}, "NOT_FOUND", "id")

    r = await api.ok(LINK_DELETE, {"id": link["id"]})
    assert (r["deletedId"], r["requirement"]) == (link["id"], {"key": "REQ-PWR-001"})
    links = {x["id"]: x for x in (await dp.requirement("REQ-PWR-001"))["links"]}
    assert link["id"] not in links and len(links) == len(req["links"])
    await api.err(LINK_DELETE, {"id": link["id"]}, "NOT_FOUND", "id")


# --------------------------------------------------------------------------- comments

COMMENT = "comment { id body targetId parent { id } author { email } }"
COMMENT_ADD = Op("commentAdd", "CommentSuccess", COMMENT)
COMMENT_EDIT = Op("commentEdit", "CommentSuccess", COMMENT)
COMMENT_DELETE = Op("commentDelete", "CommentDeleteSuccess", "deletedId comment { body }")
COMMENTS = "comments { totalCount edges { node { id body } } }"


async def test_comments(dp: DemoProject, factory: Factory, sessionmaker: Any) -> None:
    api = dp.api
    other = await factory.account(org=dp.org)
    await dp.add_member(sessionmaker, other, "editor")
    as_other = api.as_(other.token)
    req = await dp.requirement("REQ-MASS-001")
    first = (await api.ok(COMMENT_ADD, {"targetId": req["id"], "body": "Check it."}))["comment"]
    assert (first["body"], first["targetId"], first["parent"]) == ("Check it.", req["id"], None)
    reply = {"targetId": req["id"], "body": "Done.", "parentId": first["id"]}
    reply = (await as_other.ok(COMMENT_ADD, reply))["comment"]
    assert (reply["parent"], reply["author"]) == ({"id": first["id"]}, {"email": other.user.email})
    r = (await api.ok(COMMENT_ADD, {"targetId": dp.pid, "body": "On the project."}))["comment"]
    assert r["targetId"] == dp.pid
    before = await dp.read(COMMENTS)
    assert before["comments"]["totalCount"] == 3

    # Trace links take no comments; unknown types and blank text are refused.
    link_id = req["links"][0]["id"]
    await api.err(COMMENT_ADD, {"targetId": link_id, "body": "x"}, "NOT_FOUND", "targetId")
    nope = gid("Nope", uuid.uuid4())
    await api.err(COMMENT_ADD, {"targetId": nope, "body": "x"}, "NOT_FOUND", "targetId")
    await api.err(COMMENT_ADD, {"targetId": req["id"], "body": " "}, "VALIDATION_ERROR", "body")
    elsewhere = {"targetId": dp.pid, "body": "x", "parentId": first["id"]}
    await api.err(COMMENT_ADD, elsewhere, "VALIDATION_ERROR", "parentId")
    await as_other.err(COMMENT_EDIT, {"id": first["id"], "body": "mine"}, "FORBIDDEN")
    await api.as_(None).err(COMMENT_EDIT, {"id": first["id"], "body": "x"}, "UNAUTHENTICATED")
    await as_other.err(COMMENT_DELETE, {"id": first["id"]}, "FORBIDDEN")
    assert await dp.read(COMMENTS) == before

    r = (await api.ok(COMMENT_EDIT, {"id": first["id"], "body": "Check the margin."}))["comment"]
    assert (r["id"], r["body"]) == (first["id"], "Check the margin.")
    # The owner may delete another's comment.
    r = await api.ok(COMMENT_DELETE, {"id": reply["id"]})
    assert (r["deletedId"], r["comment"]) == (reply["id"], {"body": "Done."})
    after = (await dp.read(COMMENTS))["comments"]
    assert after["totalCount"] == 2
    assert reply["id"] not in {e["node"]["id"] for e in after["edges"]}


# --------------------------------------------------------------------------- revisions

REVISION = "revision { id name description sequence parameterCount requirementCount }"
REVISION_CREATE = Op("revisionCreate", "RevisionCreateSuccess", REVISION)
KIND = "{ added { id key snapshot } removed { id key } changed { key changes { field old new } } }"
DIFF = f"""query($from: ID!, $to: ID) {{ revisionDiff(from: $from, to: $to) {{
  fromRevision {{ name }} toRevision {{ name }} fromSequence toSequence
  parameters {KIND} requirements {KIND} components {KIND} }} }}"""
PARAM_UPDATE = Op("parameterUpdate", "ParameterChangeSuccess", "sequence")


def _changes(kind: dict[str, Any]) -> dict[str, dict[str, tuple[Any, Any]]]:
    return {
        c["key"]: {f["field"]: (f["old"], f["new"]) for f in c["changes"]} for c in kind["changed"]
    }


async def test_revision_create_and_diff(dp: DemoProject) -> None:
    api = dp.api
    rev_b = (
        await api.ok(REVISION_CREATE, {"projectId": dp.pid, "name": "B", "description": "PDR"})
    )["revision"]
    assert (rev_b["name"], rev_b["description"], rev_b["requirementCount"]) == ("B", "PDR", 10)
    assert rev_b["parameterCount"] > 50 and rev_b["sequence"] > 0
    await api.err(REVISION_CREATE, {"projectId": dp.pid, "name": "A"}, "DUPLICATE", "name")
    await api.as_(None).err(REVISION_CREATE, {"projectId": dp.pid, "name": "C"}, "UNAUTHENTICATED")
    assert await dp.count("revisions") == 2  # the demo's A and B

    empty = (await api.read(DIFF, **{"from": rev_b["id"]}))["revisionDiff"]
    for kind in ("parameters", "requirements", "components"):
        assert empty[kind] == {"added": [], "removed": [], "changed": []}
    # Only the revision's own creation event happened since.
    assert empty["toRevision"] is None and empty["toSequence"] == empty["fromSequence"] + 1

    # Edit the payload mass (20 -> 24 kg) and add a component: the diff shows both.
    payload = await dp.parameter("m_payload")
    edit = {"id": payload["id"], "expectedVersion": payload["version"], "number": 24.0}
    await api.ok(PARAM_UPDATE, edit)
    comp = {"projectId": dp.pid, "tag": "PL-CAM-02", "name": "Second imager"}
    comp = (await api.ok(COMPONENT_CREATE, comp))["component"]

    diff = (await api.read(DIFF, **{"from": rev_b["id"]}))["revisionDiff"]
    assert diff["fromRevision"] == {"name": "B"} and diff["toRevision"] is None
    assert diff["toSequence"] > diff["fromSequence"] == rev_b["sequence"]
    params = _changes(diff["parameters"])
    assert set(params) == {"m_payload", "m_dry", "m_prop", "m_wet"}
    assert params["m_payload"]["value"] == (20.0, 24.0)
    assert params["m_payload"]["version"] == (payload["version"], payload["version"] + 1)
    old_wet, new_wet = params["m_wet"]["value"]
    assert new_wet > 130 > old_wet
    assert _changes(diff["requirements"])["REQ-MASS-001"]["compliance"] == ("PASS", "FAIL")
    [added] = diff["components"]["added"]
    assert (added["id"], added["key"], added["snapshot"]["name"]) == (
        comp["id"],
        "PL-CAM-02",
        "Second imager",
    )
    assert diff["components"]["removed"] == [] == diff["parameters"]["added"]

    # Revision to revision gives the same; the other way round reverses it.
    rev_c = (await api.ok(REVISION_CREATE, {"projectId": dp.pid, "name": "C"}))["revision"]
    between = (await api.read(DIFF, **{"from": rev_b["id"], "to": rev_c["id"]}))["revisionDiff"]
    assert between["toRevision"] == {"name": "C"} and _changes(between["parameters"]) == params
    back = (await api.read(DIFF, **{"from": rev_c["id"], "to": rev_b["id"]}))["revisionDiff"]
    assert _changes(back["parameters"])["m_payload"]["value"] == (24.0, 20.0)
    assert [c["key"] for c in back["components"]["removed"]] == ["PL-CAM-02"]

    # Mistyped, foreign or anonymous: null.
    assert (await api.read(DIFF, **{"from": dp.pid}))["revisionDiff"] is None
    assert (await api.read(DIFF, **{"from": rev_b["id"], "to": comp["id"]}))["revisionDiff"] is None
    assert (await api.as_(None).read(DIFF, **{"from": rev_b["id"]}))["revisionDiff"] is None


# --------------------------------------------------------------------------- access


async def test_viewers_strangers_and_anonymous_change_nothing(
    dp: DemoProject, factory: Factory, sessionmaker: Any
) -> None:
    viewer, stranger = await factory.account(org=dp.org), await factory.account()
    await dp.add_member(sessionmaker, viewer, "viewer")
    sat, req = await dp.component("SAT"), await dp.requirement("REQ-MASS-001")
    calls = [
        (COMPONENT_CREATE, {"projectId": dp.pid, "tag": "X-1", "name": "x"}),
        (COMPONENT_UPDATE, {"id": sat["id"], "name": "x"}),
        (TYPE_CREATE, {"projectId": dp.pid, "code": "X", "name": "x"}),
        (REQ_UPDATE, {"id": req["id"], "title": "x"}),
        (LINK_CLEAR, {"id": req["links"][0]["id"]}),
        (COMMENT_ADD, {"targetId": req["id"], "body": "x"}),
        (REVISION_CREATE, {"projectId": dp.pid, "name": "X"}),
        (PROJECT_UPDATE, {"id": dp.pid, "name": "x"}),
    ]
    for op, inp in calls:
        await dp.api.as_(viewer.token).err(op, inp, "FORBIDDEN")
        await dp.api.as_(stranger.token).err(op, inp, "NOT_FOUND")
        await dp.api.as_(None).err(op, inp, "UNAUTHENTICATED")
    assert await dp.component("SAT") == sat
    assert await dp.requirement("REQ-MASS-001") == req
    assert await dp.component("X-1") is None
