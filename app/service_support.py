"""Helpers every domain service uses: authorization, the project write lock, input checks,
and the audit-row-plus-event ending of a write.

Writes lock their project row first (``FOR NO KEY UPDATE``, the lock the event
sequence ``UPDATE`` takes anyway). That serialises writers of one project, which
recompute needs (two edits recomputing the same derived value must not interleave)
and which makes lock order uniform: project row, then the object rows, so writers
never deadlock.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from sqlalchemy import literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta, jsonable, record
from app.auth import errors as auth_errors
from app.auth.access import require_role
from app.auth.principal import Principal
from app.errors import CycleDetected, Forbidden, NotFound, ValidationError
from app.events import append_event
from app.projects.models import ProjectEvent


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Not given" in update inputs, distinct from ``None`` ("set to null").
UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 20
MAX_DESCRIPTION = 20_000

_LOCK_PROJECT = text(
    "SELECT now() FROM projects WHERE id = :id AND deleted_at IS NULL FOR NO KEY UPDATE"
)


async def authorize(
    session: AsyncSession,
    *,
    actor: Principal,
    project_id: uuid.UUID,
    minimum: str,
    not_found: str = "project not found",
    field: str | None = None,
) -> str:
    """The actor's role if at least ``minimum``; NotFound if it may not see the project."""
    try:
        return await require_role(session, principal=actor, project_id=project_id, minimum=minimum)
    except auth_errors.Forbidden as exc:
        raise Forbidden(exc.message) from None
    except auth_errors.AuthError:
        # Same error as a missing object: existence must not leak across projects.
        raise NotFound(not_found, field=field) from None


async def project_of(
    session: AsyncSession,
    model: Any,
    object_id: uuid.UUID,
    *,
    what: str,
    field: str | None = "id",
) -> uuid.UUID:
    """The project of a live row of ``model`` (a table with project_id and deleted_at)."""
    project_id: uuid.UUID | None = await session.scalar(
        select(model.project_id).where(model.id == object_id, model.deleted_at.is_(None))
    )
    if project_id is None:
        raise NotFound(f"{what} not found", field=field)
    return project_id


async def authorize_object(
    session: AsyncSession,
    *,
    actor: Principal,
    model: Any,
    object_id: uuid.UUID,
    what: str,
    minimum: str,
    field: str | None = "id",
) -> uuid.UUID:
    """Find a live object's project and authorize on it; its project id."""
    project_id = await project_of(session, model, object_id, what=what, field=field)
    await authorize(
        session,
        actor=actor,
        project_id=project_id,
        minimum=minimum,
        not_found=f"{what} not found",
        field=field,
    )
    return project_id


async def lock_project(session: AsyncSession, project_id: uuid.UUID) -> datetime:
    """Take the project's write lock; returns the transaction's ``now()`` for timestamps."""
    now: datetime | None = await session.scalar(_LOCK_PROJECT, {"id": project_id})
    if now is None:
        raise NotFound("project not found")
    return now


async def finish(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    action: str,
    event_kind: str,
    object_type: str,
    object_id: uuid.UUID,
    diff: Mapping[str, Any],
    payload: Mapping[str, Any] | None = None,
) -> ProjectEvent:
    """The common end of a single-object write: one audit row, one event, flush.

    ``action`` is the audit verb (``component.update``), ``event_kind`` what
    subscribers see (``component.updated``); the payload defaults to
    ``{"object_type", "id", "changes"}``.
    """
    record(
        session,
        actor=actor,
        meta=meta,
        action=action,
        project_id=project_id,
        object_type=object_type,
        object_id=object_id,
        diff=diff,
    )
    event = await append_event(
        session,
        project_id=project_id,
        kind=event_kind,
        payload=payload
        if payload is not None
        else {"object_type": object_type, "id": object_id, "changes": diff},
        actor_id=actor.user_id,
    )
    await session.flush()
    return event


