"""Hostile input over real HTTP: every payload is refused quickly, clearly, harmlessly.

Each bomb — depth, aliases, fragment cycles and spread explosions, duplicated fields,
token floods, huge and deep variables, invalid UTF-8, bodies that are not JSON, JSON
nested 10,000 levels deep, catastrophic regular expressions, NUL bytes and numbers
beyond 64 bits in every input field — must be answered within a second or two with
an error that says what is wrong (never ``Internal server error.``), the server must
still be healthy afterwards, and nothing of the victim organization may have changed.

The bombs go to an api process of their own: one that hangs is killed and replaced,
so a failure here never takes the shared test server down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.demo.load import load_demo
from tests.apiproc import api_process
from tests.conftest import SECRET, _asyncpg_dsn
from tests.test_cross_tenant import changed_tables, tenant_checksum
from tests.test_read_api import gid

FAST = 2.0  # seconds: the most any refusal may take
HANG = 8.0  # seconds: the client gives up (and the server is replaced)
INTERNAL = "Internal server error."


class Server:
    """A dedicated api process that is replaced when a payload leaves it unhealthy."""

    def __init__(self, db_url: str, redis_url: str) -> None:
        self.db_url, self.redis_url = db_url, redis_url
        self.stack = ExitStack()
        self.url = self.stack.enter_context(api_process(db_url, redis_url, SECRET))

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=FAST).status_code == 200
        except httpx.HTTPError:
            return False

    def replace(self) -> None:
        self.stack.close()
        self.stack = ExitStack()
        self.url = self.stack.enter_context(api_process(self.db_url, self.redis_url, SECRET))

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def server(db_url: str, redis_url: str) -> Iterator[Server]:
    s = Server(db_url, redis_url)
    yield s
    s.close()


@dataclass
class Victim:
    token: str
    project: str  # global id
    org_id: uuid.UUID
    ids: dict[str, str]  # role → global id of one of its objects


@pytest.fixture(scope="module")
async def victim(
    server: Server, sessionmaker: async_sessionmaker[AsyncSession], db_url: str
) -> Victim:
    tag = uuid.uuid4().hex[:8]
    async with sessionmaker() as s:
        demo = await load_demo(
            s, secret_key=SECRET, email=f"hostile-{tag}@example.test", organization=f"H {tag}"
        )
        await s.commit()
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        org = await conn.fetchval(
            "SELECT organization_id FROM projects WHERE id = $1", demo.project_id
        )
        ids = {"project": gid("Project", demo.project_id), "user": gid("User", demo.user_id)}
        for role, table, type_name, where in (
            ("component", "components", "Component", "tag = 'SAT'"),
            ("leaf_component", "components", "Component", "tag = 'EPS-BAT-01'"),
            ("component_type", "component_types", "ComponentType", "true"),
            ("connector", "connectors", "Connector", "true"),
            ("parameter", "parameters", "Parameter", "symbol = 'm_payload'"),
            ("requirement", "requirements", "Requirement", "key = 'REQ-MASS-001'"),
            ("revision", "revisions", "Revision", "true"),
        ):
            row = await conn.fetchval(
                f"SELECT id FROM {table} WHERE project_id = $1 AND {where} LIMIT 1",
                demo.project_id,
            )
            ids[role] = gid(type_name, row)
    finally:
        await conn.close()
    return Victim(demo.token, ids["project"], org, ids)


@dataclass
class Answer:
    status: int
    body: Any
    elapsed: float
    text: str

    @property
    def messages(self) -> list[str]:
        if not isinstance(self.body, dict):
            return []
        return [str(e.get("message")) for e in self.body.get("errors") or []]


class Client:
    def __init__(self, server: Server, victim: Victim) -> None:
        self.server, self.victim = server, victim

    async def post(
        self,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        token: bool = True,
        wait: float = HANG,
    ) -> Answer:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.victim.token}"
        content = raw if raw is not None else json.dumps(payload).encode()
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=self.server.url, timeout=wait) as c:
            try:
                r = await c.post("/graphql", content=content, headers=headers)
            except httpx.TimeoutException:
                pytest.fail(f"no answer within {wait} s (the server is stuck)")
        elapsed = time.perf_counter() - started
        try:
            body = r.json()
        except ValueError:
            body = None
        return Answer(r.status_code, body, elapsed, r.text)

    async def gql(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Answer:
        return await self.post({"query": query, "variables": variables or {}}, **kw)


@pytest.fixture
async def client(server: Server, victim: Victim, db_url: str) -> AsyncIterator[Client]:
    """The bomb thrower; afterwards the server must be healthy and the victim unchanged."""
    before = await tenant_checksum(db_url, victim.org_id)
    yield Client(server, victim)
    healthy = server.healthy()
    if not healthy:
        server.replace()
    assert healthy, "the server is not healthy after the payload (it was replaced)"
    after = await tenant_checksum(db_url, victim.org_id)
    assert after == before, f"the payload changed {changed_tables(before, after)}"


def refused(answer: Answer, *expect: str, status: tuple[int, ...] = (200, 400)) -> None:
    """Refused fast, with a short and clear message containing one of ``expect``."""
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s: {answer.text[:300]}"
    assert answer.status in status, (answer.status, answer.text[:500])
    assert answer.messages, answer.text[:500]
    assert INTERNAL not in answer.messages, answer.text[:500]
    assert all(len(m) < 500 for m in answer.messages), answer.text[:500]
    assert isinstance(answer.body, dict) and answer.body.get("data") is None, answer.text[:500]
    joined = " | ".join(answer.messages)
    assert any(e in joined for e in expect), joined[:500]


# --------------------------------------------------------------------------- documents


async def test_depth_bomb(client: Client) -> None:
    nested = "parent { " * 60 + "id" + " }" * 60
    q = f'query($p: ID!) {{ project(id: $p) {{ component(tag: "SAT") {{ {nested} }} }} }}'
    refused(await client.gql(q, {"p": client.victim.project}), "exceeds maximum operation depth")
    # Deeper than the parser allows: refused while parsing.
    q = "{ " + "viewer { organization { " * 2500 + "id" + " } }" * 2500 + " }"
    refused(await client.gql(q), "nested too deeply", "tokens")


async def test_alias_bomb(client: Client) -> None:
    body = "components(first: 500) { nodes { parameters(first: 500) { nodes { symbol } } } }"
    q = (
        "query($p: ID!) { "
        + " ".join(f"a{i}: project(id: $p) {{ {body} }}" for i in range(200))
        + " }"
    )
    refused(await client.gql(q, {"p": client.victim.project}), "aliases", "tokens")
    q = "{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"
    refused(await client.gql(q), "aliases found")


async def test_fragment_cycles(client: Client) -> None:
    refused(
        await client.gql(
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
        ),
        "Cannot spread fragment",
    )
    refused(
        await client.gql("query { ...A } fragment A on Query { viewer { id } ...A }"),
        "Cannot spread fragment",
    )
    nested = (
        "query($p: ID!) { project(id: $p) { ...P } } "
        "fragment P on Project { components { nodes { ...C } } } "
        "fragment C on Component { children { ...C2 } } "
        "fragment C2 on Component { parent { ...C } }"
    )
    refused(await client.gql(nested, {"p": client.victim.project}), "Cannot spread fragment")


async def test_fragment_spread_explosion(client: Client) -> None:
    """Each fragment spreads the previous one twice: 2^40 paths in 40 short lines.

    Execution merges repeated spreads, so this is cheap to run; a validator or cost
    estimator that walks every path instead never finishes (and blocks its process).
    """
    n = 40
    fragments = ["fragment F0 on Query { viewer { id } }"] + [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, n)
    ]
    answer = await client.gql(f"query {{ ...F{n - 1} }} " + " ".join(fragments))
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s"
    assert INTERNAL not in answer.messages
    # Either refused by a limit or answered (the operation only reads `viewer.id`).
    assert answer.messages or answer.body["data"]["viewer"]["id"], answer.text[:300]


async def test_duplicated_field_bomb(client: Client) -> None:
    """1,200 copies of one field (under the token limit): merging them in validation is
    quadratic, so the document must be answered, or refused with a reason, quickly."""
    answer = await client.gql("{ " + "viewer { id } " * 1200 + "}")
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s: {answer.text[:200]}"
    assert INTERNAL not in answer.messages
    # graphql-core gives up ("Validation aborted.") when its field merging overflows the
    # stack: that says nothing about what is wrong with the document.
    assert "Validation aborted." not in answer.messages, answer.text[:200]
    assert answer.messages or answer.body["data"]["viewer"]["id"]


async def test_token_flood(client: Client) -> None:
    refused(await client.gql("{ " + "__typename " * 6000 + "}"), "more than 5000 tokens")
    directives = "{ viewer " + "@include(if: true) " * 2000 + "{ id } }"
    refused(await client.gql(directives), "more than 5000 tokens", "can only be used once")


# --------------------------------------------------------------------------- variables


async def test_five_megabyte_string_variable(client: Client) -> None:
    answer = await client.gql(
        "query($s: String) { projects(filter: {search: $s}) { totalCount } }",
        {"s": "x" * 5_000_000},
    )
    refused(answer, "exceeds", status=(413,))
    assert answer.body["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_hundred_thousand_element_lists(client: Client) -> None:
    # Short elements, so the body stays under the size limit and reaches GraphQL.
    refused(
        await client.gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a"] * 100_000}
        ),
        "at most 500 ids",
        "GlobalID",
        "Lists in variables are limited",
    )
    answer = await client.gql(
        """mutation($i: ParameterSetValuesInput!) { parameterSetValues(input: $i) {
          __typename ... on UserError { message field } } }""",
        {"i": {"projectId": client.victim.project, "items": [{}] * 100_000}},
    )
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s"
    if answer.body.get("data") is None:
        refused(answer, "Lists in variables are limited")
    else:
        assert answer.body["data"]["parameterSetValues"]["__typename"] == "ValidationError"
    answer = await client.gql(
        'query($p: ID!, $s: [String!]) { project(id: $p) { parameter(symbol: "m_wet") { id } } }',
        {"p": client.victim.project, "s": ["m_wet"] * 100_000},
    )
    refused(answer, "never used", "Lists in variables are limited")
    # And a list too big for the body limit.
    refused(
        await client.gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a"] * 400_000}
        ),
        "exceeds",
        status=(413,),
    )


async def test_huge_search_string_is_cheap(client: Client) -> None:
    """A search filter as long as the body limit allows must not cost seconds of database."""
    q = """query($p: ID!, $s: String) { projects(filter: {search: $s}) { totalCount }
      project(id: $p) { parameters(filter: {search: $s}) { totalCount }
        components(filter: {search: $s}) { totalCount }
        requirements(filter: {search: $s}) { totalCount } } }"""
    answer = await client.gql(q, {"p": client.victim.project, "s": "%_" * 450_000})
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s"
    assert INTERNAL not in answer.messages, answer.text[:300]
    assert all(len(m) < 500 for m in answer.messages), answer.text[:300]


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": "{ viewer { id } }", "variables": {"x": "\xff\xfe"}}',
        b'{"query": "{ viewer { id \xc3\x28 } }"}',
        b'{"query": "\xed\xa0\x80"}',  # an encoded surrogate
        b'{"query": "\xc0\xaf"}',  # an overlong encoding
        b"\xef\xbb\xbf\xff",
    ],
    ids=["bad-bytes", "truncated-sequence", "surrogate", "overlong", "bom-garbage"],
)
async def test_invalid_utf8_body(client: Client, raw: bytes) -> None:
    refused(await client.post(raw=raw), "not valid JSON")


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "expect"),
    [
        (b"hello there", "application/json", 400, "not valid JSON"),
        (b'{"query": "{ viewer { id } }"', "application/json", 400, "not valid JSON"),
        (b'[{"query": "{ viewer { id } }"}]', "application/json", 400, "batching"),
        (b"null", "application/json", 400, "JSON object"),
        (b'"{ viewer { id } }"', "application/json", 400, "JSON object"),
        (b'{"query": 42}', "application/json", 400, "must be a string"),
        (b'{"query": "{ viewer { id } }", "variables": [1]}', "application/json", 400, "variables"),
        (b"", "application/json", 400, "empty"),
        (
            b"query=%7B+viewer+%7B+id+%7D+%7D",
            "application/x-www-form-urlencoded",
            415,
            "Content-Type",
        ),
        (b"<query/>", "text/xml", 415, "Content-Type"),
        (
            '{"query": "{ viewer { id } }"}'.encode("utf-16"),
            "application/json; charset=utf-16",
            415,
            "charset",
        ),
    ],
    ids=[
        "text",
        "truncated",
        "batch",
        "null",
        "string",
        "query-not-string",
        "variables-not-object",
        "empty",
        "form",
        "xml",
        "utf-16",
    ],
)
async def test_bodies_that_are_not_graphql_requests(
    client: Client, raw: bytes, content_type: str, status: int, expect: str
) -> None:
    refused(await client.post(raw=raw, content_type=content_type), expect, status=(status,))


# --------------------------------------------------------------------------- deep JSON


def _body(query: str, variables: str) -> bytes:
    """A request body with ``variables`` spliced in as raw JSON text."""
    return ('{"query": ' + json.dumps(query) + ', "variables": ' + variables + "}").encode()


def _nested(levels: int, key: str = "a") -> str:
    return f'{{"{key}": ' * levels + "1" + "}" * levels


CREATE = """mutation($i: ComponentCreateInput!) { componentCreate(input: $i) { __typename
  ... on UserError { message field } } }"""


async def test_ten_thousand_levels_of_json(client: Client) -> None:
    deep = _nested(10_000)
    # As a component's `properties` in the variables.
    inp = json.dumps({"projectId": client.victim.project, "tag": "DEEP", "name": "d"})
    raw = _body(CREATE, '{"i": ' + inp[:-1] + ', "properties": ' + deep + "}}")
    refused(await client.post(raw=raw), "not valid JSON", "too deep", "nest")
    # As a variable of its own, an object and a list.
    raw = _body("query($j: JSON) { __typename }", '{"j": ' + deep + "}")
    refused(await client.post(raw=raw), "not valid JSON", "too deep", "nest")
    raw = _body("{ __typename }", '{"j": ' + "[" * 10_000 + "]" * 10_000 + "}")
    refused(await client.post(raw=raw), "not valid JSON", "too deep", "nest")
    # As a GraphQL literal in the document.
    literal = "{a: " * 10_000 + "1" + "}" * 10_000
    q = (
        f'mutation {{ componentCreate(input: {{projectId: "{client.victim.project}", tag: "DEEP",'
        f' name: "d", properties: {literal}}}) {{ __typename }} }}'
    )
    refused(await client.gql(q), "nested too deeply", "tokens")


@pytest.mark.parametrize(
    ("mutation", "input_type", "field", "base"),
    [
        ("componentCreate", "ComponentCreateInput", "properties", {"tag": "DEEP", "name": "d"}),
        ("componentCreate", "ComponentCreateInput", "graphics", {"tag": "DEEP", "name": "d"}),
        (
            "componentTypeCreate",
            "ComponentTypeCreateInput",
            "propertySchema",
            {"code": "DEEP", "name": "d"},
        ),
        ("connectorUpdate", "ConnectorUpdateInput", "properties", {}),
        ("componentUpdate", "ComponentUpdateInput", "properties", {}),
    ],
)
async def test_json_inputs_nested_as_deep_as_the_parser_allows(
    client: Client, mutation: str, input_type: str, field: str, base: dict[str, Any]
) -> None:
    """1,000 levels still parse as JSON: the server's own limit must refuse them."""
    victim = client.victim
    target = {
        "componentCreate": {"projectId": victim.project},
        "componentTypeCreate": {"projectId": victim.project},
        "connectorUpdate": {"id": victim.ids["connector"]},
        "componentUpdate": {"id": victim.ids["leaf_component"]},
    }[mutation]
    inp = json.dumps({**target, **base})[:-1] + f', "{field}": {_nested(1000)}}}'
    query = (
        f"mutation($i: {input_type}!) {{ {mutation}(input: $i) {{ __typename"
        " ... on UserError { message field } } }"
    )
    raw = _body(query, '{"i": ' + inp + "}")
    answer = await client.post(raw=raw)
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s"
    result = answer.body["data"][mutation]
    assert result["__typename"] == "ValidationError", result
    assert result["field"].startswith(field) and len(result["message"]) < 500, result


