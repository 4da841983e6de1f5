"""Shared GraphQL helpers: enums mapped to database values, global ids, page args."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.graphql.context import Context
from app.graphql.pagination import PageArgs, page_args

E = TypeVar("E", bound=Enum)
GQLInfo = Info[Context, None]


def enum_of(cls: type[E], value: str) -> E:
    """Database strings are lower-case (or as stored); GraphQL enum names upper-case."""
    return cls[value.upper()] if value.upper() in cls.__members__ else cls(value)


def parse_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError):
        return None


def decode_id(gid: relay.GlobalID | strawberry.ID | str, expected: str) -> uuid.UUID | None:
    """The UUID inside a global id of the expected type; None if malformed or mistyped."""
    try:
        parsed = gid if isinstance(gid, relay.GlobalID) else relay.GlobalID.from_id(str(gid))
    except Exception:  # malformed base64/format: treat like a missing object
        return None
    if parsed.type_name != expected:
        return None
    return parse_uuid(parsed.node_id)


def global_id(type_name: str, id_: Any) -> relay.GlobalID:
    return relay.GlobalID(type_name, str(id_))


def args(
    info: GQLInfo, first: int | None, after: str | None, last: int | None, before: str | None
) -> PageArgs:
    s = info.context.settings
    return page_args(
        first, after, last, before, default=s.default_page_size, maximum=s.max_page_size
    )


FIRST_DOC = "Page size from the start (default 50, max 500)."
AFTER_DOC = "Cursor: return edges after this one."
LAST_DOC = "Page size from the end (max 500)."
BEFORE_DOC = "Cursor: return edges before this one."


First = Annotated[int | None, strawberry.argument(description=FIRST_DOC)]
After = Annotated[str | None, strawberry.argument(description=AFTER_DOC)]
Last = Annotated[int | None, strawberry.argument(description=LAST_DOC)]
Before = Annotated[str | None, strawberry.argument(description=BEFORE_DOC)]
