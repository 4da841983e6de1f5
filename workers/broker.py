"""The Dramatiq broker (Redis) of the worker processes (``threadline worker``).

The api does not import this module (it has no REDIS_URL in every setup); it
enqueues through :mod:`app.trade_studies.queue`, which uses the same namespace.

Unacknowledged messages of a worker that died (killed, OOM, host lost) go back to
their queue once its heartbeat is older than ``THREADLINE_WORKER_HEARTBEAT_MS``
(default 60 s); the check runs on ``THREADLINE_WORKER_MAINTENANCE_CHANCE`` broker
calls per million (default 10,000, i.e. 1 %).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from app.settings import get_settings
from app.trade_studies.queue import NAMESPACE


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def make_broker(url: str | None = None) -> RedisBroker:
    url = url or get_settings().redis_url or os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set; start workers with `threadline worker`")
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        namespace=NAMESPACE,
        heartbeat_timeout=_env_int("THREADLINE_WORKER_HEARTBEAT_MS", 60_000),
        maintenance_chance=_env_int("THREADLINE_WORKER_MAINTENANCE_CHANCE", 10_000),
    )
    broker.add_middleware(AsyncIO())
    return broker


broker = make_broker()
dramatiq.set_broker(broker)
