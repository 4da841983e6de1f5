"""Fuzzing the GraphQL endpoint over real HTTP: schemathesis plus hypothesis.

* schemathesis loads the schema by introspection from the live server and generates
  operations for every Query and Mutation field, in positive mode (valid documents,
  random argument values; `ID` drawn from the demo project's real global ids, so
  mutations reach real objects) and negative mode (arguments of the wrong type,
  missing required ones, unknown enum values…), authenticated with a demo token.
* hypothesis adds what schemathesis does not send: valid documents with *variables*
  of the wrong shape, and random documents and request bodies.

Every response must be below 500, JSON, and each error in it either a deliberate one
(an ``extensions.code`` the server set) or a GraphQL request error with a message this
file knows (parse, validation, coercion, limits). ``Internal server error.`` — what
the server answers for an unexpected exception — fails the run, as does any text that
looks like a stack trace or a database error.
"""

from __future__ import annotations

import re
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import graphql
import httpx
import pytest
import redis
import requests
import schemathesis
from graphql import get_named_type, is_leaf_type
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection, response_schema_conformance
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.demo.load import load_demo
from tests.apiproc import api_process
from tests.conftest import SECRET, _asyncpg_dsn
from tests.test_read_api import gid

INTERNAL = "Internal server error."
# What graphql-core and strawberry answer for documents and variables they refuse.
KNOWN_REQUEST_ERRORS = [
    re.compile(p)
    for p in (
        r"^Syntax Error: ",
        r"^Cannot query field '\w+' on type '\w+'\.",
        r"^Unknown (argument|type|fragment|directive|operation named) ",
        r"^Argument '[\w.]+\(\w+:\)' of type '[^']+' is required, but it was not provided\.$",
        r"^Argument '[\w.]+\(\w+:\)' has invalid value",
        r"^Expected value of (non-null )?type '[^']+'",
        r"^Expected type '[^']+'",
        r"^(Int|Float|String|Boolean|ID) cannot represent ",
        r"^Value '.*' does not exist in '\w+' enum\.",
        r"^Enum '\w+' cannot represent ",
        r"^Variable '\$\w+' ",
        r"^Field '\w+' is not defined by type '\w+'\.",
        r"^Field '\w+' (of type '[^']+' )?must (not )?have a selection",
        r"^Fields '\w+' conflict because ",
        r"^There can be only one ",
        r"^The directive '@\w+' can only be used once",
        r"^Directive '@\w+' may not be used on ",
        r"^Fragment '\w+' ",
        r"^Cannot spread fragment '\w+' ",
        r"^This anonymous operation must be the only defined operation\.$",
        r"^Must provide operation name if query contains multiple operations\.$",
        r"^Anonymous Subscription must select only one top level field\.$",
        r"^'\w+' exceeds maximum operation depth of \d+$",
        r"^\d+ aliases found\. Allowed: \d+$",
        r"^Validation aborted\.$",
        r"^Too many validation errors",
        r"^Value cannot represent a GlobalID: ",
        r"^Subscriptions are served over WebSocket",
        r"^Mutations are not allowed over GET",
    )
]
# Text that must never reach a client.
SUSPICIOUS = (
    INTERNAL,
    "Traceback",
    'File "',
    "site-packages",
    "asyncpg",
    "sqlalchemy",
    "SQLAlchemy",
    "psycopg",
    "SQLSTATE",
    "(Background on this error",
    "RecursionError",
    "KeyError",
    "AttributeError",
    "TypeError",
    "ZeroDivisionError",
    "object has no attribute",
)


