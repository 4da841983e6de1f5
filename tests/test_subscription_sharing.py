"""Subscribers with the same document share one execution per event — safely.

The api under test runs in this process (``live_server``), so the counters of
``app.graphql.sharing.shared_results`` are the server's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from graphql import parse

from app.graphql.extensions import FastExecutionContext
from app.graphql.schema import build_schema
from app.graphql.sharing import SharedResults, reads_only_payload, shared_results
from app.projects.models import ProjectMember
from app.settings import Settings
from tests.conftest import Demo, Factory, LiveServer
from tests.test_read_api import gid
from tests.test_subscriptions import _edit
from tests.wsclient import GqlWs

PAYLOAD_ONLY = """subscription($p: ID!) { projectEvents(projectId: $p) {
  sequence kind occurredAt payload
  parameterChange { edited { symbol newValue unit } requirements { key flipped } } } }"""
WITH_ACTOR = """subscription($p: ID!) { projectEvents(projectId: $p) {
  sequence kind actor { email } } }"""


async def _subscribers(
    base_url: str, tokens: list[str], query: str, project_gid: str
) -> list[tuple[GqlWs, str]]:
    out = []
    for token in tokens:
        c = await GqlWs.connect(base_url, token)
        assert await c.acked()
        out.append((c, await c.subscribe(query, {"p": project_gid})))
    await asyncio.sleep(0.3)  # every subscription registered with the hub
    return out


async def _viewer(factory: Factory, sessionmaker: Any, demo: Demo) -> Any:
    viewer = await factory.account(org=demo.org)
    async with sessionmaker() as s:
        s.add(ProjectMember(project_id=demo.project_id, user_id=viewer.user.id, role="viewer"))
        await s.commit()
    return viewer


async def test_twenty_subscribers_one_execution(demo: Demo, live_server: LiveServer) -> None:
    subs = await _subscribers(
        live_server.base_url, [demo.token] * 20, PAYLOAD_ONLY, gid("Project", demo.project_id)
    )
    try:
        before = (shared_results.executions, shared_results.shared)
        seq = await _edit(live_server.base_url, demo, 24.0)
        got = [(await c.data(op))["projectEvents"] for c, op in subs]
        assert {g["sequence"] for g in got} == {seq}
        assert all(g == got[0] for g in got)
        assert got[0]["parameterChange"]["edited"] == [
            {"symbol": "m_payload", "newValue": 24.0, "unit": "kg"}
        ]
        assert [r["key"] for r in got[0]["parameterChange"]["requirements"] if r["flipped"]] == [
            "REQ-MASS-001"
        ]
        assert (shared_results.executions - before[0], shared_results.shared - before[1]) == (
            1,
            19,
        )
    finally:
        for c, _ in subs:
            await c.close()


async def test_payload_only_selection_is_shared_across_users(
    demo: Demo, live_server: LiveServer, factory: Factory, sessionmaker: Any
) -> None:
    viewer = await _viewer(factory, sessionmaker, demo)
    subs = await _subscribers(
        live_server.base_url,
        [demo.token, viewer.token],
        PAYLOAD_ONLY,
        gid("Project", demo.project_id),
    )
    try:
        before = shared_results.executions
        seq = await _edit(live_server.base_url, demo, 22.0)
        for c, op in subs:
            assert (await c.data(op))["projectEvents"]["sequence"] == seq
        assert shared_results.executions - before == 1
    finally:
        for c, _ in subs:
            await c.close()


async def test_database_reading_selection_is_not_shared_across_users(
    demo: Demo, live_server: LiveServer, factory: Factory, sessionmaker: Any
) -> None:
    viewer = await _viewer(factory, sessionmaker, demo)
    tokens = [demo.token, demo.token, viewer.token, viewer.token]
    subs = await _subscribers(
        live_server.base_url, tokens, WITH_ACTOR, gid("Project", demo.project_id)
    )
    try:
        before = (shared_results.executions, shared_results.shared)
        seq = await _edit(live_server.base_url, demo, 23.0)
        for c, op in subs:
            event = (await c.data(op))["projectEvents"]
            assert event["sequence"] == seq
            assert event["actor"]["email"].startswith("demo-")
        # One execution per user, the second subscriber of each user shares it.
        assert (shared_results.executions - before[0], shared_results.shared - before[1]) == (
            2,
            2,
        )
    finally:
        for c, _ in subs:
            await c.close()


async def test_different_variables_are_not_shared(
    demo: Demo, live_server: LiveServer, factory: Factory
) -> None:
    # Same document, another project (another organization's): nothing crosses over.
    other = await factory.account()
    project = await factory.project(other)
    mine = await _subscribers(
        live_server.base_url, [demo.token], PAYLOAD_ONLY, gid("Project", demo.project_id)
    )
    theirs = await _subscribers(
        live_server.base_url, [other.token], PAYLOAD_ONLY, gid("Project", project.id)
    )
    try:
        seq = await _edit(live_server.base_url, demo, 25.0)
        c, op = mine[0]
        assert (await c.data(op))["projectEvents"]["sequence"] == seq
        c, op = theirs[0]
        with pytest.raises(TimeoutError):
            await c.next(op, wait=0.5)
    finally:
        for c, _ in mine + theirs:
            await c.close()


@pytest.mark.parametrize(
    ("selection", "pure"),
    [
        ("sequence kind occurredAt payload", True),
        ("sequence ... on ProjectEvent { kind }", True),
        ("...F", True),
        ("parameterChange { edited { symbol parameterId } requirements { flipped } }", True),
        ("actor { email }", False),
        ("parameterChange { actor { id } }", False),
        ("parameterChange { edited { parameter { id } } }", False),
        ("parameterChange { requirements { requirement { key } } }", False),
        ("projectId __typename", True),
    ],
)
def test_which_selections_read_only_the_payload(selection: str, pure: bool) -> None:
    schema = build_schema(Settings())._schema
    doc = parse(
        "subscription($p: ID!) { projectEvents(projectId: $p) { " + selection + " } }"
        " fragment F on ProjectEvent { sequence payload }"
    )
    operation = doc.definitions[0]
    fragments = {d.name.value: d for d in doc.definitions[1:]}  # type: ignore[attr-defined]
    assert reads_only_payload(schema, operation, fragments) is pure  # type: ignore[arg-type]


def test_every_event_has_its_own_subfield_memo() -> None:
    # graphql-core 3.3.2 shares one memo between all per-event executors of a
    # subscription: it grew by the fields of every event, forever.
    schema = build_schema(Settings())._schema
    doc = parse("subscription($p: ID!) { projectEvents(projectId: $p) { sequence } }")
    executor = FastExecutionContext.build(schema, doc, raw_variable_values={"p": "x"})
    assert isinstance(executor, FastExecutionContext)
    first = executor.build_per_event_executor(object())
    second = executor.build_per_event_executor(object())
    memos = {id(executor._relevant_sub_fields), id(first._relevant_sub_fields)}
    assert len({*memos, id(second._relevant_sub_fields)}) == 3


async def test_shared_table_is_bounded_and_expires() -> None:
    table = SharedResults(ttl=0.05, max_entries=3)
    op = parse("subscription { x }").definitions[0]
    calls = 0

    def execute() -> int:
        nonlocal calls
        calls += 1
        return calls

    for i in range(5):
        assert table.run(("k", i), op, execute, lambda _: False) == i + 1  # type: ignore[arg-type]
    assert len(table._entries) == 3
    assert table.run(("k", 4), op, execute, lambda _: False) == 5  # type: ignore[arg-type]
    await asyncio.sleep(0.06)
    assert table.run(("k", 4), op, execute, lambda _: False) == 6  # type: ignore[arg-type]
    assert len(table._entries) == 1  # the expired ones left with the new entry


async def test_failed_shared_execution_lets_the_others_run_their_own() -> None:
    table = SharedResults()
    op = parse("subscription { x }").definitions[0]
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise RuntimeError("boom")

    async def fine() -> int:
        return 7

    def is_awaitable(value: Any) -> bool:
        return asyncio.iscoroutine(value) or asyncio.isfuture(value)

    first = asyncio.ensure_future(table.run(("k",), op, failing, is_awaitable))  # type: ignore[arg-type]
    second = asyncio.ensure_future(table.run(("k",), op, fine, is_awaitable))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    assert await second == 7


FILTERED_CHANGES = """subscription($p: ID!) {
  parameterChanged(projectId: $p, symbols: ["m_wet"]) { sequence recomputed { symbol } } }"""


async def test_in_step_subscribers_get_events_from_the_hub_directly(
    demo: Demo, live_server: LiveServer
) -> None:
    hub = live_server.app.state.hub
    subs = await _subscribers(
        live_server.base_url, [demo.token] * 5, PAYLOAD_ONLY, gid("Project", demo.project_id)
    )
    try:
        # The first event goes through each subscriber's task (which sets up its lane).
        first = await _edit(live_server.base_url, demo, 21.0)
        frames = [await c.next(op) for c, op in subs]
        direct_before = hub.delivered_direct
        later = [await _edit(live_server.base_url, demo, v) for v in (22.0, 23.0)]
        for seq in later:
            got = [await c.next(op) for c, op in subs]
            assert [m["payload"]["data"]["projectEvents"]["sequence"] for m in got] == [seq] * 5
            # The same frame as the task path would send: only the id differs.
            for (_c, op), m, old in zip(subs, got, frames, strict=True):
                assert m["id"] == op and m["type"] == "next"
                assert m.keys() == old.keys() and m["payload"].keys() == old["payload"].keys()
                assert m["payload"]["data"].keys() == old["payload"]["data"].keys()
        assert hub.delivered_direct - direct_before == 10
        assert first < later[0] < later[1]
        for c, op in subs:  # nothing duplicated or left behind
            with pytest.raises(TimeoutError):
                await c.next(op, wait=0.3)
    finally:
        for c, _ in subs:
            await c.close()


async def test_direct_lane_applies_the_symbols_filter_in_order(
    demo: Demo, live_server: LiveServer
) -> None:
    hub = live_server.app.state.hub
    subs = await _subscribers(
        live_server.base_url, [demo.token], FILTERED_CHANGES, gid("Project", demo.project_id)
    )
    c, op = subs[0]
    try:
        warm = await _edit(live_server.base_url, demo, 21.0)
        assert (await c.data(op))["parameterChanged"]["sequence"] == warm
        direct_before = hub.delivered_direct
        wanted = await _edit(live_server.base_url, demo, 22.0)
        skipped = await _edit(live_server.base_url, demo, 0.3, symbol="eta_cell")
        wanted_again = await _edit(live_server.base_url, demo, 23.0)
        got = [(await c.data(op))["parameterChanged"] for _ in range(2)]
        assert [g["sequence"] for g in got] == [wanted, wanted_again]
        assert all("m_wet" in {r["symbol"] for r in g["recomputed"]} for g in got)
        assert wanted < skipped < wanted_again
        assert hub.delivered_direct - direct_before == 2
        with pytest.raises(TimeoutError):
            await c.next(op, wait=0.3)
    finally:
        await c.close()


async def test_completed_subscription_gets_nothing_more_and_its_sibling_goes_on(
    demo: Demo, live_server: LiveServer
) -> None:
    c = await GqlWs.connect(live_server.base_url, demo.token)
    assert await c.acked()
    variables = {"p": gid("Project", demo.project_id)}
    stopped, kept = (
        await c.subscribe(PAYLOAD_ONLY, variables),
        await c.subscribe(PAYLOAD_ONLY, variables),
    )
    await asyncio.sleep(0.3)
    try:
        first = await _edit(live_server.base_url, demo, 21.0)
        for op in (stopped, kept):  # both now have direct lanes
            assert (await c.data(op))["projectEvents"]["sequence"] == first
        await c.complete(stopped)
        await asyncio.sleep(0.2)
        later = [await _edit(live_server.base_url, demo, v) for v in (22.0, 23.0)]
        assert [(await c.data(kept))["projectEvents"]["sequence"] for _ in later] == later
        with pytest.raises(TimeoutError):
            await c.next(stopped, wait=0.5)
    finally:
        await c.close()


async def test_hub_collects_garbage_only_when_idle_after_a_wave_of_subscribers() -> None:
    import gc
    import uuid

    from app.live import Hub

    hub = Hub(redis_url="redis://unused", sessionmaker=None, gc_after_subscribers=3)  # type: ignore[arg-type]
    project = uuid.uuid4()
    collections = gc.get_stats()[2]["collections"]
    for _ in range(2):
        hub.subscribe(project, None)
    hub._collect_if_idle()
    assert gc.get_stats()[2]["collections"] == collections  # too few new subscribers
    hub.subscribe(project, None)
    hub.dispatch({"project_id": str(project), "sequence": 1})  # an event just now: busy
    hub._collect_if_idle()
    assert gc.get_stats()[2]["collections"] == collections
    hub._events.get_nowait()
    hub._last_event_at -= 5  # quiet for a while
    hub._collect_if_idle()
    assert gc.get_stats()[2]["collections"] == collections + 1
    hub._collect_if_idle()  # the wave was handled
    assert gc.get_stats()[2]["collections"] == collections + 1
