"""GraphQL over HTTP, per the GraphQL-over-HTTP spec (graphql.github.io/graphql-over-http).

Strawberry's ASGI view handles WebSockets (``graphql-transport-ws``) and GraphiQL,
but its HTTP path knows neither ``application/graphql-response+json`` nor the
spec's status codes. :class:`ThreadlineGraphQL` keeps strawberry for the WebSocket
path and the IDE and replaces the HTTP pipeline:

* ``POST`` with an ``application/json`` body (UTF-8); ``GET`` with URL query
  parameters, for queries only — a mutation over GET is ``405`` with
  ``Allow: POST``. Subscriptions are WebSocket-only. Other methods: ``405``.
* ``GET`` from a browser (``Accept: text/html``) without ``query`` serves GraphiQL.
* The response media type is negotiated from ``Accept``:
  ``application/graphql-response+json`` when the client names it (and does not
  prefer ``application/json`` by q-value); ``application/json`` when the header
  is absent, a wildcard, or names it; ``406`` when neither is acceptable.
  ``Content-Type`` always carries ``charset=utf-8``.
* A malformed HTTP request (unreadable JSON, non-object body, ``query`` missing
  or not a string, ``operationName`` not a string, ``variables``/``extensions``
  not objects) is ``400``; an unsupported request ``Content-Type`` is ``415``.
* A GraphQL *request error* (syntax error, validation error including the
  depth/alias/token limits, unknown operation name, variable coercion failure)
  is answered with ``{"errors": [...]}`` and no ``data`` entry: ``400`` under
  ``application/graphql-response+json``, ``200`` under ``application/json``
  (the spec's legacy rules). An error that stopped the operation for reasons of
  the server's own (an unexpected exception outside any resolver) is a masked
  ``500``. Field errors (they carry a ``path``) are ``200`` with ``data``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from app.auth.principal import Principal
from app.graphql import compiled
from app.graphql.compiled import CompiledOperation
from app.graphql.context import Context
from app.graphql.lanes import TransportWSHandler
from app.graphql.limits import known_cost
from app.graphql.readpool import Pin, ReadPool
from app.logging_setup import request_id_for

log = logging.getLogger("threadline.http")
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
# The message the schema's MaskErrors extension puts on unexpected errors.
INTERNAL_ERROR_MESSAGE = "Internal server error."

_ALLOWED_OPERATIONS: dict[str, frozenset[OperationType]] = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}
_UTF8 = frozenset({"utf-8", "utf8"})


@dataclass
class HTTPError(Exception):
    """A request refused before (or instead of) GraphQL execution."""

    status: int
    message: str
    code: str = "BAD_REQUEST"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingBearer:
    """A bearer token not looked up yet (app.main.BearerAuth): its digest and the
    principal its last successful lookup found."""

    token: str
    digest: bytes
    principal: Principal


def unauthenticated(message: str) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        orjson.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="threadline"'},
    )


@dataclass(frozen=True)
class GraphQLParams:
    """The GraphQL request parameters of one HTTP request, already validated."""

    query: str
    operation_name: str | None = None
    variables: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    # sha256 of a persisted document, when the client sent a hash instead of a query.
    document_id: str | None = None


# --- content negotiation --------------------------------------------------------


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    """``Accept`` as ``(type, subtype, q)`` triples; malformed ranges are skipped."""
    ranges: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        media, *params = item.split(";")
        type_, sep, subtype = media.strip().lower().partition("/")
        if not sep or not type_ or not subtype:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        ranges.append((type_, subtype, q))
    return ranges


def _quality(ranges: list[tuple[str, str, float]], media_type: str) -> tuple[float, bool]:
    """The q-value of ``media_type`` from its most specific matching range (RFC 9110 §12.5.1).

    Also tells whether that range names the type exactly (not by a wildcard).
    """
    type_, _, subtype = media_type.partition("/")
    best_specificity, q = -1, 0.0
    for r_type, r_subtype, r_q in ranges:
        if (r_type, r_subtype) == (type_, subtype):
            specificity = 2
        elif r_type == type_ and r_subtype == "*":
            specificity = 1
        elif (r_type, r_subtype) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best_specificity or (specificity == best_specificity and r_q > q):
            best_specificity, q = specificity, r_q
    return q, best_specificity == 2


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None when nothing fits.

    ``application/graphql-response+json`` only when the client names it and does not
    rank ``application/json`` higher; a missing header or a bare wildcard means
    ``application/json`` — what the spec asks of servers for legacy clients.
    """
    if accept is None or not accept.strip():
        return APPLICATION_JSON
    ranges = _media_ranges(accept)
    q_graphql, named = _quality(ranges, GRAPHQL_RESPONSE_JSON)
    q_json, _ = _quality(ranges, APPLICATION_JSON)
    if named and q_graphql > 0 and q_graphql >= q_json:
        return GRAPHQL_RESPONSE_JSON
    if q_json > 0:
        return APPLICATION_JSON
    if q_graphql > 0:
        return GRAPHQL_RESPONSE_JSON
    return None


