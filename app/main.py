"""The ASGI application: Starlette routes, lifespan (engine, Redis), GraphQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.auth import service as auth_service
from app.auth.errors import InvalidToken
from app.db import announce_to_engine, make_engine, make_sessionmaker
from app.embedded import EmbeddedServices, start_embedded
from app.graphql.http import CompiledReads, PendingBearer, ThreadlineGraphQL, unauthenticated
from app.graphql.lanes import RAW_SEND
from app.graphql.readpool import ReadPool
from app.graphql.schema import build_schema
from app.live import Hub
from app.logging_setup import request_id_for, request_id_var
from app.operations.service import OperationStore
from app.settings import Settings, get_settings
from app.trade_studies.csv_export import routes as trade_study_routes

log = logging.getLogger("threadline")


class RequestIdMiddleware:
    """Accept a sane incoming X-Request-ID or mint one; echo it; bind it for logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(dict(scope.get("headers") or []).get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            # The server's own send, for the live hub's direct lane (app.graphql.lanes).
            scope[RAW_SEND] = send
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BearerAuth:
    """Resolve ``Authorization: Bearer`` before GraphQL runs; a bad token is a 401.

    A token whose last lookup succeeded is not looked up here: the view gets it as a
    :class:`PendingBearer`. A compiled read verifies it inside its own statement (one
    round trip instead of two); anything else verifies it first
    (:meth:`ThreadlineGraphQL.ensure_principal`), so it is still refused on the very
    next request after it was revoked.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"authorization")
            if header:
                app_state = scope["app"].state
                state = scope.setdefault("state", {})
                try:
                    token = auth_service.parse_bearer(header.decode("latin-1"))
                    assert token is not None
                    digest = auth_service.token_digest(token, app_state.settings.secret_key)
                    recent = auth_service.recent_principal(digest)
                    if recent is not None:
                        state["bearer"] = PendingBearer(token, digest, recent)
                    else:
                        state["principal"] = await auth_service.resolve_token_direct(
                            app_state.engine, token=token, secret_key=app_state.settings.secret_key
                        )
                    state["token_digest"] = digest
                except InvalidToken as exc:
                    await unauthenticated(exc.message)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks: dict[str, str] = {}
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, never raises
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await request.app.state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    schema = build_schema(settings)
    graphql_app = ThreadlineGraphQL(
        schema,
        graphql_ide="graphiql",
        allow_queries_via_get=True,
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedServices | None = None
        database_url, redis_url = settings.database_url, settings.redis_url
        if database_url is None or redis_url is None:
            # Zero-config single-process start (`uvicorn app.main:app`); the CLI
            # starts them in the parent instead so several workers share them.
            embedded = start_embedded(
                settings.data_dir, database_url=database_url, redis_url=redis_url
            )
            database_url, redis_url = embedded.database_url, embedded.redis_url
            from app import migrate

            migrate.upgrade(str(database_url))
        assert database_url is not None and redis_url is not None
        engine = make_engine(
            database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.read_pool = None
        if settings.compiled_reads:
            app.state.read_pool = ReadPool(
                engine.url,
                size=settings.read_pool_size,
                on_statement=lambda sql, params: announce_to_engine(engine, sql, params),
            )
        app.state.redis = aioredis.from_url(redis_url)
        app.state.operations = OperationStore(app.state.sessionmaker)
        app.state.hub = Hub(
            redis_url=redis_url,
            sessionmaker=app.state.sessionmaker,
            queue_size=settings.live_queue_size,
            tick_seconds=settings.live_tick_seconds,
            auth_check_seconds=settings.live_auth_check_seconds,
        )
        await app.state.hub.start()
        try:
            yield
        finally:
            await app.state.hub.stop()
            if app.state.read_pool is not None:
                await app.state.read_pool.close()
            await app.state.redis.aclose()
            await engine.dispose()
            if embedded is not None:
                embedded.stop()

    graphql_endpoint = BearerAuth(graphql_app)
    app = Starlette(
        routes=[
            # Every method reaches the view: it answers 405 (with Allow) in GraphQL's shape.
            Route("/graphql", graphql_endpoint),
            WebSocketRoute("/graphql", graphql_app),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *trade_study_routes,
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestIdMiddleware)
    # Outermost (inside Starlette's error handler): compiled reads skip the rest.
    app.add_middleware(CompiledReads)
    return app


def app_factory() -> Starlette:
    """Factory for ``uvicorn --factory app.main:app_factory`` (used by the CLI)."""
    from app.logging_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
