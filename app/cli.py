"""The ``threadline`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from app.settings import Settings, get_settings

cli = typer.Typer(
    help="Threadline: the digital thread of a product, served over GraphQL.",
    no_args_is_help=True,
    add_completion=False,
)
user_cli = typer.Typer(help="Manage users.", no_args_is_help=True)
token_cli = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
cli.add_typer(user_cli, name="user")
cli.add_typer(token_cli, name="token")
operations_cli = typer.Typer(
    help="Persisted (allow-listed) operations for THREADLINE_PERSISTED_ONLY mode.",
    no_args_is_help=True,
)
cli.add_typer(operations_cli, name="operations")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where embedded PostgreSQL/Redis keep data [.threadline]."),
]
Host = Annotated[str | None, typer.Option(help="Interface to bind [127.0.0.1].")]
Port = Annotated[int | None, typer.Option(help="Port to bind [8000].")]


def _err(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings(data_dir: Path | None = None) -> Settings:
    if data_dir is not None:
        os.environ["THREADLINE_DATA_DIR"] = str(data_dir)
    get_settings.cache_clear()
    return get_settings()


@contextmanager
def services(settings: Settings) -> Iterator[Settings]:
    """Start embedded services for missing URLs and export the URLs to child processes."""
    from app.embedded import start_embedded
    from app.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    embedded = None
    if settings.database_url is None or settings.redis_url is None:
        typer.secho(f"starting embedded services in {settings.data_dir.resolve()}", err=True)
        embedded = start_embedded(
            settings.data_dir, database_url=settings.database_url, redis_url=settings.redis_url
        )
        assert embedded.database_url and embedded.redis_url
        os.environ["DATABASE_URL"] = embedded.database_url
        os.environ["REDIS_URL"] = embedded.redis_url
        get_settings.cache_clear()
        settings = get_settings()
    try:
        yield settings
    finally:
        if embedded is not None:
            embedded.stop()


def _migrate(settings: Settings) -> None:
    from app import migrate

    assert settings.database_url is not None
    migrate.upgrade(settings.database_url)


def uvicorn_ws_options(settings: Settings) -> dict[str, Any]:
    """WebSocket options of every api process. The websockets sans-I/O implementation
    is named (not ``auto``) because the live hub's direct lane needs it
    (app.graphql.lanes; with another implementation events take the slower path)."""
    return {"ws": "websockets-sansio", "ws_per_message_deflate": settings.ws_compression}


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "app.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=True,
        lifespan="on",
        **uvicorn_ws_options(settings),
    )


@cli.command()
def serve(
    host: Host = None,
    port: Port = None,
    workers: Annotated[int, typer.Option(help="API processes.", min=1, max=64)] = 1,
    data_dir: DataDir = None,
) -> None:
    """Run the API server (uvicorn). Uses embedded services when no URLs are set."""
    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        _run_uvicorn(settings, host or settings.host, port or settings.port, workers)


def _worker_command(processes: int, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.actors",
        "--processes",
        str(processes),
        "--threads",
        str(threads),
    ]


@cli.command()
def worker(
    processes: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    threads: Annotated[int, typer.Option(help="Threads per process.", min=1, max=64)] = 4,
    data_dir: DataDir = None,
) -> None:
    """Run Dramatiq workers for trade studies."""
    settings = _settings(data_dir)
    with services(settings):
        code = subprocess.call(_worker_command(processes, threads))
    raise typer.Exit(code)


@cli.command()
def migrate(
    action: Annotated[
        str, typer.Argument(help="upgrade | downgrade | current | check")
    ] = "upgrade",
    revision: Annotated[str | None, typer.Option(help="Target revision.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Apply or inspect database migrations (Alembic)."""
    from app import migrate as m

    if action not in {"upgrade", "downgrade", "current", "check"}:
        raise _err(f"unknown action {action!r}; use upgrade, downgrade, current or check", 2)
    settings = _settings(data_dir)
    with services(settings) as settings:
        url = settings.database_url
        assert url is not None
        try:
            if action == "upgrade":
                m.upgrade(url, revision or "head")
            elif action == "downgrade":
                if revision is None:
                    raise _err("downgrade needs --revision (e.g. -1 or base)", 2)
                m.downgrade(url, revision)
            elif action == "current":
                m.current(url)
            else:
                m.check(url)
        except typer.Exit:
            raise
        except Exception as exc:
            raise _err(str(exc)) from exc
    typer.echo(f"migrate {action}: ok", err=True)


@cli.command()
def demo(data_dir: DataDir = None) -> None:
    """Load the smallsat demo project; print the demo user's email, password and a token."""
    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        token = asyncio.run(_load_demo(settings))
    _print_demo_credentials(token)


