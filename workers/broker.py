"""The Dramatiq broker (Redis). Imported by `threadline worker` and by the api to enqueue."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from app.settings import get_settings


def make_broker(url: str | None = None) -> RedisBroker:
    url = url or get_settings().redis_url or os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set; start workers with `threadline worker`")
    broker = RedisBroker(url=url, namespace="threadline")  # type: ignore[no-untyped-call]
    broker.add_middleware(AsyncIO())
    return broker


broker = make_broker()
dramatiq.set_broker(broker)
