"""Abuse limits: cost, body size, timeout, persisted-only mode, anonymous introspection."""

from __future__ import annotations

import time
from typing import Any

import httpx

from app.graphql.schema import build_schema
from app.operations.service import document_hash, register
from app.settings import Settings
from tests.apiproc import api_process
from tests.conftest import SECRET, Demo, GraphQLCall
from tests.test_read_api import gid

EXPENSIVE = """query($p: ID!) { project(id: $p) { components(first: 500) { nodes {
  parameters(first: 500) { nodes { history(first: 500) { nodes { version } } } } } } } }"""


async def test_cost_limit_refuses_before_execution(demo: Demo, graphql: GraphQLCall) -> None:
    t0 = time.perf_counter()
    resp = await graphql(EXPENSIVE, {"p": gid("Project", demo.project_id)}, token=demo.token)
    assert time.perf_counter() - t0 < 1.0
    assert resp.data is None
    err = resp.errors[0]
    assert err["extensions"]["code"] == "COST_LIMIT"
    assert err["extensions"]["cost"] > 500_000 == err["extensions"]["limit"]
    # Page sizes given as variables count too; a modest query passes.
    modest = """query($p: ID!, $n: Int) { project(id: $p) { components(first: $n) { nodes {
      parameters(first: $n) { nodes { symbol } } } } } }"""
    ok = await graphql(modest, {"p": gid("Project", demo.project_id), "n": 20}, token=demo.token)
    assert ok.ok()["project"]["components"]["nodes"]
    big = await graphql(modest, {"p": gid("Project", demo.project_id), "n": 500}, token=demo.token)
    assert big.errors[0]["extensions"]["code"] == "COST_LIMIT"


async def test_body_size_limit(http: httpx.AsyncClient) -> None:
    body = b'{"query": "{ viewer { email } }", "variables": {"x": "' + b"a" * 1_100_000 + b'"}}'
    r = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_persisted_only_mode_and_timeouts(
    db_url: str, redis_url: str, sessionmaker: Any, demo: Demo
) -> None:
    allowed = "query Me { viewer { email } }"
    introspect = "{ __schema { queryType { name } } }"
    async with sessionmaker() as s:
        out = await register(
            s, schema=build_schema(Settings())._schema, documents=[allowed, introspect]
        )
        await s.commit()
    assert out[0].id == document_hash(allowed) and out[0].name == "Me"
    env = {"THREADLINE_PERSISTED_ONLY": "true", "THREADLINE_INTROSPECTION_ANONYMOUS": "false"}
    with api_process(db_url, redis_url, SECRET, **env) as api:
        async with httpx.AsyncClient(base_url=api, timeout=30) as c:
            hdr = {"Authorization": f"Bearer {demo.token}"}
            r = await c.post("/graphql", json={"query": allowed}, headers=hdr)
            assert r.status_code == 200 and r.json()["data"]["viewer"]["email"]
            by_hash = {
                "extensions": {
                    "persistedQuery": {"version": 1, "sha256Hash": document_hash(allowed)}
                }
            }
            r = await c.post("/graphql", json=by_hash, headers=hdr)
            assert r.status_code == 200 and r.json()["data"]["viewer"]["email"]
            r = await c.post("/graphql", json={"query": "{ viewer { name } }"}, headers=hdr)
            assert r.status_code == 400
            assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
            unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
            r = await c.post("/graphql", json=unknown, headers=hdr)
            assert r.json()["errors"][0]["message"] == "PersistedQueryNotFound"
            # Anonymous introspection can be switched off; authenticated stays on.
            r = await c.post("/graphql", json={"query": introspect})
            assert r.json()["errors"][0]["message"] == "introspection requires authentication"
            r = await c.post("/graphql", json={"query": introspect}, headers=hdr)
            assert r.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    # Anonymous introspection can be switched off (authenticated introspection stays on).
    with api_process(
        db_url,
        redis_url,
        SECRET,
        THREADLINE_INTROSPECTION_ANONYMOUS="false",
        THREADLINE_REQUEST_TIMEOUT_SECONDS="0.001",
    ) as api:
        async with httpx.AsyncClient(base_url=api, timeout=30) as c:
            q = {"query": "{ __schema { queryType { name } } }"}
            r = await c.post("/graphql", json=q)
            assert r.json()["errors"][0]["message"] == "introspection requires authentication"
            r = await c.post(
                "/graphql",
                json={
                    "query": EXPENSIVE.replace("500", "5"),
                    "variables": {"p": gid("Project", demo.project_id)},
                },
                headers={"Authorization": f"Bearer {demo.token}"},
            )
            assert r.status_code == 504
            assert r.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
            assert (await c.get("/healthz")).status_code == 200
