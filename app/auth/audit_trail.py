"""Audit rows that must survive the operation's rollback (failed logins, denied writes)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import RequestMeta, record
from app.auth.principal import Principal

log = logging.getLogger("threadline.audit")


async def record_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    actor: Principal | None,
    actor_label: str | None = None,
    meta: RequestMeta,
    action: str,
    project_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: uuid.UUID | None = None,
    diff: Mapping[str, Any] | None = None,
) -> None:
    """Write one audit row in its own transaction, committed immediately."""
    try:
        async with sessionmaker() as session:
            entry = record(
                session,
                actor=actor,
                meta=meta,
                action=action,
                project_id=project_id,
                object_type=object_type,
                object_id=object_id,
                diff=diff or {},
            )
            if actor_label is not None:
                entry.actor_label = actor_label[:320]
            await session.commit()
    except Exception:
        # Never turn a refused request into a server error because of its audit row.
        log.exception("could not write audit row %s", action)
