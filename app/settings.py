"""Runtime configuration (pydantic-settings).

Every setting reads from a ``THREADLINE_``-prefixed environment variable; the two
connection URLs also accept the conventional plain ``DATABASE_URL``/``REDIS_URL``.
Leaving a URL unset selects the embedded server for it (see ``app.embedded``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("THREADLINE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL (postgresql+asyncpg://…). Unset: embedded PostgreSQL.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("THREADLINE_REDIS_URL", "REDIS_URL"),
        description="redis:// or unix:// URL. Unset: embedded Redis.",
    )
    data_dir: Path = Field(
        default=Path(".threadline"), description="Where embedded services keep their data."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = Field(default=False, description="Emit JSON log lines instead of console.")
    secret_key: str = Field(
        default="dev-insecure-secret-change-me",
        min_length=16,
        description="Pepper mixed into token hashes; set a long random value in production.",
    )
    session_ttl_hours: int = Field(default=24 * 14, ge=1, description="Login token lifetime.")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    compiled_reads: bool = Field(
        default=True,
        description="Answer repeated read-only queries of the compilable subset with one SQL "
        "statement built by PostgreSQL (app.graphql.compiled); off = always the resolvers.",
    )
    read_pool_size: int = Field(
        default=10, ge=1, le=200, description="Connections for compiled reads (per process)."
    )

    # GraphQL abuse limits.
    max_query_depth: int = Field(default=15, ge=1, le=100)
    max_aliases: int = Field(default=30, ge=1, le=1000)
    max_query_tokens: int = Field(default=5000, ge=100, le=100_000)
    default_page_size: int = Field(default=50, ge=1, le=500)
    max_page_size: int = Field(default=500, ge=1, le=10_000)
    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    max_subscriptions_per_connection: int = Field(default=20, ge=1, le=1000)
    live_queue_size: int = Field(
        default=1000, ge=1, description="Events buffered per subscriber before it catches up."
    )
    live_tick_seconds: float = Field(
        default=2.0, gt=0, description="How often lost events are looked for in PostgreSQL."
    )
    ws_compression: bool = Field(
        default=False,
        description="Negotiate permessage-deflate on WebSockets. Off by default, as in the "
        "`ws` library most graphql-ws servers run on: live events are small, and a "
        "compressor per connection was 40% of the fan-out CPU at 1,000 subscribers.",
    )
    live_auth_check_seconds: float = Field(
        default=30.0, gt=0, description="How often open subscriptions re-check their token."
    )
    max_query_fields: int = Field(
        default=10_000, ge=10, description="Field selections per operation, fragments expanded."
    )
    max_query_cost: int = Field(
        default=500_000,
        ge=1,
        description="Upper bound of an operation's estimated cost (connections multiply "
        "their selection by `first`/`last`).",
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    persisted_only: bool = Field(
        default=False, description="Execute only registered (persisted) operations."
    )
    introspection_anonymous: bool = Field(
        default=True, description="Allow schema introspection without a token."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
