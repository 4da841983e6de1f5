"""Live subscriptions over real WebSockets against real uvicorn processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.embedded import EmbeddedRedis
from tests.apiproc import api_process
from tests.conftest import SECRET, Demo, Factory, LiveServer
from tests.test_read_api import gid
from tests.test_write_api import UPDATE
from tests.wsclient import GqlWs

PARAM_CHANGED = """subscription($p: ID!, $after: Int) {
  parameterChanged(projectId: $p, after: $after) {
  sequence edited { symbol newValue } recomputed { symbol oldValue newValue unit version }
  requirements { key oldCompliance newCompliance flipped } actor { email } } }"""
EVENTS = """subscription($p: ID!, $after: Int) { projectEvents(projectId: $p, after: $after) {
  sequence kind } }"""


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


@pytest.fixture(scope="module")
def two_processes(db_url: str, redis_url: str) -> Any:
    with api_process(db_url, redis_url, SECRET) as a, api_process(db_url, redis_url, SECRET) as b:
        yield a, b


async def test_edit_reaches_subscribers_on_two_processes(
    demo: Demo, two_processes: tuple[str, str], live_server: LiveServer
) -> None:
    a, b = two_processes
    clients = [await GqlWs.connect(url, demo.token) for url in (a, b)]
    try:
        ops = []
        for c in clients:
            assert await c.acked()
            ops.append(await c.subscribe(PARAM_CHANGED, {"p": gid("Project", demo.project_id)}))
        await asyncio.sleep(0.3)  # subscriptions registered
        seq = await _edit(live_server.base_url, demo, 24.0)  # a third process
        for c, op in zip(clients, ops, strict=True):
            data = (await c.data(op))["parameterChanged"]
            assert data["sequence"] == seq
            assert data["edited"] == [{"symbol": "m_payload", "newValue": 24.0}]
            assert [r["symbol"] for r in data["recomputed"]] == ["m_dry", "m_prop", "m_wet"]
            assert all(r["unit"] == "kg" and r["version"] == 2 for r in data["recomputed"])
            flipped = [r for r in data["requirements"] if r["flipped"]]
            assert flipped == [
                {
                    "key": "REQ-MASS-001",
                    "oldCompliance": "PASS",
                    "newCompliance": "FAIL",
                    "flipped": True,
                }
            ]
            assert data["actor"]["email"].startswith("demo-")
    finally:
        for c in clients:
            await c.close()


async def test_after_replays_exactly_the_missed_events_in_order(
    demo: Demo, live_server: LiveServer
) -> None:
    c = await GqlWs.connect(live_server.base_url, demo.token)
    assert await c.acked()
    op = await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    await asyncio.sleep(0.2)
    first = await _edit(live_server.base_url, demo, 21.0)
    assert (await c.data(op))["projectEvents"] == {"sequence": first, "kind": "parameter.changed"}
    await c.close()  # disconnect; three edits happen meanwhile
    missed = [await _edit(live_server.base_url, demo, 22.0 + i) for i in range(3)]
    c = await GqlWs.connect(live_server.base_url, demo.token)
    assert await c.acked()
    op = await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id), "after": first})
    got = [(await c.data(op))["projectEvents"]["sequence"] for _ in range(3)]
    assert got == missed == [first + 1, first + 2, first + 3]
    live = await _edit(live_server.base_url, demo, 30.0)
    assert (await c.data(op))["projectEvents"]["sequence"] == live
    with pytest.raises(TimeoutError):  # no duplicates trail behind
        await c.next(op, wait=0.5)
    await c.close()


async def test_other_organization_cannot_subscribe_and_bad_tokens_are_refused(
    demo: Demo, live_server: LiveServer, factory: Factory
) -> None:
    stranger = await factory.account()
    c = await GqlWs.connect(live_server.base_url, stranger.token)
    assert await c.acked()
    op = await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    msg = await c.next(op)
    # An execution error: delivered as `next` with errors, no data (graphql-ws spec).
    assert msg["type"] == "next"
    assert msg["payload"]["data"] is None
    assert msg["payload"]["errors"][0]["message"] == "project not found"
    assert msg["payload"]["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
    assert (await c.next(op))["type"] == "complete"
    await _edit(live_server.base_url, demo, 25.0)
    with pytest.raises(TimeoutError):  # and nothing arrives afterwards
        await c.next(op, wait=0.5)
    await c.close()

    bad = await GqlWs.connect(live_server.base_url, "tla_forged-token")
    assert await bad.closed == (4403, "Forbidden")
    anon = await GqlWs.connect(live_server.base_url)
    assert await anon.acked()
    op = await anon.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    msg = await anon.next(op)
    assert msg["payload"]["errors"][0]["message"] == "project not found"
    await anon.close()


async def test_stalled_client_does_not_delay_others(demo: Demo, live_server: LiveServer) -> None:
    stalled = await GqlWs.connect(live_server.base_url, demo.token)
    assert await stalled.acked()
    await stalled.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    stalled._reader.cancel()  # stop reading: its socket buffers fill up
    fast = await GqlWs.connect(live_server.base_url, demo.token)
    assert await fast.acked()
    op = await fast.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    await asyncio.sleep(0.2)
    sequences = []
    latencies = []
    for i in range(30):
        t0 = time.perf_counter()
        sequences.append(await _edit(live_server.base_url, demo, 20.0 + i % 5 + 0.5))
        got = (await fast.data(op, wait=5))["projectEvents"]["sequence"]
        latencies.append(time.perf_counter() - t0)
        assert got == sequences[-1]
    assert max(latencies) < 2.0
    await fast.close()
    await stalled.conn.close()


async def test_redis_restart_mid_stream_loses_nothing(
    demo: Demo, db_url: str, tmp_path: Path, live_server: LiveServer
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    try:
        with api_process(db_url, url, SECRET) as api:
            c = await GqlWs.connect(api, demo.token)
            assert await c.acked()
            op = await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
            await asyncio.sleep(0.3)
            seqs = [await _edit(api, demo, 21.0)]
            assert (await c.data(op))["projectEvents"]["sequence"] == seqs[0]
            redis.stop()
            # Writes keep working without Redis; events are durable in PostgreSQL.
            seqs += [await _edit(api, demo, 22.0 + i) for i in range(3)]
            redis.start()
            seqs.append(await _edit(api, demo, 40.0))
            got = [(await c.data(op, wait=15))["projectEvents"]["sequence"] for _ in range(4)]
            assert got == seqs[1:]
            await c.close()
    finally:
        redis.stop()


async def test_revoked_token_closes_its_socket(
    demo: Demo, db_url: str, redis_url: str, sessionmaker: Any
) -> None:
    from sqlalchemy import update

    from app.auth.models import ApiToken
    from app.auth.service import hash_token

    with api_process(
        db_url,
        redis_url,
        SECRET,
        THREADLINE_LIVE_AUTH_CHECK_SECONDS="0.5",
        THREADLINE_LIVE_TICK_SECONDS="0.25",
    ) as api:
        c = await GqlWs.connect(api, demo.token)
        assert await c.acked()
        await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
        await asyncio.sleep(0.3)
        async with sessionmaker() as s:
            await s.execute(
                update(ApiToken)
                .where(ApiToken.token_hash == hash_token(SECRET, demo.token))
                .values(revoked_at=__import__("sqlalchemy").func.now())
            )
            await s.commit()
        code, reason = await asyncio.wait_for(c.closed, 10)
        assert (code, reason) == (4403, "token revoked")
        # And the revoked token cannot reconnect.
        again = await GqlWs.connect(api, demo.token)
        assert await again.closed == (4403, "Forbidden")


async def test_protocol_close_codes_and_subscription_cap(
    demo: Demo, live_server: LiveServer
) -> None:
    import orjson
    import websockets

    url = live_server.base_url.replace("http://", "ws://") + "/graphql"
    # Subscribing before connection_init: 4401 Unauthorized.
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}).decode()
        )
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401
    # Two connection_init messages: 4429 Too many initialisation requests.
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = orjson.dumps({"type": "connection_init"}).decode()
        await ws.send(init)
        await ws.recv()
        await ws.send(init)
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4429
    # Same operation id twice: 4409 Subscriber already exists.
    c = await GqlWs.connect(live_server.base_url, demo.token)
    assert await c.acked()
    sub = {
        "id": "dup",
        "type": "subscribe",
        "payload": {"query": EVENTS, "variables": {"p": gid("Project", demo.project_id)}},
    }
    await c.conn.send(orjson.dumps(sub).decode())
    await c.conn.send(orjson.dumps(sub).decode())
    assert (await asyncio.wait_for(c.closed, 5))[0] == 4409
    # The per-connection cap (20) is a clear error, not a silent drop.
    c = await GqlWs.connect(live_server.base_url, demo.token)
    assert await c.acked()
    for _ in range(20):
        await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    await asyncio.sleep(0.5)  # all 20 started
    extra = await c.subscribe(EVENTS, {"p": gid("Project", demo.project_id)})
    msg = await c.next(extra)
    assert msg["payload"]["errors"][0]["message"] == "at most 20 subscriptions per connection"
    await c.close()