# --------------------------------------------------------------------------- values


async def test_catastrophic_regex_in_a_property_schema(client: Client, db_url: str) -> None:
    """An editor may define a type whose schema has a backtracking-prone `pattern`;
    validating a component against it must still be bounded (or the pattern refused)."""
    code = f"REDOS{uuid.uuid4().hex[:6].upper()}"
    created = await client.gql(
        """mutation($i: ComponentTypeCreateInput!) { componentTypeCreate(input: $i) {
          __typename ... on ComponentTypeCreateSuccess { componentType { id } }
          ... on UserError { message field } } }""",
        {
            "i": {
                "projectId": client.victim.project,
                "code": code,
                "name": "Backtracking",
                "propertySchema": {
                    "type": "object",
                    "properties": {"serial": {"type": "string", "pattern": "^(a+)+$"}},
                },
            }
        },
    )
    result = created.body["data"]["componentTypeCreate"]
    if result["__typename"] != "ComponentTypeCreateSuccess":
        assert result["__typename"] == "ValidationError", result  # refusing it is fine
        return
    # The type was a legitimate write; only the bomb below must change nothing.
    before = await tenant_checksum(db_url, client.victim.org_id)
    answer = await client.gql(
        CREATE,
        {
            "i": {
                "projectId": client.victim.project,
                "tag": "REDOS-1",
                "name": "bomb",
                "typeId": result["componentType"]["id"],
                "properties": {"serial": "a" * 40 + "!"},
            }
        },
    )
    assert answer.elapsed < FAST, f"took {answer.elapsed:.2f} s"
    assert answer.body["data"]["componentCreate"]["__typename"] == "ValidationError"
    assert await tenant_checksum(db_url, client.victim.org_id) == before


