"""Live fan-out: one Redis subscription per api process, bounded queues per subscriber.

Delivery is at-least-once, in order, without gaps: every subscriber tracks the last
sequence it delivered; a duplicate is skipped, a gap (Redis dropped a message or
restarted, the subscriber's queue overflowed) is repaired by replaying the missing
events from PostgreSQL, where every event is durable before it is published. A
ticker compares each active project's sequence in PostgreSQL with the last one
seen on Redis, so even a lost *last* event is found within a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import CHANNEL_PREFIX
from app.projects.models import Project, ProjectEvent

log = logging.getLogger("threadline.live")

CATCH_UP = object()  # sentinel: replay from PostgreSQL before waiting again
REVOKED = object()  # sentinel: the subscriber's token is no longer valid
FILTERED = object()  # a lane's payload for an event its subscription does not want


class Lane(Protocol):
    """A subscriber's direct lane: the hub renders an event once per ``group`` and
    writes it to every ready member itself, without waking a task per subscriber."""

    group: Hashable

    async def payload(self, event: dict[str, Any]) -> bytes | object | None:
        """The rendered event (shared by the group), ``FILTERED``, or None to let the
        subscriber's own task deliver it (e.g. the result carries errors)."""
        ...

    def writable(self) -> bool:
        """True if a write now completes at once (the transport is not paused)."""
        ...

    async def write(self, payload: bytes) -> bool:
        """Send the rendered event; False if the connection is gone."""
        ...


@dataclass(eq=False)
class Subscriber:
    project_id: uuid.UUID
    token_id: uuid.UUID | None
    queue: asyncio.Queue[Any]
    overflowed: bool = False
    # Last sequence delivered (by the subscriber's task or by the hub's direct lane).
    last: int = 0
    # The subscriber's task waits for its queue with nothing in flight: the hub may
    # write the next event directly.
    parked: bool = False
    lane: Lane | None = None