@dataclass
class Findings:
    """Every response of a fuzz run, checked; problems are collected, not raised."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # data / null / no data
    slowest: tuple[float, str, str] = (0.0, "", "")

    def check(self, label: str, status: int, text: str, sent: Any) -> None:
        self.requests += 1
        self.statuses[status] += 1
        where = f"{label}: status {status} for {str(sent)[:600]!r}"
        if status >= 500:
            self.problems.append(f"{where} -> {text[:500]}")
            return
        echoed = str(sent)
        for marker in SUSPICIOUS:
            if marker in text and marker not in echoed:  # not merely the input echoed back
                self.problems.append(f"{where} -> leaks {marker!r}: {text[:800]}")
                return
        try:
            body = httpx.Response(200, content=text.encode()).json()
        except ValueError:
            self.problems.append(f"{where} -> not JSON: {text[:300]}")
            return
        if not isinstance(body, dict):
            self.problems.append(f"{where} -> not a JSON object: {text[:300]}")
            return
        data = body.get("data")
        self.outcomes[
            "no data"
            if data is None
            else "data"
            if any(v is not None for v in data.values())
            else "null"
        ] += 1
        for error in body.get("errors") or []:
            message = str(error.get("message"))
            code = (error.get("extensions") or {}).get("code")
            if code is not None:
                continue  # a deliberate error of the server's, with its code
            if not any(p.search(message) for p in KNOWN_REQUEST_ERRORS):
                self.problems.append(f"{where} -> unknown error message {message!r}")

    def assert_clean(self, minimum: int) -> None:
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(
            self.problems[:30]
        )
        assert self.requests >= minimum, (self.requests, self.statuses)


@dataclass
class Target:
    base_url: str
    token: str
    project_id: uuid.UUID
    ids: list[str]


@pytest.fixture(scope="module")
def api_url(db_url: str, redis_url: str) -> Iterator[str]:
    """An api process of its own: generation (here) and serving run in parallel."""
    with api_process(db_url, redis_url, SECRET) as url:
        yield url


@pytest.fixture(scope="module")
async def target(
    api_url: str, sessionmaker: async_sessionmaker[AsyncSession], db_url: str
) -> Target:
    """A fresh demo organization; every global id of its project, for `ID` arguments."""
    tag = uuid.uuid4().hex[:8]
    async with sessionmaker() as s:
        demo = await load_demo(
            s, secret_key=SECRET, email=f"fuzz-{tag}@example.test", organization=f"Fuzz {tag}"
        )
        await s.commit()
    ids = [gid("Project", demo.project_id), gid("User", demo.user_id)]
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        for table, type_name in (
            ("components", "Component"),
            ("component_types", "ComponentType"),
            ("connectors", "Connector"),
            ("parameters", "Parameter"),
            ("requirements", "Requirement"),
            ("trace_links", "TraceLink"),
            ("revisions", "Revision"),
        ):
            rows = await conn.fetch(
                f"SELECT id FROM {table} WHERE project_id = $1 ORDER BY id", demo.project_id
            )
            ids += [gid(type_name, r["id"]) for r in rows]
    finally:
        await conn.close()
    return Target(api_url, demo.token, demo.project_id, ids)


@pytest.fixture
def clear_login_throttle(redis_url: str) -> Iterator[None]:
    """Fuzzed logins fail from 127.0.0.1: forget them, so later tests can sign in."""
    yield
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter("threadline:login:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# Values engineers and attackers actually send: the demo's names, units and formulas,
# control characters, huge and tiny numbers (PostgreSQL and JSON codecs disagree on
# some), injection-looking text.
EDGE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\u202e", "\U0001f4a5", "\ufeff", "\\", "%", "_", "'", '"',
    "' OR 1=1 --", "${jndi:ldap://x}", "<script>", "../../etc/passwd", "x" * 300,
    "NaN", "-Infinity", "1e400", "kg", "g", "km/s", "m/s**2", "dBW", "degC", "furlong",
    "m_payload", "m_dry * 2", "sqrt(m_wet) + dv", "m_wet / 0", "exp(1000)", "10 ** 400",
    "REQ-MASS-001", "SAT", "EPS-BAT-01", "A", "OWNER",
]  # fmt: skip
EDGE_FLOATS = [0.0, -0.0, 1e19, 1e20, -1.5e20, 2.0**64, 1e300, 1.7976931348623157e308, 5e-324]
EDGE_INTS = [0, -1, 1, 2**31 - 1, -(2**31), 499, 500, 501]


def _strings() -> st.SearchStrategy[str]:
    edge = st.sampled_from(EDGE_STRINGS)
    return st.one_of(st.text(max_size=40), edge, edge)


def _floats() -> st.SearchStrategy[float]:
    return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGE_FLOATS))


def _json_data() -> st.SearchStrategy[Any]:
    """Plain JSON data with edge values in it (for `JSON` inputs and variables)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        _floats(),
        _strings(),
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(_strings(), children, max_size=5)
        ),
        max_leaves=20,
    )


JSON_DATA = _json_data()