# Values that pass GraphQL's type checks and reach the domain and the database.
EDGES: dict[str, dict[str, Any]] = {
    "string": {"NUL": "a\x00b", "bidi override": "\u202eevil", "100k chars": "x" * 100_000},
    "number": {"1e20": 1e20, "2**64": 2.0**64, "max float": 1.7976931348623157e308},
    "json": {
        "NUL key": {"a\x00": 1},
        "NUL value": {"serial": "x\x00"},
        "int 10**30": {"big": 10**30},
        "float 1e300": {"big": 1e300},
    },
}


def _edge_cases(victim: Victim) -> list[tuple[str, str, dict[str, Any], dict[str, str]]]:
    """(mutation, input type, a valid input, {field: kind of edge values to put in it})."""
    u = uuid.uuid4().hex[:6]
    project = victim.project
    return [
        ("parameterCreate", "ParameterCreateInput",
         {"projectId": project, "symbol": f"edge_{u}", "name": "Edge", "unit": "Hz"},
         {"number": "number", "uncertainty": "number", "name": "string",
          "description": "string", "unit": "string", "formula": "string", "symbol": "string"}),
        ("parameterCreate", "ParameterCreateInput",
         {"projectId": project, "symbol": f"edge_t_{u}", "name": "Edge", "valueKind": "TEXT",
          "text": "x"}, {"text": "string"}),
        ("parameterUpdate", "ParameterUpdateInput", {"id": victim.ids["parameter"]},
         {"number": "number", "uncertainty": "number", "unit": "string", "formula": "string",
          "name": "string", "description": "string"}),
        ("parameterSetValues", "ParameterSetValuesInput", {"projectId": project},
         {"items.number": "number", "items.symbol": "string", "items.unit": "string"}),
        ("componentCreate", "ComponentCreateInput",
         {"projectId": project, "tag": f"EDGE-{u}", "name": "Edge"},
         {"properties": "json", "graphics": "json", "name": "string", "description": "string",
          "tag": "string"}),
        ("componentUpdate", "ComponentUpdateInput", {"id": victim.ids["leaf_component"]},
         {"properties": "json", "graphics": "json", "name": "string"}),
        ("componentTypeCreate", "ComponentTypeCreateInput",
         {"projectId": project, "code": f"EDGE{u.upper()}", "name": "Edge"},
         {"propertySchema": "json", "name": "string", "code": "string"}),
        ("connectorUpdate", "ConnectorUpdateInput", {"id": victim.ids["connector"]},
         {"properties": "json", "name": "string"}),
        ("requirementCreate", "RequirementCreateInput",
         {"projectId": project, "key": f"REQ-EDGE-{u}", "title": "Edge"},
         {"title": "string", "text": "string", "key": "string"}),
        ("commentAdd", "CommentAddInput", {"targetId": project, "body": "x"}, {"body": "string"}),
        ("projectUpdate", "ProjectUpdateInput", {"id": project},
         {"name": "string", "description": "string"}),
        ("revisionCreate", "RevisionCreateInput", {"projectId": project, "name": f"E{u}"},
         {"name": "string", "description": "string"}),
        ("apiTokenCreate", "ApiTokenCreateInput", {"name": "edge"}, {"name": "string"}),
        ("login", "LoginInput", {"email": "nobody@example.test", "password": "x" * 12},
         {"email": "string", "password": "string"}),
    ]  # fmt: skip