# --- request parsing ------------------------------------------------------------


def _content_type(header: str) -> tuple[str, dict[str, str]]:
    media, *raw_params = header.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, _, value = raw.partition("=")
        params[name.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), params


def _bad_request(message: str) -> HTTPError:
    return HTTPError(400, message)


def _validated(
    query: object, operation_name: object, variables: object, extensions: object
) -> GraphQLParams:
    document_id = _persisted_hash(extensions)
    if (query is None or query == "") and document_id is not None:
        query = ""  # filled in from the persisted operations by the view
    elif query is None or query == "":
        raise _bad_request("Missing the `query` parameter: send a GraphQL document.")
    if not isinstance(query, str):
        raise _bad_request("The `query` parameter must be a string.")
    if operation_name is not None and not isinstance(operation_name, str):
        raise _bad_request("The `operationName` parameter must be a string or null.")
    if variables is not None and not isinstance(variables, dict):
        raise _bad_request("The `variables` parameter must be a JSON object or null.")
    if extensions is not None and not isinstance(extensions, dict):
        raise _bad_request("The `extensions` parameter must be a JSON object or null.")
    if isinstance(query, str) and "\x00" in query:
        raise _bad_request("The query contains a NUL character.")
    if variables is not None:
        _check_variables(variables)
    return GraphQLParams(
        query=query,
        operation_name=operation_name,
        variables=variables,
        extensions=extensions,
        document_id=document_id,
    )


MAX_LIST_IN_VARIABLES = 5000


def _check_variables(value: object) -> None:
    """Refuse what no valid operation needs and what would be slow or fatal later:
    NUL characters (PostgreSQL text cannot store them) and huge lists (input coercion
    costs time per element before any limit in a resolver can act)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise _bad_request("Variables must not contain NUL characters.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise _bad_request("Variables must not contain NUL characters.")
                stack.append(child)
        elif isinstance(item, list):
            if len(item) > MAX_LIST_IN_VARIABLES:
                raise _bad_request(
                    f"Lists in variables are limited to {MAX_LIST_IN_VARIABLES} elements."
                )
            stack.extend(item)


def _persisted_hash(extensions: object) -> str | None:
    """The document hash of an Apollo-style persisted query, if the request names one."""
    if not isinstance(extensions, dict):
        return None
    pq = extensions.get("persistedQuery")
    if isinstance(pq, dict) and isinstance(pq.get("sha256Hash"), str):
        return str(pq["sha256Hash"]).lower()
    return None


def _json_param(request: Request, name: str) -> object:
    """A GET parameter holding URL-encoded JSON (``variables``, ``extensions``)."""
    raw = _single_param(request, name)
    if raw is None or raw == "":
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad_request(f"The `{name}` parameter is not valid JSON.") from None


def _single_param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _bad_request(f"The `{name}` parameter was given more than once.")
    return values[0] if values else None


def params_from_get(request: Request) -> GraphQLParams:
    return _validated(
        _single_param(request, "query"),
        _single_param(request, "operationName"),
        _json_param(request, "variables"),
        _json_param(request, "extensions"),
    )


async def params_from_post(request: Request) -> GraphQLParams:
    header = request.headers.get("content-type")
    if header is None:
        raise HTTPError(
            415,
            "Missing Content-Type: send the GraphQL request as application/json.",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    media_type, params = _content_type(header)
    if media_type != APPLICATION_JSON:
        raise HTTPError(
            415,
            f"Unsupported Content-Type {media_type!r}: send the GraphQL request as "
            "application/json.",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    if params.get("charset", "utf-8") not in _UTF8:
        raise HTTPError(
            415,
            f"Unsupported charset {params['charset']!r}: the body must be UTF-8.",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    limit = request.app.state.settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"The request body exceeds {limit} bytes.", "PAYLOAD_TOO_LARGE")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"The request body exceeds {limit} bytes.", "PAYLOAD_TOO_LARGE")
    if not body.strip():
        raise _bad_request("The request body is empty: send a JSON object with a `query`.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad_request("The request body is not valid JSON (UTF-8).") from None
    if not isinstance(data, dict):
        raise _bad_request("The request body must be a JSON object (batching is not supported).")
    return _validated(
        data.get("query"), data.get("operationName"), data.get("variables"), data.get("extensions")
    )


# --- responses ------------------------------------------------------------------


def dumps(data: object) -> bytes:
    """orjson, with the standard library as a fallback for what it refuses (huge ints)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _is_internal(error: GraphQLError) -> bool:
    """An error of the server's own making (masked, or not a deliberate GraphQL error)."""
    original = error.original_error
    unexpected = original is not None and not isinstance(original, GraphQLError)
    return unexpected or error.message == INTERNAL_ERROR_MESSAGE