async def _load_demo(settings: Settings) -> str:
    from app.db import make_engine, make_sessionmaker, unit_of_work
    from app.demo.load import load_demo

    assert settings.database_url is not None
    engine = make_engine(settings.database_url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as session:
            result = await load_demo(session, secret_key=settings.secret_key)
        return str(result.token)
    finally:
        await engine.dispose()


def _print_demo_credentials(token: str) -> None:
    from app.demo.model import DEMO_USER

    typer.echo("Demo project 'LEO-1 Smallsat' is loaded.")
    typer.echo(f"  email:    {DEMO_USER['email']}")
    typer.echo(f"  password: {DEMO_USER['password']}")
    typer.echo(f"  token:    {token}")


@cli.command()
def dev(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    demo_data: Annotated[bool, typer.Option("--demo/--no-demo", help="Load the demo.")] = True,
) -> None:
    """Everything in one command: embedded services, migrations, demo, API and a worker."""
    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        if demo_data:
            _print_demo_credentials(asyncio.run(_load_demo(settings)))
        worker_proc = subprocess.Popen(_worker_command(1, 2))
        host, port = host or settings.host, port or settings.port
        typer.secho(f"GraphiQL: http://{host}:{port}/graphql  (Ctrl-C stops all)", bold=True)
        try:
            _run_uvicorn(settings, host, port, 1)
        finally:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker_proc.kill()


@user_cli.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="Sign-in email.")],
    password: Annotated[
        str, typer.Option(help="Password (≥ 8 characters).", prompt=True, hide_input=True)
    ],
    org: Annotated[str, typer.Option(help="Organization name (created if new).")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Organization administrator.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a user (and the organization if it does not exist)."""
    from app.auth.errors import AuthError
    from app.auth.service import create_user

    async def run(settings: Settings) -> str:
        from app.db import make_engine, make_sessionmaker, unit_of_work

        assert settings.database_url is not None
        engine = make_engine(settings.database_url)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                user = await create_user(
                    session,
                    email=email,
                    password=password,
                    organization=org,
                    name=name,
                    is_admin=admin,
                )
                return str(user.id)
        finally:
            await engine.dispose()

    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        try:
            user_id = asyncio.run(run(settings))
        except AuthError as exc:
            raise _err(exc.message) from exc
    typer.echo(f"created user {email} ({user_id})", err=True)


@token_cli.command("create")
def token_create(
    email: Annotated[str, typer.Argument(help="Owner of the token.")],
    name: Annotated[str, typer.Option(help="Label shown in token lists.")] = "cli",
    expires: Annotated[int | None, typer.Option(help="Expire after DAYS days.", min=1)] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Scope: read only.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an API token; prints only the token on stdout."""
    from app.auth.service import issue_token, user_by_email

    async def run(settings: Settings) -> str | None:
        from app.db import make_engine, make_sessionmaker, unit_of_work

        assert settings.database_url is not None
        engine = make_engine(settings.database_url)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                user = await user_by_email(session, email=email)
                if user is None:
                    return None
                issued = await issue_token(
                    session,
                    user=user,
                    secret_key=settings.secret_key,
                    kind="api",
                    name=name,
                    expires_in=timedelta(days=expires) if expires else None,
                    scopes=("read",) if read_only else ("read", "write"),
                )
                return issued.token
        finally:
            await engine.dispose()

    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        token = asyncio.run(run(settings))
    if token is None:
        raise _err(f"no user with email {email}")
    typer.echo(token)


@operations_cli.command("register")
def operations_register(
    files: Annotated[list[Path], typer.Argument(help=".graphql files, one document each.")],
    client: Annotated[str, typer.Option(help="Client name recorded with them.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Validate documents against the schema and allow-list them; prints hash and names."""
    from app.graphql.schema import build_schema
    from app.operations.service import InvalidDocument, register

    documents = []
    for f in files:
        try:
            documents.append(f.read_text())
        except OSError as exc:
            raise _err(f"cannot read {f}: {exc}") from exc

    async def run(settings: Settings) -> list[str]:
        from app.db import make_engine, make_sessionmaker, unit_of_work

        assert settings.database_url is not None
        engine = make_engine(settings.database_url)
        try:
            async with unit_of_work(make_sessionmaker(engine)) as session:
                out = await register(
                    session,
                    schema=build_schema(settings)._schema,
                    documents=documents,
                    client=client,
                )
            return [f"{r.id}  {r.name or '-'}  {'new' if r.created else 'known'}" for r in out]
        finally:
            await engine.dispose()

    settings = _settings(data_dir)
    with services(settings) as settings:
        _migrate(settings)
        try:
            lines = asyncio.run(run(settings))
        except InvalidDocument as exc:
            raise _err(f"invalid document: {exc}") from exc
    for line in lines:
        typer.echo(line)


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path | None, typer.Option(help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Print the GraphQL schema (SDL)."""
    from app.graphql.schema import export_sdl

    sdl = export_sdl()
    if output is None:
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl)
        typer.echo(f"wrote {output}", err=True)


def main() -> None:
    cli()
