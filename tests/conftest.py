"""Test harness: real PostgreSQL and Redis, the real app over real HTTP.

PostgreSQL and Redis are the embedded ones (started once per session under a
temporary directory) unless ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` are set.
Either way each session migrates a fresh database of its own with Alembic, and the
app runs in a real uvicorn server on a free loopback port. Tests isolate by
creating their own organizations (tenancy keeps them apart), so no per-test
database is needed; tests that need an empty database make a scratch one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import migrate
from app.auth import service as auth_service
from app.auth.models import User
from app.cli import uvicorn_ws_options
from app.db import make_engine, make_sessionmaker
from app.embedded import EmbeddedPostgres, EmbeddedRedis
from app.main import create_app
from app.projects.models import Project, ProjectMember
from app.settings import Settings

SECRET = "test-secret-key-0123456789"


def _asyncpg_dsn(sa_url: str) -> dict[str, Any]:
    url = make_url(sa_url)
    kw: dict[str, Any] = {
        "user": url.username or "postgres",
        "password": url.password,
        "database": url.database,
        "host": url.query.get("host") or url.host or "localhost",
        "port": url.port or 5432,
    }
    return kw


def _with_database(sa_url: str, database: str) -> str:
    url = make_url(sa_url).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tl-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(tmp_root: Path) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (``postgres``)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield _with_database(external, make_url(external).database or "postgres")
        return
    pg = EmbeddedPostgres(tmp_root / "pg")
    pg.start()
    yield pg.url("postgres")
    pg.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    r = EmbeddedRedis(tmp_root / "redis")
    url = r.start()
    yield url
    r.stop()


@dataclass
class ScratchDatabases:
    server_url: str
    created: list[str] = field(default_factory=list)

    async def create(self, prefix: str = "tl_scratch") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(**_asyncpg_dsn(self.server_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return _with_database(self.server_url, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(**_asyncpg_dsn(self.server_url))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def scratch_dbs(pg_server_url: str) -> AsyncIterator[ScratchDatabases]:
    dbs = ScratchDatabases(pg_server_url)
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def db_url(scratch_dbs: ScratchDatabases) -> str:
    """A freshly migrated database for the session (Alembic is the only way in)."""
    url = await scratch_dbs.create("tl_test")
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture(scope="session")
def settings(db_url: str, redis_url: str) -> Settings:
    return Settings(database_url=db_url, redis_url=redis_url, secret_key=SECRET)


@pytest.fixture(scope="session")
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url, pool_size=5, max_overflow=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    base_url: str
    app: Any


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """The real app in a real uvicorn server (own thread and event loop)."""
    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **uvicorn_ws_options(settings),  # as `threadline serve` runs (no permessage-deflate)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield LiveServer(base_url=f"http://127.0.0.1:{port}", app=app)
    server.should_exit = True
    thread.join(timeout=10)


@contextmanager
def resolvers_only_on(live_server: LiveServer) -> Iterator[None]:
    """Queries meanwhile take the resolvers (no compiled reads)."""
    pool = live_server.app.state.read_pool
    live_server.app.state.read_pool = None
    try:
        yield
    finally:
        live_server.app.state.read_pool = pool


@pytest.fixture
def resolvers_only(live_server: LiveServer) -> Iterator[None]:
    """Every query of the test takes the resolvers (no compiled reads)."""
    with resolvers_only_on(live_server):
        yield


@contextmanager
def count_statements(live_server: LiveServer) -> Iterator[list[str]]:
    """SQL statements the server sends meanwhile (engine listeners see every one,
    including those sent straight through asyncpg)."""
    engine = live_server.app.state.engine.sync_engine
    statements: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


@dataclass
class GQLResponse:
    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])

    def ok(self) -> Any:
        assert self.status == 200 and not self.errors, (self.status, self.body)
        return self.data


GraphQLCall = Callable[..., Awaitable[GQLResponse]]


@pytest.fixture(scope="session")
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def graphql(http: httpx.AsyncClient) -> GraphQLCall:
    """POST a GraphQL operation over HTTP; returns status, body and headers."""

    async def call(
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> GQLResponse:
        hdrs = {"Accept": "application/graphql-response+json, application/json"}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        resp = await http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=hdrs
        )
        return GQLResponse(status=resp.status_code, body=resp.json(), headers=resp.headers)

    return call


# --- factories -----------------------------------------------------------------


@dataclass
class Account:
    user: User
    token: str
    password: str


@dataclass
class Factory:
    sessionmaker: async_sessionmaker[AsyncSession]

    async def account(
        self, *, org: str | None = None, admin: bool = False, email: str | None = None
    ) -> Account:
        password = "correct horse battery"
        async with self.sessionmaker() as session:
            user = await auth_service.create_user(
                session,
                email=email or f"u-{uuid.uuid4().hex[:10]}@example.test",
                password=password,
                organization=org or f"Org {uuid.uuid4().hex[:10]}",
                is_admin=admin,
            )
            issued = await auth_service.issue_token(
                session, user=user, secret_key=SECRET, kind="api", name="test"
            )
            await session.commit()
        return Account(user=user, token=issued.token, password=password)

    async def project(self, owner: Account, *, name: str | None = None) -> Project:
        async with self.sessionmaker() as session:
            project = Project(
                organization_id=owner.user.organization_id,
                name=name or f"Project {uuid.uuid4().hex[:8]}",
            )
            session.add(project)
            await session.flush()
            session.add(ProjectMember(project_id=project.id, user_id=owner.user.id, role="owner"))
            await session.commit()
        return project


@pytest.fixture
def factory(sessionmaker: async_sessionmaker[AsyncSession]) -> Factory:
    return Factory(sessionmaker)


@dataclass
class Demo:
    token: str
    project_id: uuid.UUID
    user_id: uuid.UUID
    org: str


@pytest.fixture
async def demo(sessionmaker: async_sessionmaker[AsyncSession]) -> Demo:
    """A fresh copy of the smallsat demo in its own organization."""
    from app.demo.load import load_demo

    tag = uuid.uuid4().hex[:8]
    async with sessionmaker() as s:
        result = await load_demo(
            s, secret_key=SECRET, email=f"demo-{tag}@example.test", organization=f"Demo {tag}"
        )
        await s.commit()
    return Demo(result.token, result.project_id, result.user_id, f"Demo {tag}")