def classify(result: ExecutionResult) -> tuple[dict[str, Any], int]:
    """The GraphQL response body for a result and its status under graphql-response+json.

    Without ``data`` and with no error inside execution (errors without ``path``) the
    operation never ran: a request error (400), or a server error (500) when one of
    the errors is an unexpected exception. Anything else ran and is 200.
    """
    errors = result.errors or []
    if result.data is None and errors and not any(e.path for e in errors):
        if any(_is_internal(e) for e in errors):
            # Masked here too: such an error can escape MaskErrors when an extension's
            # exit (e.g. the commit) raises after MaskErrors already ran.
            return _error_body(INTERNAL_ERROR_MESSAGE, "INTERNAL_SERVER_ERROR"), 500
        return {"errors": [e.formatted for e in errors]}, 400
    body: dict[str, Any] = {}
    if errors:
        body["errors"] = [e.formatted for e in errors]
    body["data"] = result.data
    if result.extensions:
        body["extensions"] = result.extensions
    return body, 200


# --- the view -------------------------------------------------------------------


# Cyclic-GC thresholds for a GraphQL server: a 4,000-node response allocates a
# few hundred thousand short-lived objects (paths, dicts, results); with the default
# threshold (700) generation 0 is collected hundreds of times per response and the
# older generations re-scan every live request's objects. Measured on query (c) of
# bench/read_bench: ~850 collections and 26 ms CPU per request before, 18 and 20 ms
# after. Objects alive at startup (modules, the schema) are frozen out of the scans.
GC_THRESHOLDS = (20_000, 20, 100)
_gc_tuned = False


