"""The reference `graphql-ws` client (npm) subscribes over graphql-transport-ws and
receives the events of parameter edits made over HTTP.

Runs ``tests/graphql_ws_client/subscribe.mjs`` (graphql-ws ``createClient`` on the
``ws`` package) against the live test server; ``npm ci`` first when
``node_modules/`` is missing. Skips only when ``node`` or ``npm`` is not on PATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import Demo, LiveServer
from tests.test_read_api import gid
from tests.test_write_api import UPDATE

CLIENT_DIR = Path(__file__).parent / "graphql_ws_client"


async def _edit(base_url: str, demo: Demo, value: float, symbol: str = "m_payload") -> int:
    q = """query($p: ID!, $s: String!) {
      project(id: $p) { parameter(symbol: $s) { id version } } }"""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as c:
        headers = {"Authorization": f"Bearer {demo.token}"}
        r = await c.post(
            "/graphql",
            json={"query": q, "variables": {"p": gid("Project", demo.project_id), "s": symbol}},
            headers=headers,
        )
        p = r.json()["data"]["project"]["parameter"]
        r = await c.post(
            "/graphql",
            json={
                "query": UPDATE,
                "variables": {
                    "input": {"id": p["id"], "expectedVersion": p["version"], "number": value}
                },
            },
            headers=headers,
        )
        body = r.json()["data"]["parameterUpdate"]
        assert body["__typename"] == "ParameterChangeSuccess", body
        return int(body["sequence"])


def _node_and_npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the graphql-ws reference client needs `node` and `npm` on PATH")
    return node, npm


def _npm_env() -> dict[str, str]:
    return {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}


def _install(npm: str) -> None:
    modules = CLIENT_DIR / "node_modules"
    if all((modules / pkg).is_dir() for pkg in ("graphql-ws", "ws", "graphql")):
        return
    install = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=CLIENT_DIR,
        env=_npm_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert install.returncode == 0, f"npm ci failed:\n{install.stdout}\n{install.stderr}"


async def _wait_for_line(stream: asyncio.StreamReader, wanted: str, seen: list[str]) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            raise AssertionError(f"client exited before {wanted!r}; stderr: {seen}")
        line = raw.decode().strip()
        seen.append(line)
        if line == wanted:
            return


async def test_graphql_ws_reference_client_receives_parameter_events(
    demo: Demo, live_server: LiveServer
) -> None:
    node, npm = _node_and_npm()
    await asyncio.to_thread(_install, npm)
    ws_url = live_server.base_url.replace("http://", "ws://") + "/graphql"
    project = gid("Project", demo.project_id)
    proc = await asyncio.create_subprocess_exec(
        *[node, "subscribe.mjs", ws_url, demo.token, project, "2", "20"],
        cwd=CLIENT_DIR,
        env=_npm_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    progress: list[str] = []
    try:
        # `connection_ack` received, `subscribe` sent; give the server a moment to
        # register the subscription before editing.
        await asyncio.wait_for(_wait_for_line(proc.stderr, "subscribed", progress), 15)
        await asyncio.sleep(0.5)
        first = await _edit(live_server.base_url, demo, 21.5)
        second = await _edit(live_server.base_url, demo, 22.5)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 25)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = f"stdout:\n{stdout.decode()}\nstderr:\n{progress}\n{stderr.decode()}"
    assert proc.returncode == 0, output
    events = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert [(e["sequence"], e["kind"]) for e in events] == [
        (first, "parameter.changed"),
        (second, "parameter.changed"),
    ], output
    assert second == first + 1
    assert all(e["projectId"] == project for e in events)
    assert all(e["actor"]["email"].startswith("demo-") for e in events)
    edited = [e["parameterChange"]["edited"] for e in events]
    assert [[(p["symbol"], p["newValue"]) for p in e] for e in edited] == [
        [("m_payload", 21.5)],
        [("m_payload", 22.5)],
    ]
    recomputed = events[0]["parameterChange"]["recomputed"]
    assert [r["symbol"] for r in recomputed] == ["m_dry", "m_prop", "m_wet"]
