"""GraphQL over HTTP: media types, status codes and bodies per the spec, over real HTTP.

The last test runs the `graphql-http` audit suite (tests/graphql_http_audit) against
the live server and requires zero errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import GraphQLError
from strawberry import relay
from strawberry.types import ExecutionResult
from websockets.asyncio.client import connect

from app.graphql.http import GRAPHQL_RESPONSE_JSON, classify, negotiate
from tests.conftest import LiveServer

GRJ = "application/graphql-response+json"
JSON = "application/json"
AUDIT_DIR = Path(__file__).resolve().parent / "graphql_http_audit"


def media_type(r: httpx.Response) -> str:
    return r.headers["content-type"]


async def post(
    http: httpx.AsyncClient, body: Any, *, accept: str | None = GRJ, raw: bool = False
) -> httpx.Response:
    headers = {"content-type": JSON}
    if accept is not None:
        headers["accept"] = accept
    content = body if raw else json.dumps(body)
    return await http.post("/graphql", content=content, headers=headers)


def bad_request(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


# --- content negotiation --------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRJ, GRJ),
        (f"{GRJ}, {JSON}", GRJ),
        (f"{JSON}, {GRJ}", GRJ),
        (f"{GRJ};q=0.9, {JSON}", JSON),
        (f"{JSON};q=0, */*", GRJ),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
    ],
)
async def test_response_media_type_is_negotiated(
    http: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    r = await post(http, {"query": "{ __typename }"}, accept=accept)
    assert r.status_code == 200
    assert media_type(r) == f"{expected}; charset=utf-8"
    assert r.headers["vary"] == "Accept"
    assert r.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("accept", ["text/html", "application/xml", f"{GRJ};q=0, {JSON};q=0"])
async def test_unacceptable_accept_is_406(http: httpx.AsyncClient, accept: str) -> None:
    r = await post(http, {"query": "{ __typename }"}, accept=accept)
    assert r.status_code == 406
    assert media_type(r) == "application/json; charset=utf-8"
    message = f"Not acceptable: this endpoint responds with {GRJ} or {JSON}."
    assert r.json() == {"errors": [{"message": message, "extensions": {"code": "NOT_ACCEPTABLE"}}]}


def test_negotiate_unit() -> None:
    assert negotiate("") == JSON
    assert negotiate("application/graphql-response+json;q=0.5") == GRAPHQL_RESPONSE_JSON
    assert negotiate("application/json;q=0.1, application/graphql-response+json;q=0.1") == GRJ
    assert negotiate("garbage, text/plain") is None
    assert negotiate("application/json;q=nonsense") is None


async def test_utf8_request_and_response(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/graphql",
        content=json.dumps({"query": '{ __type(name: "Run🏃Swim🏊") { name } }'}).encode(),
        headers={"content-type": "application/json; charset=utf-8", "accept": GRJ},
    )
    assert (r.status_code, r.json()) == (200, {"data": {"__type": None}})
    r = await post(http, {"query": "{ __typename }"}, accept=GRJ)
    assert media_type(r) == f"{GRJ}; charset=utf-8"


# --- GraphQL request errors: 400 without `data` (graphql-response+json), 200 (json) --

SYNTAX = {
    "message": "Syntax Error: Expected Name, found <EOF>.",
    "locations": [{"line": 1, "column": 2}],
}
UNKNOWN_FIELD = {
    "message": "Cannot query field 'xyzzyPlugh' on type 'Query'.",
    "locations": [{"line": 1, "column": 3}],
}
REQUEST_ERRORS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("syntax", {"query": "{"}, SYNTAX),
    ("validation", {"query": "{ xyzzyPlugh }"}, UNKNOWN_FIELD),
    (
        "unknown operation",
        {"query": "query A { __typename }", "operationName": "B"},
        {"message": 'Unknown operation named "B".'},
    ),
    (
        "variable type",
        {"query": "query Q($n: String!) { __type(name: $n) { name } }", "variables": {"n": 1}},
        {
            "message": "Variable '$n' has invalid value: String cannot represent a non"
            " string value: 1",
            "locations": [{"line": 1, "column": 9}],
        },
    ),
    (
        "missing variable",
        {"query": "query Q($n: String!) { __type(name: $n) { name } }"},
        {
            "message": "Variable '$n' has invalid value: Expected a value of non-null type"
            " 'String!' to be provided.",
            "locations": [{"line": 1, "column": 9}],
        },
    ),
    (
        "subscription over HTTP",
        {"query": "subscription { __typename }"},
        {"message": "Subscriptions are served over WebSocket (graphql-transport-ws) only."},
    ),
]


@pytest.mark.parametrize(
    ("body", "error"), [c[1:] for c in REQUEST_ERRORS], ids=[c[0] for c in REQUEST_ERRORS]
)
async def test_request_errors_are_400_without_data(
    http: httpx.AsyncClient, body: dict[str, Any], error: dict[str, Any]
) -> None:
    r = await post(http, body, accept=GRJ)
    assert r.status_code == 400
    assert media_type(r) == f"{GRJ}; charset=utf-8"
    assert r.json() == {"errors": [error]}


@pytest.mark.parametrize(
    ("body", "error"), [c[1:] for c in REQUEST_ERRORS], ids=[c[0] for c in REQUEST_ERRORS]
)
async def test_request_errors_are_200_under_legacy_json(
    http: httpx.AsyncClient, body: dict[str, Any], error: dict[str, Any]
) -> None:
    r = await post(http, body, accept=JSON)
    assert r.status_code == 200
    assert media_type(r) == "application/json; charset=utf-8"
    assert r.json() == {"errors": [error]}


async def test_limit_violations_are_request_errors(http: httpx.AsyncClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    r = await post(http, {"query": aliases})
    assert r.status_code == 400
    assert r.json() == {"errors": [{"message": "31 aliases found. Allowed: 30"}]}
    tokens = "{ " + "__typename " * 5001 + "}"
    r = await post(http, {"query": tokens})
    assert r.status_code == 400
    message = "Syntax Error: Document contains more than 5000 tokens. Parsing aborted."
    assert [e["message"] for e in r.json()["errors"]] == [message]
    assert "data" not in r.json()


async def test_field_errors_are_200_with_data_and_path(http: httpx.AsyncClient) -> None:
    ids = [str(relay.GlobalID("Project", str(uuid.uuid4()))) for _ in range(501)]
    query = "query N($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for accept in (GRJ, JSON):
        r = await post(http, {"query": query, "variables": {"ids": ids}}, accept=accept)
        assert r.status_code == 200
        assert media_type(r) == f"{accept}; charset=utf-8"
        assert r.json() == {
            "data": None,
            "errors": [
                {
                    "message": "at most 500 ids per `nodes` call",
                    "locations": [{"line": 1, "column": 25}],
                    "path": ["nodes"],
                    "extensions": {"code": "TOO_MANY_IDS"},
                }
            ],
        }


def test_unexpected_error_before_execution_is_masked_500() -> None:
    leaked = GraphQLError("boom", original_error=RuntimeError("SELECT secret FROM t"))
    body, status = classify(ExecutionResult(data=None, errors=[leaked]))
    assert status == 500
    assert body == {
        "errors": [
            {"message": "Internal server error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
    }
    masked = GraphQLError("Internal server error.")
    assert classify(ExecutionResult(data=None, errors=[masked]))[1] == 500
    in_field = GraphQLError("Internal server error.", path=["viewer"])
    body, status = classify(ExecutionResult(data={"viewer": None}, errors=[in_field]))
    assert status == 200
    assert body == {
        "errors": [{"message": "Internal server error.", "path": ["viewer"]}],
        "data": {"viewer": None},
    }


# --- malformed HTTP requests: 400 / 415 / 405 -------------------------------------


@pytest.mark.parametrize("accept", [GRJ, JSON])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{ "not a JSON', "The request body is not valid JSON (UTF-8)."),
        (b'{"query": "\xff"}', "The request body is not valid JSON (UTF-8)."),
        ("", "The request body is empty: send a JSON object with a `query`."),
        (
            '[{"query": "{ __typename }"}]',
            "The request body must be a JSON object (batching is not supported).",
        ),
        ('"{ __typename }"', "The request body must be a JSON object (batching is not supported)."),
        ("{}", "Missing the `query` parameter: send a GraphQL document."),
        ('{"qeury": "{ __typename }"}', "Missing the `query` parameter: send a GraphQL document."),
        ('{"query": null}', "Missing the `query` parameter: send a GraphQL document."),
        ('{"query": 0}', "The `query` parameter must be a string."),
        ('{"query": ["{ __typename }"]}', "The `query` parameter must be a string."),
        (
            '{"query": "{ __typename }", "operationName": false}',
            "The `operationName` parameter must be a string or null.",
        ),
        (
            '{"query": "{ __typename }", "variables": "{}"}',
            "The `variables` parameter must be a JSON object or null.",
        ),
        (
            '{"query": "{ __typename }", "variables": []}',
            "The `variables` parameter must be a JSON object or null.",
        ),
        (
            '{"query": "{ __typename }", "extensions": 0}',
            "The `extensions` parameter must be a JSON object or null.",
        ),
    ],
)
async def test_malformed_post_is_400(
    http: httpx.AsyncClient, accept: str, content: str | bytes, message: str
) -> None:
    r = await post(http, content, accept=accept, raw=True)
    assert r.status_code == 400
    assert media_type(r) == f"{accept}; charset=utf-8"
    assert r.json() == bad_request(message)


async def test_null_optional_parameters_are_fine(http: httpx.AsyncClient) -> None:
    body: dict[str, Any] = {
        "query": "{ __typename }",
        "variables": None,
        "operationName": None,
        "extensions": None,
    }
    r = await post(http, body)
    assert (r.status_code, r.json()) == (200, {"data": {"__typename": "Query"}})
    body = {"query": "query Q { __typename }", "operationName": "Q", "extensions": {"x": 1}}
    r = await post(http, body)
    assert (r.status_code, r.json()) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (
            "text/plain",
            "Unsupported Content-Type 'text/plain': send the GraphQL request as application/json.",
        ),
        (
            "application/graphql",
            "Unsupported Content-Type 'application/graphql': send the GraphQL request as "
            "application/json.",
        ),
        (
            "application/json; charset=latin-1",
            "Unsupported charset 'latin-1': the body must be UTF-8.",
        ),
        (None, "Missing Content-Type: send the GraphQL request as application/json."),
    ],
)
async def test_unsupported_content_type_is_415(
    http: httpx.AsyncClient, content_type: str | None, message: str
) -> None:
    headers = {"accept": GRJ}
    if content_type is not None:
        headers["content-type"] = content_type
    r = await http.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert r.status_code == 415
    assert media_type(r) == f"{GRJ}; charset=utf-8"
    body = {"errors": [{"message": message, "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"}}]}
    assert r.json() == body


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_are_405(http: httpx.AsyncClient, method: str) -> None:
    r = await http.request(method, "/graphql", headers={"accept": GRJ})
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    if method != "HEAD":
        message = f"Method {method} is not allowed: use POST (or GET for queries)."
        body = {"errors": [{"message": message, "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}
        assert r.json() == body


# --- GET ------------------------------------------------------------------------


async def test_get_query_with_variables(http: httpx.AsyncClient) -> None:
    params = {
        "query": "query T($n: String!) { __type(name: $n) { name } }",
        "variables": json.dumps({"n": "Query"}),
        "operationName": "T",
    }
    for accept, expected in ((GRJ, GRJ), (JSON, JSON), (None, JSON), ("*/*", JSON)):
        headers = {} if accept is None else {"accept": accept}
        r = await http.get("/graphql", params=params, headers=headers)
        assert r.status_code == 200
        assert media_type(r) == f"{expected}; charset=utf-8"
        assert r.json() == {"data": {"__type": {"name": "Query"}}}


@pytest.mark.parametrize("accept", [GRJ, JSON])
async def test_get_mutation_is_405_allow_post(http: httpx.AsyncClient, accept: str) -> None:
    query = 'mutation { login(input: {email: "a@b.c", password: "x"}) { __typename } }'
    r = await http.get("/graphql", params={"query": query}, headers={"accept": accept})
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert media_type(r) == f"{accept}; charset=utf-8"
    message = "Mutations are not allowed over GET: send them with POST."
    body = {"errors": [{"message": message, "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}
    assert r.json() == body
    # A named mutation picked from a document that also holds a query: refused too.
    both = "query Q { __typename } mutation M { __typename }"
    r = await http.get("/graphql", params={"query": both, "operationName": "M"})
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = await http.get("/graphql", params={"query": both, "operationName": "Q"})
    assert (r.status_code, r.json()) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "Missing the `query` parameter: send a GraphQL document."),
        (
            {"query": "{ __typename }", "variables": "{nope"},
            "The `variables` parameter is not valid JSON.",
        ),
        (
            {"query": "{ __typename }", "variables": "[1]"},
            "The `variables` parameter must be a JSON object or null.",
        ),
        (
            {"query": "{ __typename }", "extensions": "1"},
            "The `extensions` parameter must be a JSON object or null.",
        ),
        (
            [("query", "{ __typename }"), ("query", "{ __typename }")],
            "The `query` parameter was given more than once.",
        ),
    ],
)
async def test_malformed_get_is_400(http: httpx.AsyncClient, params: Any, message: str) -> None:
    r = await http.get("/graphql", params=params, headers={"accept": GRJ})
    assert r.status_code == 400
    assert media_type(r) == f"{GRJ}; charset=utf-8"
    assert r.json() == bad_request(message)


async def test_browser_get_serves_graphiql(http: httpx.AsyncClient) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    r = await http.get("/graphql", headers={"accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "graphiql" in r.text.lower()
    # With a query, the same browser gets the result (JSON: it ranks */* over nothing else).
    r = await http.get("/graphql", params={"query": "{ __typename }"}, headers={"accept": accept})
    assert (r.status_code, media_type(r)) == (200, "application/json; charset=utf-8")


# --- what must keep working ------------------------------------------------------


async def test_bad_bearer_token_is_still_401(http: httpx.AsyncClient) -> None:
    headers = {"accept": GRJ, "authorization": "Bearer tla_not-a-real-token"}
    r = await http.get("/graphql", params={"query": "{ viewer { email } }"}, headers=headers)
    assert r.status_code == 401
    r = await http.post("/graphql", json={"query": "{ viewer { email } }"}, headers=headers)
    assert r.status_code == 401
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_request_id_on_graphql_errors(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/graphql", json={"query": "{"}, headers={"accept": GRJ, "x-request-id": "req-42"}
    )
    assert (r.status_code, r.headers["x-request-id"]) == (400, "req-42")
    r = await http.post("/graphql", content=b"nope", headers={"x-request-id": "req-43"})
    assert (r.status_code, r.headers["x-request-id"]) == (415, "req-43")


async def test_post_mutation_still_runs(http: httpx.AsyncClient) -> None:
    query = (
        'mutation { login(input: {email: "nobody@example.test", password: "wrong-password"})'
        " { __typename } }"
    )
    r = await post(http, {"query": query})
    assert r.status_code == 200
    body = r.json()
    assert "errors" not in body and set(body["data"]) == {"login"}


async def test_websocket_subscriptions_share_the_path(live_server: LiveServer) -> None:
    url = live_server.base_url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        reply = await ws.recv()
        assert isinstance(reply, str)  # text frames, as the protocol requires
        assert json.loads(reply) == {"type": "connection_ack"}


# --- the graphql-http audit suite -------------------------------------------------


def test_graphql_http_audit_has_no_errors(live_server: LiveServer) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the graphql-http audit needs `node` and `npm` on PATH")
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
    if not (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        install = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=AUDIT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert install.returncode == 0, f"npm ci failed:\n{install.stdout}\n{install.stderr}"
    audit = subprocess.run(
        [node, "audit.mjs", f"{live_server.base_url}/graphql"],
        cwd=AUDIT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = f"{audit.stdout}\n{audit.stderr}"
    print(output)  # the full report (warnings included) shows with `pytest -s` or on failure
    summary = [line for line in audit.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert summary, f"no summary from the audit:\n{output}"
    counts = json.loads(summary[-1].removeprefix("SUMMARY "))
    assert counts["error"] == 0, output
    assert audit.returncode == 0, output
    assert counts["ok"] > 0, output
