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
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import CHANNEL_PREFIX
from app.projects.models import Project, ProjectEvent

log = logging.getLogger("threadline.live")

CATCH_UP = object()  # sentinel: replay from PostgreSQL before waiting again
REVOKED = object()  # sentinel: the subscriber's token is no longer valid


@dataclass(eq=False)
class Subscriber:
    project_id: uuid.UUID
    token_id: uuid.UUID | None
    queue: asyncio.Queue[Any]
    overflowed: bool = False


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

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listen"),
            asyncio.create_task(self._tick(), name="live-tick"),
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
        if seq > self._seen.get(project_id, 0):
            self._seen[project_id] = seq
        for sub in tuple(self._subs.get(project_id, ())):
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
                await self._check_sequences()
                if since_auth >= self.auth_check_seconds:
                    since_auth = 0.0
                    await self._check_tokens()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live tick failed")

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
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the project after ``after`` (or from now), in order, exactly once
    per sequence, live until the consumer stops."""
    # Subscribe before reading the starting point: nothing slips between the two.
    sub = hub.subscribe(project_id, token_id)
    try:
        last = after if after is not None else await current_sequence(hub.sessionmaker, project_id)

        async def catch_up() -> AsyncIterator[dict[str, Any]]:
            nonlocal last
            while True:
                batch = await replay(hub.sessionmaker, project_id, last)
                for event in batch:
                    if event["sequence"] == last + 1:
                        last = event["sequence"]
                        yield event
                if len(batch) < 1000:
                    return

        async for event in catch_up():
            yield event
        while True:
            item = await sub.queue.get()
            if item is REVOKED:
                if on_revoked is not None:
                    await on_revoked()
                raise TokenRevoked("token revoked")
            if item is not CATCH_UP:
                seq = int(item["sequence"])
                if seq <= last:
                    continue  # duplicate (already replayed)
                if seq == last + 1:
                    last = seq
                    hub.delivered += 1
                    yield item
                    item = None
            if item is not None or (sub.overflowed and sub.queue.empty()):
                # A gap, a reconnect or an overflow: PostgreSQL has everything.
                sub.overflowed = False
                async for event in catch_up():
                    yield event
    finally:
        hub.unsubscribe(sub)
