"""Project change events: durable in PostgreSQL, fanned out through Redis after commit.

Every write operation appends exactly one event with the project's next sequence
number. Taking the number with ``UPDATE projects ... RETURNING`` row-locks the
project until commit, so events of a project are numbered without gaps in commit
order. The event is published to ``threadline:project:{id}`` only after the
transaction commits; if publishing fails the event is still in ``project_events``
and subscribers replay it from there (``after: <sequence>``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import attributes
from sqlalchemy.orm.util import identity_key

from app.audit.service import jsonable
from app.db import after_commit
from app.projects.models import Project, ProjectEvent

log = logging.getLogger("threadline.events")

CHANNEL_PREFIX = "threadline:project:"
_NEXT_SEQUENCE = text(
    "UPDATE projects SET event_sequence = event_sequence + 1 WHERE id = :id"
    " RETURNING event_sequence"
)


def channel(project_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{project_id}"


def event_dict(event: ProjectEvent) -> dict[str, Any]:
    """The wire form of an event (published to Redis and replayed from PostgreSQL)."""
    return {
        "id": event.id,
        "project_id": str(event.project_id),
        "sequence": event.sequence,
        "kind": event.kind,
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "payload": event.payload,
        "created_at": event.created_at.isoformat(),
    }


def event_json(event: ProjectEvent) -> bytes:
    return orjson.dumps(jsonable(event_dict(event)))


async def append_event(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    kind: str,
    payload: Mapping[str, Any],
    actor_id: uuid.UUID | None,
) -> ProjectEvent:
    """Insert the project's next event and publish it to Redis after commit."""
    sequence = await session.scalar(_NEXT_SEQUENCE, {"id": project_id})
    if sequence is None:
        raise LookupError(f"project {project_id} does not exist")
    # Keep a Project loaded in this session in step with the row (no reload needed).
    loaded = session.identity_map.get(identity_key(Project, project_id))
    if loaded is not None:
        attributes.set_committed_value(loaded, "event_sequence", sequence)
    event: ProjectEvent | None = await session.scalar(
        insert(ProjectEvent)
        .values(
            project_id=project_id,
            sequence=sequence,
            kind=kind,
            actor_id=actor_id,
            payload=jsonable(dict(payload)),
        )
        .returning(ProjectEvent)
    )
    assert event is not None
    data = event_json(event)
    topic = channel(project_id)

    async def publish() -> None:
        client = session.info.get("redis")
        if client is None:
            return
        try:
            await client.publish(topic, data)
        except Exception:
            # Durable in PostgreSQL already; subscribers catch up by replaying.
            log.exception("publishing event %s #%s failed", kind, sequence)

    after_commit(session, publish)
    return event


async def events_after(
    session: AsyncSession, *, project_id: uuid.UUID, after: int, limit: int = 1000
) -> Sequence[ProjectEvent]:
    """Events of a project with ``sequence > after``, oldest first (for replay)."""
    rows = await session.scalars(
        select(ProjectEvent)
        .where(ProjectEvent.project_id == project_id, ProjectEvent.sequence > after)
        .order_by(ProjectEvent.sequence)
        .limit(limit)
    )
    return rows.all()