def _literal(value: Any) -> graphql.ValueNode:
    """A GraphQL literal for JSON data."""
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([_literal(v) for v in value])
    return nodes.Object(
        [
            graphql.ObjectFieldNode(name=graphql.NameNode(value=f"k{i}"), value=_literal(v))
            for i, v in enumerate(value.values())
        ]
    )


def _ids(ids: list[str]) -> st.SearchStrategy[str]:
    """Mostly real global ids (the project most often: creates need it), seldom garbage."""
    real = st.sampled_from(ids)
    return st.one_of(st.just(ids[0]), st.just(ids[0]), real, real, real, real, _strings())


@contextmanager
def custom_scalars(ids: list[str], *, builtins: bool) -> Iterator[None]:
    """Scalars drawn from real ids and edge values instead of uniform noise.

    `JSON` is nested data with edge values in it. With ``builtins`` (positive mode),
    `ID` is mostly a real global id of the demo project (the project itself most
    often, so that creates land), sometimes garbage, and strings, floats and ints mix
    hypothesis' own with the edge values above. Negative mode keeps schemathesis' own
    built-in scalars: those are what it knows how to get wrong.
    """
    saved = dict(CUSTOM_SCALARS)
    schemathesis.graphql.scalar("JSON", _json_data().map(_literal))
    if builtins:
        schemathesis.graphql.scalar("ID", _ids(ids).map(nodes.String))
        schemathesis.graphql.scalar("String", _strings().map(nodes.String))
        schemathesis.graphql.scalar("Float", _floats().map(nodes.Float))
        ints = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(EDGE_INTS))
        schemathesis.graphql.scalar("Int", ints.map(nodes.Int))
    try:
        yield
    finally:
        CUSTOM_SCALARS.clear()
        CUSTOM_SCALARS.update(saved)


# Run last: they delete the project or revoke the token every other operation uses.
DESTRUCTIVE_LAST = ("Mutation.projectDelete", "Mutation.logout")
EXAMPLES_PER_OPERATION = 15
SENDERS = 4
TYPED_VARIABLES = 300
REQUEST_TIMEOUT = 30.0


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=REQUEST_TIMEOUT * 1000,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _generate(operation: Any, mode: GenerationMode) -> list[Any]:
    """Cases schemathesis generates for one operation in one mode (no request yet)."""
    cases: list[Any] = []

    @_settings(EXAMPLES_PER_OPERATION)
    @given(case=operation.as_strategy(generation_mode=mode))
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    return cases


