"""Trade-study actors (DESIGN §1, Sweep): planner, chunk, failure handler.

Each message is one transaction (``app.db.unit_of_work``); messages carry only
ids, and every actor is idempotent (see :mod:`app.trade_studies.runner`), so
Dramatiq's at-least-once delivery — retries with backoff, redelivery of a dead
worker's messages — never stores a scenario twice. Follow-up messages are sent
only after the transaction that justifies them committed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dramatiq
import redis.asyncio as aioredis
import scipy.stats.qmc  # type: ignore[import-untyped]  # noqa: F401  (warm: first study is faster)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker, unit_of_work
from app.settings import get_settings
from app.trade_studies import queue, runner
from workers.broker import broker

log = logging.getLogger("threadline.worker")

_OPTIONS: dict[str, Any] = {
    "queue_name": queue.QUEUE,
    "max_retries": 5,
    "min_backoff": 500,
    "max_backoff": 15_000,
    "time_limit": 10 * 60 * 1000,
}
_resources: dict[str, Any] = {}


def _maker() -> tuple[async_sessionmaker[AsyncSession], Any]:
    """Engine and Redis client of this process, created in the actors' event loop."""
    if "maker" not in _resources:
        settings = get_settings()
        if not settings.database_url or not settings.redis_url:
            raise RuntimeError("workers need DATABASE_URL and REDIS_URL")
        engine = make_engine(settings.database_url, pool_size=4, max_overflow=4)
        _resources["maker"] = make_sessionmaker(engine)
        _resources["redis"] = aioredis.from_url(settings.redis_url)
    return _resources["maker"], _resources["redis"]


@asynccontextmanager
async def _transaction() -> AsyncIterator[AsyncSession]:
    """One transaction; its events are published to Redis after commit."""
    maker, redis = _maker()
    async with unit_of_work(maker) as session:
        session.info["redis"] = redis
        yield session


def _send_order(chunks: list[int]) -> list[int]:
    """Interleave the two halves (0, n/2, 1, n/2+1 ...): two workers then append to two
    separate regions of the indexes instead of splitting the same pages."""
    half = (len(chunks) + 1) // 2
    first, second = chunks[:half], chunks[half:]
    out = [c for pair in zip(first, second, strict=False) for c in pair]
    return out + first[len(second) :]


@dramatiq.actor(actor_name=queue.RUN_ACTOR, on_retry_exhausted=queue.FAILED_ACTOR, **_OPTIONS)
async def trade_study_run(study_id: str) -> None:
    """Freeze and plan a QUEUED study, then send its chunks (again, if redelivered)."""
    async with _transaction() as session:
        outcome = await runner.plan_study(session, uuid.UUID(study_id))
    if outcome.chunks:
        # First in the queue: this process has the design cached and computes the
        # summary while the others store chunks.
        trade_study_summarize.send(study_id)
    for chunk in _send_order(outcome.chunks):
        trade_study_chunk.send(study_id, chunk)
    log.info("trade study %s: %s, %d chunks sent", study_id, outcome.status, len(outcome.chunks))


@dramatiq.actor(actor_name=queue.CHUNK_ACTOR, on_retry_exhausted=queue.FAILED_ACTOR, **_OPTIONS)
async def trade_study_chunk(study_id: str, chunk: int) -> None:
    """Evaluate and store one chunk; the chunk that completes the study finalizes it."""
    try:
        async with _transaction() as session:
            outcome = await runner.run_chunk(session, uuid.UUID(study_id), int(chunk))
    except runner.StudyStopped:
        log.info("trade study %s chunk %s: study stopped, nothing written", study_id, chunk)
        return
    if outcome.skipped:
        log.debug("trade study %s chunk %s skipped: %s", study_id, chunk, outcome.skipped)
    elif outcome.completed:
        log.info("trade study %s completed: %d scenarios", study_id, outcome.total)


@dramatiq.actor(actor_name=queue.SUMMARIZE_ACTOR, **_OPTIONS)
async def trade_study_summarize(study_id: str) -> None:
    """Precompute the summary and Pareto front of a running study (an optimisation: if it
    never runs, the completing chunk computes them)."""
    async with _transaction() as session:
        await runner.summarize_study(session, uuid.UUID(study_id))


@dramatiq.actor(actor_name=queue.FAILED_ACTOR, queue_name=queue.QUEUE, max_retries=20)
async def trade_study_chunk_failed(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """A planner or chunk message ran out of retries: the study ends FAILED, readably."""
    args = list(message.get("args") or [])
    if not args:
        return
    trace = str((message.get("options") or {}).get("traceback") or "").strip().splitlines()
    cause = trace[-1].strip() if trace else "unknown error"
    what = f"chunk {args[1]}" if len(args) > 1 else "planning"
    error = f"{what} failed after {retry_info.get('retries', '?')} retries: {cause}"
    async with _transaction() as session:
        failed = await runner.fail_study(session, uuid.UUID(str(args[0])), error)
    if failed:
        log.error("trade study %s failed: %s", args[0], error)


__all__ = [
    "broker",
    "trade_study_chunk",
    "trade_study_chunk_failed",
    "trade_study_run",
    "trade_study_summarize",
]