READS_WITH_A_STRING = [
    "query($p: ID!, $v: String) { project(id: $p) { parameters(filter: {search: $v}) {"
    " totalCount } } }",
    "query($p: ID!, $v: String) { project(id: $p) { components(filter: {search: $v}) {"
    " totalCount } } }",
    "query($p: ID!, $v: String) { project(id: $p) { requirements(filter: {search: $v}) {"
    " totalCount } } }",
    "query($p: ID!, $v: String!) { project(id: $p) { parameter(symbol: $v) { id } } }",
    "query($p: ID!, $v: String!) { project(id: $p) { requirement(key: $v) { id } } }",
    "query($p: ID!, $v: String!) { project(id: $p) { component(tag: $v) { id } } }",
    'query($p: ID!, $v: String) { project(id: $p) { parameter(symbol: "m_wet") {'
    " value(unit: $v) { __typename } } } }",
    "query($p: ID!, $v: String) { project(id: $p) { auditLog(filter: {action: $v}) {"
    " totalCount } } }",
    "query($p: ID!, $v: String) { project(id: $p) { components(after: $v) { totalCount } } }",
    "query($v: String) { projects(filter: {search: $v}) { totalCount } }",
]


async def test_edge_values_in_every_input_field(
    server: Server, victim: Victim, redis_url: str
) -> None:
    """NUL bytes, numbers beyond 64 bits, huge strings… in each field of the writing
    mutations and in the string arguments of reads: a typed error or success, quickly,
    never an internal error."""
    c = Client(server, victim)
    failures: list[str] = []

    def check(what: str, answer: Answer) -> None:
        if answer.status >= 500 or INTERNAL in answer.messages or answer.elapsed > FAST:
            failures.append(
                f"{what}: {answer.status} in {answer.elapsed:.1f} s {answer.text[:160]}"
            )
        # A typed error explains the input; it must not echo 100,000 characters of it.
        data = answer.body.get("data") if isinstance(answer.body, dict) else None
        for result in (data or {}).values():
            message = result.get("message") if isinstance(result, dict) else None
            if isinstance(message, str) and len(message) > 1000:
                failures.append(f"{what}: a {len(message):,}-character message {message[:80]!r}…")

    for mutation, input_type, base, fields in _edge_cases(victim):
        for field, kind in fields.items():
            for name, value in EDGES[kind].items():
                inp = dict(base)
                if mutation == "parameterUpdate":
                    inp["expectedVersion"] = await _version(c, victim)
                if field.startswith("items."):
                    item: dict[str, Any] = {"symbol": "m_payload", "number": 21.0}
                    item[field.split(".")[1]] = value
                    inp["items"] = [item]
                else:
                    inp[field] = value
                answer = await c.gql(
                    f"mutation($i: {input_type}!) {{ {mutation}(input: $i) {{ __typename"
                    " ... on UserError { code message field } } }",
                    {"i": inp},
                )
                check(f"{mutation}.{field} = {name}", answer)
    for query in READS_WITH_A_STRING:
        for name, value in EDGES["string"].items():
            check(
                f"{query[:60]}… $v = {name}", await c.gql(query, {"p": victim.project, "v": value})
            )
    _forget_failed_logins(redis_url)
    assert server.healthy()
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