def test_schemathesis_positive_and_negative(target: Target, clear_login_throttle: None) -> None:
    auth = {"Authorization": f"Bearer {target.token}"}
    schema = schemathesis.graphql.from_url(f"{target.base_url}/graphql", headers=auth, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 30
    findings = Findings()
    per_label: Counter[str] = Counter()
    local = threading.local()

    def send(case: Any) -> tuple[Any, requests.Response | str, float]:
        """Only the HTTP exchange runs in the worker threads (schemathesis and hypothesis
        are not thread-safe: everything else stays on the main thread)."""
        if not hasattr(local, "session"):
            local.session = requests.Session()
        # `logout` revokes the token it is sent with: fuzz it anonymously.
        headers = {} if case.operation.label == "Mutation.logout" else auth
        t0 = time.monotonic()
        try:
            response = local.session.post(
                f"{target.base_url}/graphql",
                json={"query": case.body},
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
        except requests.RequestException as exc:
            return case, f"{type(exc).__name__} after {time.monotonic() - t0:.1f} s", 0.0
        return case, response, time.monotonic() - t0

    def judge(future: Future[tuple[Any, requests.Response | str, float]]) -> None:
        case, response, elapsed = future.result()
        label = f"{case.operation.label} ({case.meta.generation.mode.value})"
        per_label[label] += 1
        if isinstance(response, str):
            findings.problems.append(f"{label}: {response} for {case.body[:600]!r}")
            return
        findings.slowest = max(findings.slowest, (elapsed, label, case.body))
        findings.check(label, response.status_code, response.text, case.body)
        try:
            case.validate_response(
                response, checks=[negative_data_rejection, response_schema_conformance]
            )
        except (Exception, BaseExceptionGroup) as exc:
            findings.problems.append(f"{label}: {exc} for {case.body[:600]!r}")

    started = time.monotonic()
    with ThreadPoolExecutor(SENDERS) as pool:
        # The cases of one operation are sent while the next one's are generated;
        # operations that delete the project or revoke the token go last.
        operations.sort(key=lambda op: (op.label in DESTRUCTIVE_LAST, op.label))
        pending: list[Future[tuple[Any, requests.Response | str, float]]] = []
        for operation in operations:
            if operation.label in DESTRUCTIVE_LAST:
                for future in pending:
                    judge(future)
                pending = []
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                with custom_scalars(target.ids, builtins=mode == GenerationMode.POSITIVE):
                    cases = _generate(operation, mode)
                waiting = []
                for future in pending:
                    if future.done():
                        judge(future)
                    else:
                        waiting.append(future)
                pending = waiting + [pool.submit(send, case) for case in cases]
        for future in pending:
            judge(future)
    elapsed = time.monotonic() - started
    print(
        f"schemathesis: {len(operations)} operations, {findings.requests} cases in"
        f" {elapsed:.1f} s, {findings.statuses}"
    )
    print(f"outcomes: {dict(findings.outcomes)}")
    print(f"fewest cases: {sorted(per_label.items(), key=lambda kv: kv[1])[:4]}")
    print(
        f"slowest: {findings.slowest[0]:.2f} s {findings.slowest[1]} {findings.slowest[2][:300]!r}"
    )
    findings.assert_clean(minimum=1000)


# --------------------------------------------------------------------------- hypothesis

VOCABULARY = [
    "{", "}", "(", ")", "[", "]", ":", "...", "$v", "$input", "!", "=", "@skip", "@include",
    "query", "mutation", "subscription", "fragment", "on", "Query", "Mutation", "Project",
    "project", "projects", "node", "nodes", "viewer", "id", "name", "parameter", "value",
    "components", "first", "input", "parameterUpdate", "__typename", "__schema", "__type",
    '"x"', '""""', "1", "-1", "1.5e300", "true", "null", "#", ",", "\\u0000", "\u00e9",
]  # fmt: skip


def _variable_documents(
    schema: graphql.GraphQLSchema,
) -> list[tuple[str, dict[str, graphql.GraphQLInputType]]]:
    """One document per root field, every argument passed as a variable."""
    docs = []
    for keyword, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, fdef in root.fields.items():
            if not fdef.args:
                continue
            decl = ", ".join(f"${a}: {arg.type}" for a, arg in fdef.args.items())
            call = ", ".join(f"{a}: ${a}" for a in fdef.args)
            sel = "" if is_leaf_type(get_named_type(fdef.type)) else " { __typename }"
            types = {a: arg.type for a, arg in fdef.args.items()}
            docs.append((f"{keyword}({decl}) {{ {name}({call}){sel} }}", types))
    return docs


# Plausible values for input fields by name, so that typed mutations get past their
# validation and write (with edge values in the other fields) instead of all failing.
_NAMED: dict[str, st.SearchStrategy[Any]] = {
    "symbol": st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    "tag": st.from_regex(r"[A-Z][A-Z0-9-]{0,12}", fullmatch=True),
    "key": st.from_regex(r"REQ-[A-Z0-9-]{1,10}", fullmatch=True),
    "code": st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True),
    "name": st.text(min_size=1, max_size=30) | st.sampled_from(EDGE_STRINGS),
    "unit": st.sampled_from(["", "kg", "g", "m", "km/s", "W", "dB", "degC", "furlongz", "\x00"]),
    "formula": st.sampled_from(
        [
            "m_payload * 2",
            "m_dry + m_payload",
            "sqrt(m_wet)",
            "m_wet / 0",
            "exp(1000)",
            "1e308 * 10",
        ]
    ),
    "email": st.emails() | _strings(),
    "properties": st.dictionaries(_strings(), JSON_DATA, max_size=4),
    "graphics": st.dictionaries(_strings(), JSON_DATA, max_size=4),
    "expectedVersion": st.integers(1, 3),
}


def _named(name: str, type_: graphql.GraphQLInputType) -> st.SearchStrategy[Any] | None:
    strategy = _NAMED.get(name)
    if strategy is None:
        return None
    return strategy if graphql.is_non_null_type(type_) else st.one_of(st.none(), strategy)


def _typed(
    type_: graphql.GraphQLInputType, ids: list[str], depth: int = 0
) -> st.SearchStrategy[Any]:
    """Variable values of the declared type, with edge values at the leaves."""
    nullable = not graphql.is_non_null_type(type_)
    t = graphql.get_nullable_type(type_)
    inner: st.SearchStrategy[Any]
    if isinstance(t, graphql.GraphQLList):
        inner = st.lists(_typed(t.of_type, ids, depth + 1), max_size=4)
    elif isinstance(t, graphql.GraphQLInputObjectType):
        fields: dict[str, st.SearchStrategy[Any]] = {}
        for n, f in t.fields.items():
            named = _named(n, f.type)
            fields[n] = named if named is not None else _typed(f.type, ids, depth + 1)
        required = {n: v for n, v in fields.items() if graphql.is_required_input_field(t.fields[n])}
        optional = {n: v for n, v in fields.items() if n not in required}
        inner = st.fixed_dictionaries(required, optional=optional if depth < 4 else {})
    elif isinstance(t, graphql.GraphQLEnumType):
        inner = st.sampled_from(sorted(t.values))
    else:
        inner = {
            "ID": _ids(ids),
            "String": _strings(),
            "Float": _floats(),
            "Int": st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from(EDGE_INTS)),
            "Boolean": st.booleans(),
            "DateTime": st.datetimes().map(lambda d: d.isoformat()) | _strings(),
        }.get(t.name, JSON_DATA)
    return st.one_of(st.none(), inner) if nullable else inner