def set_fields(obj: Any, changes: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Assign the values that differ; return ``{field: [old, new]}`` of those."""
    diff: dict[str, list[Any]] = {}
    for name, new in changes.items():
        old = getattr(obj, name)
        if old != new:
            setattr(obj, name, new)
            diff[name] = [old, new]
    return diff


def created_diff(obj: Any, names: Iterable[str]) -> dict[str, list[Any]]:
    """The audit diff of a new object: ``{field: [None, value]}``."""
    return {name: [None, getattr(obj, name)] for name in names}


def clean_text(
    value: str, *, field: str, max_length: int, allow_empty: bool = False, strip: bool = True
) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    cleaned = value.strip() if strip else value
    if not cleaned and not allow_empty:
        raise ValidationError(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise ValidationError(f"{field} is longer than {max_length} characters", field=field)
    if "\x00" in cleaned:
        raise ValidationError(f"{field} contains a NUL character", field=field)
    return cleaned


def check_choice(value: str, choices: Iterable[str], *, field: str) -> str:
    allowed = tuple(choices)
    if value not in allowed:
        raise ValidationError(
            f"{field} must be one of {', '.join(allowed)}; got {value!r}", field=field
        )
    return value


def check_number(value: object, *, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number", field=field)
    result = float(value)
    if not math.isfinite(result):
        raise ValidationError(f"{field} must be finite", field=field)
    return result


def check_json_object(
    value: Any,
    *,
    field: str,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> dict[str, Any]:
    """A JSON object within the size and nesting caps, with finite numbers only."""
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be a JSON object", field=field)
    # Iterative walk: a hostile document must not exhaust Python's recursion limit.
    stack: list[tuple[Any, int, str]] = [(value, 1, field)]
    while stack:
        node, depth, path = stack.pop()
        if depth > max_depth:
            raise ValidationError(f"{field} nests deeper than {max_depth} levels", field=path)
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValidationError(f"{field} keys must be strings", field=path)
                stack.append((child, depth + 1, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, depth + 1, f"{path}.{i}") for i, child in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValidationError(f"{field} holds a non-finite number", field=path)
        elif node is not None and not isinstance(node, str | int | float | bool):
            raise ValidationError(f"{field} holds a non-JSON value", field=path)
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise ValidationError(f"{field} is not valid JSON", field=field) from None
    if size > max_bytes:
        raise ValidationError(f"{field} is larger than {max_bytes} bytes", field=field)
    result: dict[str, Any] = jsonable(value)
    return result


async def ancestor_chain(
    session: AsyncSession, model: Any, label: Any, start_id: uuid.UUID, *, limit: int = 10_000
) -> list[tuple[uuid.UUID, str]]:
    """``[(id, label), ...]`` from ``start_id`` up to its root (one recursive query).

    ``model`` is a tree table (``id``, ``parent_id``); ``label`` its natural-key column.
    ``limit`` bounds the walk even if the stored tree were already cyclic.
    """
    base = (
        select(model.id, model.parent_id, label.label("label"), literal(1).label("depth"))
        .where(model.id == start_id)
        .cte("chain", recursive=True)
    )
    chain = base.union_all(
        select(model.id, model.parent_id, label.label("label"), base.c.depth + 1).where(
            model.id == base.c.parent_id, base.c.depth < limit
        )
    )
    rows = await session.execute(select(chain.c.id, chain.c.label).order_by(chain.c.depth))
    return [(row[0], row[1]) for row in rows]


async def check_reparent(
    session: AsyncSession,
    *,
    model: Any,
    label: Any,
    object_id: uuid.UUID,
    object_label: str,
    new_parent_id: uuid.UUID,
    field: str,
) -> None:
    """CycleDetected if ``new_parent_id`` is the object or one of its descendants."""
    chain = await ancestor_chain(session, model, label, new_parent_id)
    ids = [node_id for node_id, _ in chain]
    if object_id in ids:
        # X moved under P, whose ancestors lead back to X: X -> P -> ... -> X.
        loop = [name for _, name in chain[: ids.index(object_id)]]
        path = [object_label, *loop, object_label]
        raise CycleDetected(
            "the new parent is the object itself or below it: " + " -> ".join(path),
            path=path,
            field=field,
        )


_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)


def check_key(value: str, *, field: str, max_length: int) -> str:
    """A natural key (tag, requirement key): letters, digits, ``_ . -``; no leading symbol."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    value = value.strip()
    if not _KEY_RE.fullmatch(value) or len(value) > max_length:
        raise ValidationError(
            f"{field} {value!r} must start with a letter or digit, continue with letters, "
            f"digits, '_', '.' or '-', and have at most {max_length} characters",
            field=field,
        )
    return value