@dataclass
class Hub:
    """Per-process router from the Redis channel to local subscribers."""

    redis_url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    queue_size: int = 1000
    tick_seconds: float = 2.0
    auth_check_seconds: float = 30.0
    _subs: dict[uuid.UUID, set[Subscriber]] = field(default_factory=dict)
    _seen: dict[uuid.UUID, int] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: int = 0
    delivered_direct: int = 0
    max_pending_events: int = 10_000
    # Collect garbage while idle after this many new subscribers (see _collect_if_idle).
    gc_after_subscribers: int = 100
    _new_subscribers: int = 0
    _last_event_at: float = 0.0
    _events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listen"),
            asyncio.create_task(self._tick(), name="live-tick"),
            asyncio.create_task(self._fan_out_loop(), name="live-fan-out"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- subscribers ---------------------------------------------------------

    def subscribe(self, project_id: uuid.UUID, token_id: uuid.UUID | None) -> Subscriber:
        sub = Subscriber(project_id, token_id, asyncio.Queue(maxsize=self.queue_size))
        self._subs.setdefault(project_id, set()).add(sub)
        self._new_subscribers += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.project_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.project_id]
                self._seen.pop(sub.project_id, None)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _offer(self, sub: Subscriber, item: Any) -> None:
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Never block the router on one slow client: it catches up from
            # PostgreSQL once it drained its queue.
            sub.overflowed = True

    def dispatch(self, event: dict[str, Any]) -> None:
        project_id = uuid.UUID(event["project_id"])
        seq = int(event["sequence"])
        self._last_event_at = time.monotonic()
        if seq > self._seen.get(project_id, 0):
            self._seen[project_id] = seq
        if project_id not in self._subs:
            return
        if self._events.qsize() >= self.max_pending_events:
            # Fan-out cannot keep up: drop, and let every subscriber repair from PostgreSQL.
            for sub in tuple(self._subs.get(project_id, ())):
                sub.overflowed = True
                self._offer(sub, CATCH_UP)
            return
        self._events.put_nowait(event)

    async def _fan_out_loop(self) -> None:
        # One task, events in arrival order: per project, delivery order is sequence order.
        while True:
            event = await self._events.get()
            try:
                await self.fan_out(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live fan-out failed; subscribers will catch up")
                project_id = uuid.UUID(event["project_id"])
                for sub in tuple(self._subs.get(project_id, ())):
                    self._offer(sub, CATCH_UP)

    @staticmethod
    def _ready(sub: Subscriber, seq: int) -> bool:
        return (
            sub.lane is not None
            and sub.parked
            and sub.last == seq - 1
            and not sub.overflowed
            and sub.queue.empty()
        )

    async def fan_out(self, event: dict[str, Any]) -> None:
        """Deliver one event to the project's local subscribers.

        Subscribers that are in step (their task idle, nothing queued, the previous
        sequence delivered) and have a direct lane get it from here: the event is
        rendered once per lane group and written straight to each connection. Every
        other subscriber gets it through its queue and its own task, as before.
        """
        project_id = uuid.UUID(event["project_id"])
        seq = int(event["sequence"])
        groups: dict[Hashable, Subscriber] = {}
        for sub in tuple(self._subs.get(project_id, ())):
            if self._ready(sub, seq):
                assert sub.lane is not None
                groups.setdefault(sub.lane.group, sub)
        payloads: dict[Hashable, bytes | object] = {}
        for group, member in groups.items():
            assert member.lane is not None
            try:
                payload = await member.lane.payload(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rendering event %s for a lane failed", seq)
                continue
            if payload is not None:
                payloads[group] = payload
        # From here on nothing suspends (writes go to transports that are not paused),
        # so no subscriber's task can run between the readiness check and the write.
        for sub in tuple(self._subs.get(project_id, ())):
            lane = sub.lane
            if lane is not None and lane.group in payloads and self._ready(sub, seq):
                payload = payloads[lane.group]
                if payload is FILTERED:
                    sub.last = seq
                    continue
                if lane.writable():
                    assert isinstance(payload, bytes)
                    if await lane.write(payload):
                        sub.last = seq
                        self.delivered += 1
                        self.delivered_direct += 1
                        continue
                    sub.lane = None  # connection gone: its task cleans up
            self._offer(sub, event)

    def _catch_up_all(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                self._offer(sub, CATCH_UP)

    # -- background tasks ----------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            client = aioredis.from_url(self.redis_url)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                self.connected.set()
                backoff = 0.2
                # Anything published while we were away is only in PostgreSQL.
                self._catch_up_all()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    try:
                        self.dispatch(orjson.loads(message["data"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning("ignoring malformed event on %s", message.get("channel"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("redis listener lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _tick(self) -> None:
        since_auth = 0.0
        while True:
            await asyncio.sleep(self.tick_seconds)
            since_auth += self.tick_seconds
            try:
                self._collect_if_idle()
                await self._check_sequences()
                if since_auth >= self.auth_check_seconds:
                    since_auth = 0.0
                    await self._check_tokens()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live tick failed")

    def _collect_if_idle(self) -> None:
        """After a wave of new subscribers, collect garbage now, while no event is being
        delivered. Each subscription leaves a few hundred long-lived objects in the young
        generations; left alone, the allocation-triggered collection that finally moves
        them on comes *during* an edit (the thing that allocates) and, at 1,000
        subscribers, stopped the process for ~100 ms in the middle of a delivery."""
        if self._new_subscribers < self.gc_after_subscribers:
            return
        if time.monotonic() - self._last_event_at < 1.0 or not self._events.empty():
            return
        self._new_subscribers = 0
        started = time.perf_counter()
        gc.collect()
        elapsed_ms = 1000 * (time.perf_counter() - started)
        log.debug("idle collection after new subscribers: %.1f ms", elapsed_ms)

    async def _check_sequences(self) -> None:
        projects = list(self._subs)
        if not projects:
            return
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(Project.id, Project.event_sequence).where(Project.id.in_(projects))
            )
            for project_id, seq in rows:
                if seq > self._seen.get(project_id, 0):
                    self._seen[project_id] = seq
                    for sub in tuple(self._subs.get(project_id, ())):
                        self._offer(sub, CATCH_UP)

    async def _check_tokens(self) -> None:
        token_ids = {s.token_id for subs in self._subs.values() for s in subs if s.token_id}
        if not token_ids:
            return
        async with self.sessionmaker() as session:
            valid = set(
                await session.scalars(
                    text(
                        "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id"
                        " WHERE t.id = ANY(:ids) AND t.revoked_at IS NULL"
                        " AND (t.expires_at IS NULL OR t.expires_at > now())"
                        " AND u.is_active AND u.deleted_at IS NULL"
                    ),
                    {"ids": list(token_ids)},
                )
            )
        for subs in self._subs.values():
            for sub in subs:
                if sub.token_id is not None and sub.token_id not in valid:
                    self._offer(sub, REVOKED)


class TokenRevoked(Exception):
    pass


async def replay(
    sessionmaker: async_sessionmaker[AsyncSession], project_id: uuid.UUID, after: int
) -> list[dict[str, Any]]:
    from app.events import event_dict

    async with sessionmaker() as session:
        rows = await session.scalars(
            select(ProjectEvent)
            .where(ProjectEvent.project_id == project_id, ProjectEvent.sequence > after)
            .order_by(ProjectEvent.sequence)
            .limit(1000)
        )
        return [event_dict(e) for e in rows]


async def current_sequence(
    sessionmaker: async_sessionmaker[AsyncSession], project_id: uuid.UUID
) -> int:
    async with sessionmaker() as session:
        seq = await session.scalar(select(Project.event_sequence).where(Project.id == project_id))
        return int(seq or 0)


async def event_stream(
    hub: Hub,
    project_id: uuid.UUID,
    *,
    after: int | None,
    token_id: uuid.UUID | None,
    on_revoked: Callable[[], Awaitable[None]] | None = None,
    lane: Callable[[], Lane | None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the project after ``after`` (or from now), in order, exactly once
    per sequence, live until the consumer stops.

    ``lane`` is asked, after each event this generator delivered, for the subscriber's
    direct lane (available once the consumer has executed one event); from then on the
    hub may deliver events itself while this generator is idle.
    """
    # Subscribe before reading the starting point: nothing slips between the two.
    sub = hub.subscribe(project_id, token_id)
    try:
        if after is not None:
            sub.last = after
        else:
            sub.last = await current_sequence(hub.sessionmaker, project_id)

        async def catch_up() -> AsyncIterator[dict[str, Any]]:
            while True:
                batch = await replay(hub.sessionmaker, project_id, sub.last)
                for event in batch:
                    if event["sequence"] == sub.last + 1:
                        sub.last = event["sequence"]
                        yield event
                if len(batch) < 1000:
                    return

        if after is not None:  # from now on: nothing to replay
            async for event in catch_up():
                yield event
        while True:
            if sub.lane is None and lane is not None:
                sub.lane = lane()
            sub.parked = sub.queue.empty()
            try:
                item = await sub.queue.get()
            finally:
                sub.parked = False
            if item is REVOKED:
                if on_revoked is not None:
                    await on_revoked()
                raise TokenRevoked("token revoked")
            if item is not CATCH_UP:
                seq = int(item["sequence"])
                if seq <= sub.last:
                    continue  # duplicate (already replayed or sent directly)
                if seq == sub.last + 1:
                    sub.last = seq
                    hub.delivered += 1
                    yield item
                    item = None
            if item is not None or (sub.overflowed and sub.queue.empty()):
                # A gap, a reconnect or an overflow: PostgreSQL has everything.
                sub.overflowed = False
                async for event in catch_up():
                    yield event
    finally:
        sub.lane = None
        hub.unsubscribe(sub)
