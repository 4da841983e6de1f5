"""Compiled reads (app.graphql.compiled): same answers as the resolvers, or the resolvers.

Every test runs real HTTP against the real server and PostgreSQL. The reference is
the resolvers' own answer to the same request (compiled reads switched off), so a
compiled plan that differs in a single value, key, order or null fails here.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.graphql import compiled
from app.graphql.readpool import Pin
from tests.conftest import Demo, Factory, GQLResponse, GraphQLCall, LiveServer
from tests.conftest import count_statements as statements
from tests.conftest import resolvers_only_on as resolvers


def gid(type_name: str, id_: uuid.UUID | str) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def is_compiled(statement: str) -> bool:
    return "json_build_object" in statement


async def both(
    graphql: GraphQLCall,
    live_server: LiveServer,
    query: str,
    variables: dict[str, Any],
    token: str,
) -> tuple[GQLResponse, GQLResponse, list[str]]:
    """The resolvers' answer, then the answer once the document is compiled, with the
    statements of that last request."""
    with resolvers(live_server):
        expected = await graphql(query, variables, token=token)
    await graphql(query, variables, token=token)  # a normal run compiles the document
    with statements(live_server) as sql:
        got = await graphql(query, variables, token=token)
    return expected, got, sql


async def demo_ids(sessionmaker: Any, demo: Demo) -> dict[str, uuid.UUID]:
    async with sessionmaker() as s:
        rows = (
            await s.execute(
                text(
                    "SELECT 'p:' || symbol, id FROM parameters WHERE project_id = :p"
                    " UNION ALL SELECT 'c:' || tag, id FROM components WHERE project_id = :p"
                    " UNION ALL SELECT 'r:' || key, id FROM requirements WHERE project_id = :p"
                ),
                {"p": demo.project_id},
            )
        ).all()
    return {k: v for k, v in rows}


# Each: (query, variables builder). Covers every field and relation of the subset.
PARAMETER_FIELDS = (
    "id symbol name description valueKind number boolean text unit uncertainty formula "
    "version isDerived createdAt updatedAt __typename"
)
CORPUS: list[tuple[str, Any]] = [
    (
        "query A($id: ID!) { node(id: $id) { ... on Parameter { id symbol name number unit "
        "formula version component { id tag name } } } }",
        lambda ids, pid: {"id": gid("Parameter", ids["p:m_wet"])},
    ),
    (
        f"query($id: ID!) {{ node(id: $id) {{ __typename id ... on Parameter {{ {PARAMETER_FIELDS}"
        " project { id name description eventSequence createdAt updatedAt __typename }"
        " dependencies { symbol dependencies { symbol number } } dependents { symbol }"
        " requirements { key title compliance margin } } } }",
        lambda ids, pid: {"id": gid("Parameter", ids["p:m_dry"])},
    ),
    (
        "query($id: ID!, $n: Int) { project(id: $id) { __typename name"
        " components(first: $n) { __typename totalCount"
        "   pageInfo { hasNextPage hasPreviousPage startCursor endCursor __typename }"
        "   edges { cursor __typename node { tag parent { tag } children { tag }"
        "     project { name } } }"
        "   nodes { id tag name description version createdAt updatedAt"
        "     parameters(first: 2) { totalCount pageInfo { hasNextPage endCursor }"
        "       nodes { symbol valueKind number unit } } } } } }",
        lambda ids, pid: {"id": gid("Project", pid), "n": 3},
    ),
    (
        "query($id: ID!) { project(id: $id) { requirements(first: 100) { nodes { id key title"
        " text priority status verificationMethod compliance margin version createdAt"
        " updatedAt parent { key } children { key }"
        " parameter { id symbol number unit component { id tag name } } } } } }",
        lambda ids, pid: {"id": gid("Project", pid)},
    ),
    (
        "fragment P on Parameter { symbol number }\n"
        "query Frag($id: ID!, $r: ID!) { first: project(id: $id) { p: parameters(first: 5) {"
        " nodes { ...P s2: symbol } } } second: project(id: $id) { name }"
        " req: node(id: $r) { ... on Requirement { key ... on Node { id } } } __typename }",
        lambda ids, pid: {
            "id": gid("Project", pid),
            "r": gid("Requirement", ids["r:REQ-MASS-001"]),
        },
    ),
    (
        "query($id: ID!) { project(id: $id) { parameters(first: 0) { totalCount"
        " pageInfo { hasNextPage startCursor endCursor } nodes { symbol } } } }",
        lambda ids, pid: {"id": gid("Project", pid)},
    ),
    (
        "query($id: ID!) { node(id: $id) { ... on Component { tag parameters { nodes { symbol }"
        " } children { tag } } } }",
        lambda ids, pid: {"id": gid("Component", ids["c:SAT"])},
    ),
]


@pytest.mark.parametrize("case", range(len(CORPUS)))
async def test_compiled_answers_equal_the_resolvers(
    case: int, demo: Demo, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    query, make_variables = CORPUS[case]
    ids = await demo_ids(sessionmaker, demo)
    variables = make_variables(ids, demo.project_id)
    expected, got, sql = await both(graphql, live_server, query, variables, demo.token)
    assert expected.ok() is not None
    # The reference really holds data (not a vacuous comparison of two nulls).
    assert all(v is not None for v in expected.data.values() if v != "Query"), expected.data
    assert got.status == 200 and got.body == expected.body
    assert got.headers["content-type"] == expected.headers["content-type"]
    assert sum(map(is_compiled, sql)) == 1, sql


async def test_bench_queries_compile(demo: Demo) -> None:
    from pathlib import Path

    from app.graphql.schema import build_schema

    schema = build_schema()._schema
    root = Path(__file__).parent.parent / "bench" / "read_bench" / "queries"
    for name in "abcd":
        document = (root / f"{name}_ours.graphql").read_text()
        plan = compiled.compile_operation(
            schema, document, None, default_page_size=50, max_page_size=500
        )
        assert plan.plan.sql.count("$4") >= 1


async def test_outside_the_plan_the_resolvers_answer(
    demo: Demo, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    ids = await demo_ids(sessionmaker, demo)
    pid = gid("Project", demo.project_id)
    query = (
        "query($id: ID!, $n: Int, $after: String) { project(id: $id) {"
        " parameters(first: $n, after: $after) { pageInfo { endCursor } nodes { symbol } } } }"
    )
    _, got, sql = await both(graphql, live_server, query, {"id": pid, "n": 2}, demo.token)
    assert sum(map(is_compiled, sql)) == 1
    cursor = got.data["project"]["parameters"]["pageInfo"]["endCursor"]
    cases: list[dict[str, Any]] = [
        {"id": pid, "n": 2, "after": cursor},  # a cursor: keyset pages are the resolvers'
        {"id": pid, "n": 501},  # out of range: their BAD_PAGINATION error
        {"id": pid, "n": "2"},  # not an Int: their variable error
        {"id": gid("Component", ids["c:SAT"]), "n": 2},  # another type: their null
        {"id": "not base64!", "n": 2},  # malformed
    ]
    for variables in cases:
        with resolvers(live_server):
            expected = await graphql(query, variables, token=demo.token)
        with statements(live_server) as sql:
            got = await graphql(query, variables, token=demo.token)
        assert (got.status, got.body) == (expected.status, expected.body), variables
        assert not any(map(is_compiled, sql)), variables
    with statements(live_server) as sql:
        resp = await graphql(query, {"id": pid, "n": 501}, token=demo.token)
    assert resp.errors[0]["extensions"]["code"] == "BAD_PAGINATION"
    # A field outside the subset: never compiled, however often it runs.
    query = (
        "query($id: ID!) { project(id: $id) { components(first: 3) { nodes { type { code } } } } }"
    )
    for _ in range(3):
        with statements(live_server) as sql:
            (await graphql(query, {"id": pid}, token=demo.token)).ok()
        assert not any(map(is_compiled, sql))


async def test_cost_limit_still_applies_to_compiled_documents(
    demo: Demo, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    query = (
        "query($id: ID!, $n: Int, $m: Int) { project(id: $id) { components(first: $n) {"
        " nodes { parameters(first: $m) { nodes { symbol dependents { symbol } } } } } } }"
    )
    small = {"id": gid("Project", demo.project_id), "n": 2, "m": 2}
    _, _, sql = await both(graphql, live_server, query, small, demo.token)
    assert sum(map(is_compiled, sql)) == 1
    resp = await graphql(query, {**small, "n": 500, "m": 500}, token=demo.token)
    assert resp.data is None
    assert resp.errors[0]["extensions"]["code"] == "COST_LIMIT"


async def test_other_tenants_and_non_members_see_nothing(
    demo: Demo, factory: Factory, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    ids = await demo_ids(sessionmaker, demo)
    query = (
        "query($id: ID!, $p: ID!) { project(id: $id) { name components(first: 5) {"
        " nodes { tag } } } node(id: $p) { ... on Parameter { symbol } } }"
    )
    variables = {"id": gid("Project", demo.project_id), "p": gid("Parameter", ids["p:m_wet"])}
    _, got, _ = await both(graphql, live_server, query, variables, demo.token)
    assert got.data["project"]["name"] and got.data["node"] == {"symbol": "m_wet"}
    outsider = await factory.account()  # another organization
    colleague = await factory.account(org=demo.org)  # same organization, not a member
    admin = await factory.account(org=demo.org, admin=True)  # sees every project of it
    for _ in range(2):  # alternating tenants re-pin the pooled connections
        for account, visible in ((outsider, False), (colleague, False), (admin, True)):
            with statements(live_server) as sql:
                resp = await graphql(query, variables, token=account.token)
            assert sum(map(is_compiled, sql)) == 1
            if visible:
                assert resp.body == got.body
            else:
                assert resp.body == {"data": {"project": None, "node": None}}
        with statements(live_server) as sql:
            assert (await graphql(query, variables, token=demo.token)).body == got.body
        assert sum(map(is_compiled, sql)) == 1


async def test_a_connection_acting_as_someone_else_is_never_used(
    demo: Demo, factory: Factory, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    """The statement checks role and tenant itself: a pooled connection whose
    bookkeeping claims the caller's tenant while its session acts as another answers
    nothing, is discarded, and the resolvers answer instead."""
    query = "query($id: ID!) { project(id: $id) { name } }"
    variables = {"id": gid("Project", demo.project_id)}
    expected, _, _ = await both(graphql, live_server, query, variables, demo.token)
    other = await factory.account()
    own = await factory.project(other)
    other_vars = {"id": gid("Project", own.id)}
    await graphql(query, other_vars, token=other.token)
    assert (await graphql(query, other_vars, token=other.token)).ok()["project"]
    async with sessionmaker() as s:
        demo_org = (
            await s.execute(
                text("SELECT organization_id FROM users WHERE id = :u"), {"u": demo.user_id}
            )
        ).scalar_one()
    pool = live_server.app.state.read_pool
    other_pin = Pin(other.user.organization_id, other.user.id)
    (victim,) = [e for e in pool._idle if e.pin == other_pin]
    set_aside = [e for e in pool._idle if e is not victim]
    pool._idle[:] = [victim]
    victim.pin = Pin(demo_org, demo.user_id)  # the lie: its session acts as `other`
    try:
        with statements(live_server) as sql:
            resp = await graphql(query, variables, token=demo.token)
    finally:
        pool._idle.extend(set_aside)
    assert (resp.status, resp.body) == (expected.status, expected.body)
    # The compiled statement was tried (on the lying connection, no re-pin), then the
    # resolvers answered; the connection is gone.
    assert is_compiled(sql[0]) and sum(map(is_compiled, sql)) == 1, sql
    assert victim.conn.is_closed() and victim not in pool._idle


async def test_token_changes_take_effect_on_the_very_next_compiled_read(
    demo: Demo, factory: Factory, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    """The compiled statement verifies the bearer token itself (no lookup before it):
    revocation, expiry, deactivation and a changed admin flag act at once."""
    query = "query($id: ID!) { project(id: $id) { name } }"
    variables = {"id": gid("Project", demo.project_id)}
    await both(graphql, live_server, query, variables, demo.token)

    async def sql(statement: str, **params: Any) -> None:
        async with sessionmaker() as s:
            await s.execute(text(statement), params)
            await s.commit()

    colleague = await factory.account(org=demo.org)
    for account in (colleague, colleague):  # warm: its lookup is remembered
        assert (await graphql(query, variables, token=account.token)).ok() == {"project": None}
    with statements(live_server) as seen:
        assert (await graphql(query, variables, token=colleague.token)).ok() == {"project": None}
    assert len(seen) == 1 and is_compiled(seen[0]), seen  # no separate token lookup
    await sql("UPDATE users SET is_admin = true WHERE id = :u", u=colleague.user.id)
    resp = await graphql(query, variables, token=colleague.token)
    assert resp.ok()["project"] is not None  # an admin sees every project at once
    with statements(live_server) as seen:
        assert (await graphql(query, variables, token=colleague.token)).ok()["project"]
    assert len(seen) == 1 and is_compiled(seen[0]), seen  # compiled again, as admin
    await sql("UPDATE users SET is_active = false WHERE id = :u", u=colleague.user.id)
    resp = await graphql(query, variables, token=colleague.token)
    assert resp.status == 401 and resp.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"

    for change in (
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = :u",
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE user_id = :u",
    ):
        account = await factory.account(org=demo.org, admin=True)
        for _ in range(3):
            assert (await graphql(query, variables, token=account.token)).ok()["project"]
        await sql(change, u=account.user.id)
        with statements(live_server) as seen:
            resp = await graphql(query, variables, token=account.token)
        assert resp.status == 401, change
        assert resp.body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        # The compiled statement answered '' (token changed), then the lookup refused it.
        assert is_compiled(seen[0]) and "FROM api_tokens" in seen[1] and len(seen) == 2
        resp = await graphql("{ viewer { email } }", token=account.token)
        assert resp.status == 401


async def test_compiled_responses_carry_the_same_headers(
    demo: Demo, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    query = "query($id: ID!) { project(id: $id) { name } }"
    variables = {"id": gid("Project", demo.project_id)}
    await both(graphql, live_server, query, variables, demo.token)
    for accept in ("application/json", "application/graphql-response+json", None):
        headers = {"X-Request-ID": "req-42.a_b"}
        if accept is not None:
            headers["Accept"] = accept
        with resolvers(live_server):
            expected = await graphql(query, variables, token=demo.token, headers=headers)
        with statements(live_server) as sql:
            got = await graphql(query, variables, token=demo.token, headers=headers)
        assert sum(map(is_compiled, sql)) == 1
        assert got.body == expected.body
        for name in ("content-type", "vary", "x-request-id"):
            assert got.headers[name] == expected.headers[name], name
        # PostgreSQL writes JSON with spaces after ':' and ',' (same values, more bytes).
        assert int(got.headers["content-length"]) > 0
        assert got.headers["x-request-id"] == "req-42.a_b"
    # A minted id when the incoming one is unusable.
    got = await graphql(query, variables, token=demo.token, headers={"X-Request-ID": "x" * 99})
    assert len(got.headers["x-request-id"]) == 32


async def test_connections_lost_under_the_pool_are_replaced(
    demo: Demo, sessionmaker: Any, graphql: GraphQLCall, live_server: LiveServer
) -> None:
    """A database restart or an idle timeout kills pooled connections: the next request
    is still answered (by the resolvers), the one after by the plan on a new connection."""
    from app.graphql.readpool import APPLICATION_NAME

    query = "query($id: ID!) { project(id: $id) { name components(first: 2) { nodes { tag } } } }"
    variables = {"id": gid("Project", demo.project_id)}
    expected, _, _ = await both(graphql, live_server, query, variables, demo.token)
    async with sessionmaker() as s:
        killed = (
            await s.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM"
                    " pg_stat_activity WHERE application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            )
        ).scalar_one()
    assert killed >= 1
    for _ in range(3):
        resp = await graphql(query, variables, token=demo.token)
        assert (resp.status, resp.body) == (expected.status, expected.body)
    with statements(live_server) as sql:
        resp = await graphql(query, variables, token=demo.token)
    assert resp.body == expected.body and sum(map(is_compiled, sql)) == 1