def tune_gc() -> None:
    """Apply GC_THRESHOLDS and freeze what exists now (once per process)."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class ThreadlineGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context, and a spec-compliant HTTP pipeline."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tune_gc()

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        state = request.app.state
        return Context(
            request=request,
            settings=state.settings,
            sessionmaker=state.sessionmaker,
            request_id=request.scope.get("state", {}).get("request_id", uuid.uuid4().hex),
            principal=request.scope.get("state", {}).get("principal"),
            response=response,
            redis=getattr(state, "redis", None),
            hub=getattr(state, "hub", None),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        from app.graphql.subscriptions import authenticate_connection

        try:
            await authenticate_connection(context)
        except PermissionError as exc:
            # graphql-transport-ws: close 4403 Forbidden.
            raise ConnectionRejectionError({"reason": str(exc)}) from exc
        unset: UnsetType = UNSET
        return unset

    def encode_json(self, data: object) -> str:
        # Used by strawberry for WebSocket messages: must stay text (a bytes value
        # would go out as a binary frame, which graphql-transport-ws forbids).
        return dumps(data).decode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self.handle_http(request)
        await response(scope, receive, send)

    def wants_graphql_ide(self, request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and ("text/html" in accept or "*/*" in accept)
        )

    async def handle_http(self, request: Request) -> Response:
        if request.method == "GET" and self.graphql_ide and self.wants_graphql_ide(request):
            denied = await self.ensure_principal(request)
            if denied is not None:
                return denied
            response = await self.render_graphql_ide(request)
            response.headers["vary"] = "Accept"
            return response
        media_type = negotiate(request.headers.get("accept"))
        try:
            if media_type is None:
                raise HTTPError(
                    406,
                    f"Not acceptable: this endpoint responds with {GRAPHQL_RESPONSE_JSON} "
                    f"or {APPLICATION_JSON}.",
                    "NOT_ACCEPTABLE",
                )
            if request.method == "GET" and not self.allow_queries_via_get:
                raise HTTPError(
                    405,
                    "GraphQL over GET is disabled: send operations with POST.",
                    "METHOD_NOT_ALLOWED",
                    {"allow": "POST"},
                )
            if request.method == "GET":
                params = params_from_get(request)
            elif request.method == "POST":
                params = await params_from_post(request)
            else:
                raise HTTPError(
                    405,
                    f"Method {request.method} is not allowed: use POST (or GET for queries).",
                    "METHOD_NOT_ALLOWED",
                    {"allow": "GET, POST"},
                )
            params = await resolve_operation(request, params)
            return await self.execute_http(request, params, media_type)
        except HTTPError as exc:
            denied = await self.ensure_principal(request)
            if denied is not None:
                return denied
            return self.json_response(
                _error_body(exc.message, exc.code),
                exc.status,
                media_type or APPLICATION_JSON,
                exc.headers,
            )

    async def execute_http(
        self, request: Request, params: GraphQLParams, media_type: str
    ) -> Response:
        state = request.app.state
        scope_state = request.scope.setdefault("state", {})
        pending: PendingBearer | None = scope_state.get("bearer")
        principal = pending.principal if pending is not None else scope_state.get("principal")
        pool = getattr(state, "read_pool", None)
        plan: CompiledOperation | bool | None = False
        if pool is not None and principal is not None:
            plan = compiled.cached(params.query, params.operation_name)
            if plan and not scope_state.get("compiled_tried"):
                assert isinstance(plan, CompiledOperation)
                response = await self.execute_compiled(
                    request, plan, params, media_type, principal, pool
                )
                if response is not None:
                    scope_state.pop("bearer", None)  # verified by the statement itself
                    return response
        denied = await self.ensure_principal(request)
        if denied is not None:
            return denied
        response = await self.execute_resolvers(request, params, media_type)
        if (
            plan is False
            and pool is not None
            and response.status_code == 200
            and self._last_ok(request)
            and "mutation" not in params.query
            and "subscription" not in params.query
        ):
            settings = state.settings
            compiled.remember(
                self.schema._schema,  # type: ignore[attr-defined]
                params.query,
                params.operation_name,
                default_page_size=settings.default_page_size,
                max_page_size=settings.max_page_size,
            )
        return response

    @staticmethod
    async def ensure_principal(request: Request) -> Response | None:
        """Look up a token BearerAuth deferred; a 401 response if it is no longer valid."""
        from app.auth import service as auth_service
        from app.auth.errors import InvalidToken

        state = request.scope.setdefault("state", {})
        pending: PendingBearer | None = state.pop("bearer", None)
        if pending is None:
            return None
        app_state = request.app.state
        try:
            state["principal"] = await auth_service.resolve_token_direct(
                app_state.engine, token=pending.token, secret_key=app_state.settings.secret_key
            )
        except InvalidToken as exc:
            return unauthenticated(exc.message)
        return None

    @staticmethod
    def _last_ok(request: Request) -> bool:
        return bool(request.scope.get("state", {}).get("graphql_clean"))

    async def execute_compiled(
        self,
        request: Request,
        plan: CompiledOperation,
        params: GraphQLParams,
        media_type: str,
        principal: Principal,
        pool: ReadPool,
    ) -> Response | None:
        """The operation's compiled statement; None when the resolvers must answer."""
        body = await compiled_body(
            request.app.state,
            pool,
            plan,
            params.query,
            params.variables or {},
            principal,
            request.scope["state"]["token_digest"],
        )
        if body is None:
            return None
        return Response(
            body,
            status_code=200,
            headers={"content-type": f"{media_type}; charset=utf-8", "vary": "Accept"},
        )

    async def execute_resolvers(
        self, request: Request, params: GraphQLParams, media_type: str
    ) -> Response:
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        timeout = request.app.state.settings.request_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                result = await self.schema.execute(
                    params.query,
                    variable_values=params.variables,
                    context_value=context,
                    root_value=None,
                    operation_name=params.operation_name,
                    allowed_operation_types=_ALLOWED_OPERATIONS[request.method],
                    operation_extensions=params.extensions,
                )
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.MUTATION:
                raise HTTPError(
                    405,
                    "Mutations are not allowed over GET: send them with POST.",
                    "METHOD_NOT_ALLOWED",
                    {"allow": "POST"},
                ) from None
            message = "Subscriptions are served over WebSocket (graphql-transport-ws) only."
            result = ExecutionResult(data=None, errors=[GraphQLError(message)])
        except CannotGetOperationTypeError as exc:
            result = ExecutionResult(data=None, errors=[GraphQLError(exc.as_http_error_reason())])
        except MissingQueryError:  # _validated already refuses this; kept as a guard
            raise _bad_request("Missing the `query` parameter.") from None
        except TimeoutError:
            if context.has_session:
                # The operation was cancelled mid-flight: nothing of it may commit.
                await context.session.close()
            raise HTTPError(
                504,
                f"The operation took longer than {timeout:g} s and was cancelled; "
                "nothing was changed.",
                "TIMEOUT",
            ) from None

        body, status = classify(result)
        if status == 200 and not result.errors:
            request.scope.setdefault("state", {})["graphql_clean"] = True
        if media_type == APPLICATION_JSON and status == 400:
            status = 200  # legacy rule: a well-formed request's GraphQL errors are 200
        response = self.json_response(body, status, media_type)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    @staticmethod
    def json_response(
        body: object, status: int, media_type: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return Response(
            dumps(body),
            status_code=status,
            headers={
                "content-type": f"{media_type}; charset=utf-8",
                "vary": "Accept",
                **(headers or {}),
            },
        )


async def compiled_body(
    app_state: Any,
    pool: ReadPool,
    plan: CompiledOperation,
    query: str,
    variables: dict[str, Any],
    principal: Principal,
    digest: bytes,
) -> bytes | None:
    """The response body of a compiled read; None when the resolvers must answer.

    Raises :class:`HTTPError` (504) when the statement outlives the request timeout.
    """
    settings = app_state.settings
    try:
        values = plan.bind(variables)
    except compiled.Fallback:
        return None
    priced = known_cost(query, plan.operation_name, variables, settings.default_page_size)
    if priced is None or priced[0] > settings.max_query_cost:
        return None  # not priced yet for these page sizes, or refused: the full path
    args = (
        principal.organization_id,
        principal.user_id,
        principal.is_admin,
        digest,
        principal.token_id,
        *values,
    )
    timeout = settings.request_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            async with pool.acquire(Pin(principal.organization_id, principal.user_id)) as conn:
                pool.announce(plan.plan.sql, args)
                text: str | None = await conn.fetchval(plan.plan.sql, *args)
                if text is None:
                    # The connection does not act as this tenant: discard it.
                    raise compiled.PinMismatch
    except TimeoutError:
        raise HTTPError(
            504,
            f"The operation took longer than {timeout:g} s and was cancelled; nothing was changed.",
            "TIMEOUT",
        ) from None
    except (compiled.PinMismatch, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # E.g. a non-finite float the resolvers report as a field error, or a
        # connection the server closed: the resolvers' own pool handles that.
        log.warning("compiled read fell back to the resolvers: %r", exc)
        return None
    if not text:
        return None  # the token changed since its last lookup: look it up
    return b'{"data":' + text.encode() + b"}"


class CompiledReads:
    """Outermost middleware: a POST of a compiled document with a remembered bearer
    token is answered here, without the framework's routing, middleware and request
    objects (about a quarter of the CPU of such a request). Everything else — and
    any request this path cannot answer exactly as the view would — goes on to the
    app unchanged, the body it read replayed.
    """

    def __init__(self, app: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        app_state = scope["app"].state
        pool: ReadPool | None = getattr(app_state, "read_pool", None)
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        content_type = headers.get(b"content-type")
        if pool is None or not authorization or content_type is None:
            await self.app(scope, receive, send)
            return
        media, ct_params = _content_type(content_type.decode("latin-1"))
        accept = headers.get(b"accept")
        media_type = negotiate(accept.decode("latin-1") if accept is not None else None)
        settings = app_state.settings
        principal = digest = None
        if (
            media == APPLICATION_JSON
            and ct_params.get("charset", "utf-8") in _UTF8
            and media_type is not None
            and not settings.persisted_only
        ):
            from app.auth import service as auth_service
            from app.auth.errors import InvalidToken

            try:
                token = auth_service.parse_bearer(authorization.decode("latin-1"))
                assert token is not None
                digest = auth_service.token_digest(token, settings.secret_key)
                principal = auth_service.recent_principal(digest)
            except InvalidToken:
                principal = None
        if principal is None or digest is None or media_type is None:
            await self.app(scope, receive, send)
            return
        # The body, within the size limit; kept for the app if this path declines.
        messages: list[Message] = []
        body = b""
        limit = settings.max_request_bytes
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > limit or not message.get("more_body", False):
                break
        answer = None
        if len(body) <= limit and messages[-1]["type"] == "http.request":
            answer = await self._answer(scope, app_state, pool, body, principal, digest, media_type)
        if answer is None:

            async def replay() -> Message:
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)
            return
        status, payload, content_type_out = answer
        request_id = request_id_for(headers.get(b"x-request-id"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", content_type_out),
                    (b"vary", b"Accept"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    async def _answer(
        scope: Scope,
        app_state: Any,
        pool: ReadPool,
        body: bytes,
        principal: Principal,
        digest: bytes,
        media_type: str,
    ) -> tuple[int, bytes, bytes] | None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("extensions") is not None:
            return None
        try:
            params = _validated(
                data.get("query"), data.get("operationName"), data.get("variables"), None
            )
        except HTTPError:
            return None
        plan = compiled.cached(params.query, params.operation_name)
        if not plan:
            return None
        assert isinstance(plan, CompiledOperation)
        content_type = f"{media_type}; charset=utf-8".encode()
        # Declined after this, the view must not run the statement a second time.
        scope.setdefault("state", {})["compiled_tried"] = True
        try:
            payload = await compiled_body(
                app_state, pool, plan, params.query, params.variables or {}, principal, digest
            )
        except HTTPError as exc:
            return exc.status, dumps(_error_body(exc.message, exc.code)), content_type
        if payload is None:
            return None
        return 200, payload, content_type


async def resolve_operation(request: Request, params: GraphQLParams) -> GraphQLParams:
    """Fill in a persisted document by hash; in persisted-only mode refuse unknown ones."""
    from app.operations.service import document_hash

    state = request.app.state
    store = state.operations
    if params.document_id is not None:
        document = await store.get(params.document_id)
        if document is None:
            raise HTTPError(
                400,
                "PersistedQueryNotFound",
                "PERSISTED_QUERY_NOT_FOUND",
            )
        if params.query and document_hash(params.query) != params.document_id:
            raise _bad_request("The query does not match its sha256Hash.")
        return replace(params, query=document)
    if state.settings.persisted_only and await store.get(document_hash(params.query)) is None:
        raise HTTPError(
            400,
            "Only registered operations are accepted here; register this document with "
            "`threadline operations register`.",
            "PERSISTED_QUERY_REQUIRED",
        )
    return params