async def _version(c: Client, victim: Victim) -> int:
    answer = await c.gql(
        'query($p: ID!) { project(id: $p) { parameter(symbol: "m_payload") { version } } }',
        {"p": victim.project},
    )
    return int(answer.body["data"]["project"]["parameter"]["version"])


def _forget_failed_logins(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter("threadline:login:*"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


async def test_login_storm_does_not_stall_other_requests(
    server: Server, victim: Victim, redis_url: str
) -> None:
    """Password hashing is deliberately slow (argon2: tens of ms of CPU per attempt); 20
    failed logins at once must not hold up everyone else's requests."""
    c = Client(server, victim)
    login = (
        'mutation($e: String!) { login(input: {email: $e, password: "wrong-password"}) {'
        " __typename } }"
    )

    async def storm() -> None:
        await asyncio.gather(
            *(
                c.gql(login, {"e": f"storm-{i}@example.test"}, token=False, wait=120)
                for i in range(20)
            )
        )

    async def probe() -> list[float]:
        await asyncio.sleep(0.2)
        latencies = []
        async with httpx.AsyncClient(base_url=server.url, timeout=HANG) as h:
            for _ in range(5):
                t0 = time.perf_counter()
                assert (await h.get("/healthz")).status_code == 200
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
        return latencies

    # The logins only need to be in flight while /healthz is probed (this is the
    # module's last test: what the server still has to hash ends with it).
    logins = asyncio.ensure_future(storm())
    try:
        latencies = await probe()
    finally:
        logins.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await logins
        _forget_failed_logins(redis_url)
    assert max(latencies) < 0.5, f"/healthz took up to {max(latencies):.2f} s during the logins"
