"""The `threadline` command, run as a real subprocess against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "threadline"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_help_and_unknown_action() -> None:
    r = run("--help")
    assert r.returncode == 0
    for command in (
        "serve",
        "worker",
        "migrate",
        "dev",
        "demo",
        "user",
        "token",
        "export-schema",
        "operations",
    ):
        assert command in r.stdout
    r = run(
        "migrate",
        "sideways",
        env={"DATABASE_URL": "postgresql+asyncpg://x@/y", "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert r.returncode == 2 and "unknown action" in r.stderr


def test_export_schema_matches_committed(tmp_path: Path) -> None:
    r = run("export-schema")
    assert r.returncode == 0
    assert r.stdout == (ROOT / "schema.graphql").read_text()
    out = tmp_path / "s.graphql"
    assert run("export-schema", "--output", str(out)).returncode == 0
    assert out.read_text() == r.stdout


def test_user_token_and_operations_commands(db_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "THREADLINE_SECRET_KEY": SECRET}
    email = f"cli-{os.getpid()}@example.test"
    r = run("user", "create", email, "--password", "long enough pw", "--org", "CLI Org", env=env)
    assert r.returncode == 0, r.stderr
    r = run("user", "create", email, "--password", "long enough pw", "--org", "CLI Org", env=env)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = run("token", "create", email, "--name", "ci", "--expires", "7", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("tla_") and len(r.stdout.strip().splitlines()) == 1
    assert run("token", "create", "nobody@x.test", env=env).returncode == 1
    doc = tmp_path / "me.graphql"
    doc.write_text("query Me { viewer { email } }")
    r = run("operations", "register", str(doc), "--client", "web", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "Me"
    bad = tmp_path / "bad.graphql"
    bad.write_text("query { nope }")
    r = run("operations", "register", str(bad), env=env)
    assert r.returncode == 1 and "invalid document" in r.stderr
