"""Appending to the audit log (the table itself refuses UPDATE and DELETE)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEntry
from app.auth.principal import Principal

_MAX_REQUEST_ID = 64
_MAX_USER_AGENT = 1000


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a change came from; copied into every audit row it causes."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM_META = RequestMeta()


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not recognise.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def jsonable(value: Any) -> Any:
    """Plain JSON data (UUIDs and datetimes as strings) for JSONB columns and events."""
    return orjson.loads(orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS))


def _clean_ip(ip: str | None) -> str | None:
    # The column is INET: a malformed value would fail the whole transaction.
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def record(
    session: AsyncSession,
    *,
    actor: Principal | None,
    meta: RequestMeta,
    action: str,
    project_id: uuid.UUID | None,
    object_type: str | None,
    object_id: uuid.UUID | None,
    diff: Mapping[str, Any],
) -> AuditEntry:
    """Add one audit row (inserted at the service's next flush, batched with the others).

    ``diff`` is ``{field: [old, new]}`` for changed fields.
    """
    entry = AuditEntry(
        organization_id=actor.organization_id if actor else None,
        project_id=project_id,
        actor_id=actor.user_id if actor else None,
        actor_label=actor.email if actor else "system",
        action=action,
        object_type=object_type,
        object_id=object_id,
        diff=jsonable(dict(diff)),
        request_id=meta.request_id[:_MAX_REQUEST_ID] if meta.request_id else None,
        ip=_clean_ip(meta.ip),
        user_agent=meta.user_agent[:_MAX_USER_AGENT] if meta.user_agent else None,
    )
    session.add(entry)
    return entry
