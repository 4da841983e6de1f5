"""Sending trade-study work to the Dramatiq workers (Redis broker).

The api processes only enqueue; they never import the worker's actors. A message
names its actor and queue, which the worker (``workers.trade_studies``) declares.
Callers send only after their transaction committed (``app.db.after_commit``), so
a worker never sees a study state that could still roll back.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = "threadline"
QUEUE = "trade_studies"
RUN_ACTOR = "trade_study_run"
CHUNK_ACTOR = "trade_study_chunk"
SUMMARIZE_ACTOR = "trade_study_summarize"
FAILED_ACTOR = "trade_study_chunk_failed"


@functools.lru_cache(maxsize=4)
def client_broker(url: str) -> RedisBroker:
    """A broker for enqueueing only (no middleware), one per Redis URL and process."""
    return RedisBroker(url=url, namespace=NAMESPACE, middleware=[])  # type: ignore[no-untyped-call]


def send(url: str, actor_name: str, *args: Any) -> None:
    message: Any = dramatiq.Message(
        queue_name=QUEUE, actor_name=actor_name, args=args, kwargs={}, options={}
    )
    client_broker(url).enqueue(message)


def redis_url_of(settings_url: str | None, client: Any = None) -> str | None:
    """The Redis URL to enqueue on: the setting, ``REDIS_URL``, or the app's own client."""
    if settings_url:
        return settings_url
    env = os.environ.get("REDIS_URL") or os.environ.get("THREADLINE_REDIS_URL")
    if env:
        return env
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not kwargs:
        return None
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"
