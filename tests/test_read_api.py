"""The read API over real HTTP: traversal, pagination, filters, hiding, limits."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from app.parameters.models import Parameter
from tests.builders import Thread, build_thread
from tests.conftest import Account, Factory, GraphQLCall, LiveServer, count_statements


def gid(type_name: str, id_: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


@pytest.fixture
async def world(factory: Factory, sessionmaker: Any) -> tuple[Account, Thread]:
    owner = await factory.account()
    project = await factory.project(owner, name="Read API")
    thread = await build_thread(sessionmaker, project.id, components=3)
    return owner, thread


PROJECT = """
query($id: ID!) { project(id: $id) { name viewerRole
  component(tag: "C-001") {
    tag path ancestors { tag } parent { tag } children { tag }
    type { code ports { name kind direction } }
    properties graphics
    parameters(first: 10) { totalCount nodes { symbol } }
    connectors(direction: BOTH) {
      kind source { port component { tag } } target { port component { tag } } }
    requirements { key }
  }
  parameter(symbol: "p_1_0") {
    symbol isDerived unit number
    grams: value(unit: "g") { __typename ... on Quantity { value unit } }
    bad: value(unit: "furlongz") { __typename ... on UserError { code field message } }
    wrong: value(unit: "m") { __typename ... on UserError { code message } }
    dependents { symbol formula isDerived dependencies { symbol } }
    impact { parameters { depth parameter { symbol } } requirements { key compliance } }
    history(first: 5) { totalCount nodes { version cause unit number } }
    component { tag }
  }
  requirement(key: "REQ-001") {
    key compliance margin rule { operator threshold unit }
    parameter { symbol component { tag } }
    links { kind suspect target { __typename ... on Component { tag } } }
    children { key } parent { key } suspect
  }
} }
"""


async def test_thread_traversal(world: tuple[Account, Thread], graphql: GraphQLCall) -> None:
    owner, thread = world
    data = (
        await graphql(PROJECT, {"id": gid("Project", thread.project_id)}, token=owner.token)
    ).ok()
    p = data["project"]
    assert p["name"] == "Read API" and p["viewerRole"] == "OWNER"
    c = p["component"]
    assert c["tag"] == "C-001" and c["path"] == "SAT/C-001"
    assert c["ancestors"] == [{"tag": "SAT"}] and c["parent"] == {"tag": "SAT"}
    assert c["children"] == []
    assert c["type"] == {
        "code": "UNIT",
        "ports": [
            {"name": "in", "kind": "POWER", "direction": "IN"},
            {"name": "out", "kind": "POWER", "direction": "OUT"},
        ],
    }
    assert c["properties"] == {"mass_kg": 1} and c["graphics"] == {"x": 10, "y": 0}
    assert c["parameters"]["totalCount"] == 4
    assert [n["symbol"] for n in c["parameters"]["nodes"]] == ["p_1_0", "p_1_1", "p_1_2", "s_1"]
    assert sorted(
        (k["source"]["component"]["tag"], k["target"]["component"]["tag"]) for k in c["connectors"]
    ) == [("C-000", "C-001"), ("C-001", "C-002")]
    assert c["requirements"] == [{"key": "REQ-001"}]

    prm = p["parameter"]
    assert prm["isDerived"] is False and prm["unit"] == "kg" and prm["number"] == 1.0
    assert prm["grams"] == {"__typename": "Quantity", "value": pytest.approx(1000.0), "unit": "g"}
    assert prm["bad"]["__typename"] == "UnknownUnitError"
    assert prm["bad"]["code"] == "UNKNOWN_UNIT" and prm["bad"]["field"] == "unit"
    assert prm["wrong"]["__typename"] == "UnitMismatchError"
    assert prm["wrong"]["code"] == "UNIT_MISMATCH"
    assert prm["dependents"] == [
        {
            "symbol": "s_1",
            "formula": "p_1_0 + p_1_1",
            "isDerived": True,
            "dependencies": [{"symbol": "p_1_0"}, {"symbol": "p_1_1"}],
        }
    ]
    assert prm["impact"] == {
        "parameters": [{"depth": 1, "parameter": {"symbol": "s_1"}}],
        "requirements": [{"key": "REQ-001", "compliance": "PASS"}],
    }
    assert prm["history"] == {
        "totalCount": 1,
        "nodes": [{"version": 1, "cause": "CREATE", "unit": "kg", "number": 1.0}],
    }
    assert prm["component"] == {"tag": "C-001"}

    r = p["requirement"]
    assert r["compliance"] == "PASS" and r["margin"] == 7.0
    assert r["rule"] == {"operator": "LE", "threshold": 10.0, "unit": "kg"}
    assert r["parameter"] == {"symbol": "s_1", "component": {"tag": "C-001"}}
    assert r["links"] == [
        {
            "kind": "SATISFIED_BY",
            "suspect": False,
            "target": {"__typename": "Component", "tag": "C-001"},
        }
    ]
    assert r["children"] == [] and r["parent"] is None and r["suspect"] is False


async def test_node_and_nodes(world: tuple[Account, Thread], graphql: GraphQLCall) -> None:
    owner, thread = world
    ids = [
        gid("Parameter", thread.param_ids["s_0"]),
        gid("Component", thread.root_id),
        gid("Requirement", thread.requirement_ids["REQ-002"]),
        gid("Parameter", uuid.uuid4()),
        gid("Nonsense", uuid.uuid4()),
    ]
    q = """query($ids: [ID!]!, $one: ID!) {
      nodes(ids: $ids) { __typename id ... on Parameter { symbol } ... on Component { tag }
                         ... on Requirement { key } }
      node(id: $one) { ... on Parameter { symbol } } }"""
    data = (await graphql(q, {"ids": ids, "one": ids[0]}, token=owner.token)).ok()
    assert [n and n["__typename"] for n in data["nodes"]] == [
        "Parameter",
        "Component",
        "Requirement",
        None,
        None,
    ]
    assert data["nodes"][0] == {"__typename": "Parameter", "id": ids[0], "symbol": "s_0"}
    assert data["node"] == {"symbol": "s_0"}


async def test_hidden_objects_read_as_absent(
    world: tuple[Account, Thread], graphql: GraphQLCall, factory: Factory
) -> None:
    _, thread = world
    stranger = await factory.account()  # another organization
    q = """query($p: ID!, $ids: [ID!]!) { project(id: $p) { name }
      nodes(ids: $ids) { id } projects { totalCount nodes { name } } }"""
    ids = [
        gid("Parameter", thread.param_ids["s_0"]),
        gid("Project", thread.project_id),
        gid("Component", thread.root_id),
    ]
    variables = {"p": gid("Project", thread.project_id), "ids": ids}
    for token in (stranger.token, None):
        data = (await graphql(q, variables, token=token)).ok()
        assert data == {
            "project": None,
            "nodes": [None, None, None],
            "projects": {"totalCount": 0, "nodes": []},
        }
    # Same for a missing id: indistinguishable.
    missing = {"p": gid("Project", uuid.uuid4()), "ids": [gid("Parameter", uuid.uuid4())]}
    data = (await graphql(q, missing, token=stranger.token)).ok()
    assert data["project"] is None and data["nodes"] == [None]


async def test_pagination_forward_backward_and_stable_cursors(
    world: tuple[Account, Thread], graphql: GraphQLCall, sessionmaker: Any
) -> None:
    owner, thread = world
    q = """query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      project(id: $id) { parameters(first: $first, after: $after, last: $last, before: $before) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { symbol } } } } }"""
    pid = gid("Project", thread.project_id)
    all_symbols = sorted(thread.param_ids)  # 12 parameters, symbol order
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        conn = (await graphql(q, {"id": pid, "first": 5, "after": after}, token=owner.token)).ok()[
            "project"
        ]["parameters"]
        assert conn["totalCount"] == (12 if pages == 0 else 13)
        seen += [e["node"]["symbol"] for e in conn["edges"]]
        pages += 1
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
        if pages == 1:
            # Insert a row sorting before the cursor: later pages must not shift.
            async with sessionmaker() as s:
                await s.execute(
                    insert(Parameter).values(
                        project_id=thread.project_id,
                        symbol="a_first",
                        name="Inserted",
                        value_number=1.0,
                        unit="kg",
                    )
                )
                await s.commit()
    assert pages == 3 and seen == all_symbols

    all_symbols = sorted([*all_symbols, "a_first"])
    # Backwards from the end.
    last = (await graphql(q, {"id": pid, "last": 4}, token=owner.token)).ok()
    conn = last["project"]["parameters"]
    assert [e["node"]["symbol"] for e in conn["edges"]] == all_symbols[-4:]
    assert conn["pageInfo"]["hasPreviousPage"] is True
    assert conn["pageInfo"]["hasNextPage"] is False
    before = conn["pageInfo"]["startCursor"]
    prev = (await graphql(q, {"id": pid, "last": 4, "before": before}, token=owner.token)).ok()[
        "project"
    ]["parameters"]
    assert [e["node"]["symbol"] for e in prev["edges"]] == all_symbols[-8:-4]
    assert prev["pageInfo"]["hasNextPage"] is True

    # Bad arguments are clear errors.
    resp = await graphql(q, {"id": pid, "first": 501}, token=owner.token)
    assert resp.errors[0]["message"] == "`first` must be between 0 and 500"
    resp = await graphql(q, {"id": pid, "first": 1, "after": "garbage!"}, token=owner.token)
    assert resp.errors[0]["message"] == "invalid cursor"
    resp = await graphql(q, {"id": pid, "first": 1, "last": 1}, token=owner.token)
    assert resp.errors[0]["message"] == "pass `first` or `last`, not both"


async def test_filters(world: tuple[Account, Thread], graphql: GraphQLCall) -> None:
    owner, thread = world
    q = """query($id: ID!, $sub: ID!) { project(id: $id) {
      derived: parameters(filter: {isDerived: true}) { nodes { symbol } }
      search: parameters(filter: {search: "P_2_"}) { nodes { symbol } }
      subtree: parameters(filter: {subtreeOf: $sub}) { totalCount }
      comps: components(filter: {search: "unit 2"}) { nodes { tag } }
      roots: components(filter: {rootsOnly: true}) { nodes { tag } }
      typed: components(filter: {typeCode: "UNIT"}, orderBy: {field: TAG, direction: DESC},
                        first: 2) { nodes { tag } }
      pass: requirements(filter: {compliance: PASS}) { totalCount }
      fail: requirements(filter: {compliance: FAIL}) { totalCount }
      suspect: requirements(filter: {suspect: true}) { totalCount }
      reqsearch: requirements(filter: {search: "req-00"}, orderBy: {field: KEY, direction: DESC})
        { nodes { key } }
      power: connectors(filter: {kind: POWER}) { totalCount }
    } }"""
    data = (
        await graphql(
            q,
            {
                "id": gid("Project", thread.project_id),
                "sub": gid("Component", thread.component_ids[0]),
            },
            token=owner.token,
        )
    ).ok()["project"]
    assert data["derived"]["nodes"] == [{"symbol": "s_0"}, {"symbol": "s_1"}, {"symbol": "s_2"}]
    assert data["search"]["nodes"] == [
        {"symbol": "p_2_0"},
        {"symbol": "p_2_1"},
        {"symbol": "p_2_2"},
    ]
    assert data["subtree"]["totalCount"] == 4
    assert data["comps"]["nodes"] == [{"tag": "C-002"}]
    assert data["roots"]["nodes"] == [{"tag": "SAT"}]
    assert data["typed"]["nodes"] == [{"tag": "SAT"}, {"tag": "C-002"}]
    assert (data["pass"]["totalCount"], data["fail"]["totalCount"]) == (3, 0)
    assert data["suspect"]["totalCount"] == 0
    assert data["reqsearch"]["nodes"] == [
        {"key": "REQ-002"},
        {"key": "REQ-001"},
        {"key": "REQ-000"},
    ]
    assert data["power"]["totalCount"] == 2


NESTED = """query($id: ID!) { project(id: $id) {
  components(first: 500) { nodes { tag type { code } parent { tag }
    parameters(first: 50) { totalCount nodes { symbol number
      dependents { symbol } requirements { key } } } } }
  requirements(first: 500) { nodes { key compliance parameter { symbol component { tag } } } }
} }"""


async def test_nested_query_runs_constant_number_of_statements(
    factory: Factory, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    counts = {}
    for n in (20, 200):
        owner = await factory.account()
        project = await factory.project(owner)
        await build_thread(sessionmaker, project.id, components=n, params_per_component=19)
        with count_statements(live_server) as statements:
            data = (
                await graphql(NESTED, {"id": gid("Project", project.id)}, token=owner.token)
            ).ok()
        comps = data["project"]["components"]["nodes"]
        assert len(comps) == n + 1
        assert sum(len(c["parameters"]["nodes"]) for c in comps) == n * 20
        assert len(data["project"]["requirements"]["nodes"]) == n
        counts[n] = len(statements)
    print(f"SQL statements per nested query: {counts}")
    # 200 components x 20 parameters = 4,000 parameter nodes, same statements as 400.
    assert counts[20] == counts[200], counts
    assert counts[200] <= 14, counts


async def test_masked_unexpected_error(
    world: tuple[Account, Thread], graphql: GraphQLCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, thread = world
    import app.components.schema as components_schema

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("SELECT secret FROM users -- /srv/app/secret.py line 42")

    # Fault injection: an unexpected failure inside a resolver.
    monkeypatch.setattr(components_schema, "component_by_tag", broken)
    resp = await graphql(
        'query($id: ID!) { project(id: $id) { name component(tag: "X") { tag } } }',
        {"id": gid("Project", thread.project_id)},
        token=owner.token,
    )
    assert resp.status == 200
    assert resp.data == {"project": {"name": "Read API", "component": None}}
    assert resp.errors == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 1, "column": 43}],
            "path": ["project", "component"],
        }
    ]
    assert "SELECT" not in str(resp.body) and "secret" not in str(resp.body)


async def test_get_queries_and_refused_get_mutations(http: httpx.AsyncClient) -> None:
    r = await http.get(
        "/graphql",
        params={"query": "{ viewer { email } }"},
        headers={"Accept": "application/graphql-response+json"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/graphql-response+json")
    assert r.json() == {"data": {"viewer": None}}
    r = await http.get(
        "/graphql",
        params={
            "query": 'mutation { login(input: {email: "a@b.c", password: "x"}) { __typename } }'
        },
        headers={"Accept": "application/graphql-response+json"},
    )
    assert r.status_code == 405


async def test_depth_and_token_bombs_rejected_before_execution(
    world: tuple[Account, Thread], graphql: GraphQLCall, live_server: LiveServer
) -> None:
    owner, thread = world
    chain = "dependents { " * 14 + "symbol" + " }" * 14
    bomb = (
        "query Bomb($id: ID!) { project(id: $id) { components { nodes { parameters { nodes { "
        + chain
        + " } } } } } }"
    )
    with count_statements(live_server) as statements:
        resp = await graphql(bomb, {"id": gid("Project", thread.project_id)}, token=owner.token)
    assert resp.data is None
    assert resp.errors[0]["message"] == "'Bomb' exceeds maximum operation depth of 15"
    # Rejected before any resolver ran: only the bearer-token lookup touched the database.
    assert len(statements) == 1 and "FROM api_tokens" in statements[0]
    fields = " ".join(f"f{i}: __typename" for i in range(3000))
    resp = await graphql("{ " + fields + " }", token=owner.token)
    assert resp.data is None
    assert "token" in resp.errors[0]["message"].lower()
