"""ASGI surface: health, readiness, request ids, GraphiQL, masked errors."""

from __future__ import annotations

import httpx

from app.graphql.schema import build_schema, export_sdl
from app.settings import Settings
from tests.conftest import GraphQLCall

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    r = await http.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await http.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_request_id_is_echoed_or_minted(http: httpx.AsyncClient) -> None:
    r = await http.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await http.get("/healthz", headers={"X-Request-ID": b"bad id with spaces\xe9"})
    minted = r.headers["x-request-id"]
    assert minted != "bad id with spaces" and len(minted) == 32


async def test_graphiql_served_to_browsers(http: httpx.AsyncClient) -> None:
    r = await http.get("/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert "graphiql" in r.text.lower()


async def test_depth_limit_rejects_deep_operation_before_execution() -> None:
    # The schema is still shallow (viewer → organization → name), so prove the
    # limiter with a low limit; it validates before any resolver (or database) runs.
    schema = build_schema(Settings(max_query_depth=1, database_url="postgresql+asyncpg://x/y"))
    result = await schema.execute("query Deep { viewer { organization { name } } }")
    assert result.data is None
    assert result.errors is not None
    assert result.errors[0].message == "'Deep' exceeds maximum operation depth of 1"


async def test_alias_bomb_rejected(graphql: GraphQLCall) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ email }}" for i in range(200)) + " }"
    resp = await graphql(query)
    assert resp.data is None
    assert "aliases" in resp.errors[0]["message"].lower()


def test_schema_graphql_is_current() -> None:
    """Drift test: regenerate with `threadline export-schema --output schema.graphql`."""
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_sdl(), "schema.graphql is stale: run threadline export-schema"