def test_hypothesis_variables_random_documents_and_bodies(
    target: Target, clear_login_throttle: None
) -> None:
    auth = {
        "Authorization": f"Bearer {target.token}",
        "Accept": "application/graphql-response+json",
    }
    findings = Findings()
    with httpx.Client(base_url=target.base_url, timeout=REQUEST_TIMEOUT) as client:
        intro = client.post(
            "/graphql", json={"query": graphql.get_introspection_query()}, headers=auth
        ).json()["data"]
        schema = graphql.build_client_schema(intro)
        documents = _variable_documents(schema)

        @_settings(TYPED_VARIABLES)
        @given(doc=st.sampled_from(documents), data=st.data())
        def typed_variables(
            doc: tuple[str, dict[str, graphql.GraphQLInputType]], data: st.DataObject
        ) -> None:
            query, types = doc
            variables = data.draw(
                st.fixed_dictionaries({n: _typed(t, target.ids) for n, t in types.items()})
            )
            sent = {"query": query, "variables": variables}
            r = client.post("/graphql", json=sent, headers=auth)
            findings.check("typed variables", r.status_code, r.text, sent)

        @_settings(120)
        @given(doc=st.sampled_from(documents), data=st.data())
        def wrong_variables(
            doc: tuple[str, dict[str, graphql.GraphQLInputType]], data: st.DataObject
        ) -> None:
            query, types = doc
            variables = data.draw(
                st.fixed_dictionaries({}, optional={n: JSON_DATA for n in types})
                | st.dictionaries(st.text(max_size=8), JSON_DATA, max_size=3)
            )
            sent = {"query": query, "variables": variables}
            r = client.post("/graphql", json=sent, headers=auth)
            findings.check("wrong variables", r.status_code, r.text, sent)

        @_settings(120)
        @given(
            tokens=st.lists(st.sampled_from(VOCABULARY), max_size=40),
            text=st.text(max_size=60),
            use_text=st.booleans(),
            get=st.booleans(),
        )
        def random_documents(tokens: list[str], text: str, use_text: bool, get: bool) -> None:
            query = text if use_text else " ".join(tokens)
            if get:
                r = client.get("/graphql", params={"query": query}, headers=auth)
            else:
                r = client.post("/graphql", json={"query": query}, headers=auth)
            findings.check("document", r.status_code, r.text, query)

        @_settings(60)
        @given(
            body=st.binary(max_size=200)
            | JSON_DATA.map(lambda v: httpx.Request("POST", "/", json=v).content)
            | st.text(alphabet=string.printable, max_size=100).map(str.encode),
        )
        def random_bodies(body: bytes) -> None:
            r = client.post(
                "/graphql",
                content=body,
                headers={**auth, "Content-Type": "application/json"},
            )
            findings.check("body", r.status_code, r.text, body)

        typed_variables()
        wrong_variables()
        random_documents()
        random_bodies()
        assert client.get("/healthz").status_code == 200
    print(f"hypothesis: {findings.requests} requests, {findings.statuses}")
    findings.assert_clean(minimum=550)
