"""GraphQL: the audit log (project owners and organization admins only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import Select, select
from sqlalchemy.engine import RowMapping
from strawberry import relay
from strawberry.scalars import JSON

from app.audit.models import AuditEntry as AuditModel
from app.graphql.common import GQLInfo, decode_id
from app.graphql.pagination import (
    Connection,
    PageArgs,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)

A = AuditModel.__table__


@strawberry.type(description="One audited change: who did what to which object, when.")
class AuditEntry:
    id: strawberry.ID = strawberry.field(description="Sequence number of the entry.")
    occurred_at: datetime = strawberry.field(description="When (UTC).")
    actor_label: str = strawberry.field(description="Actor's email at the time.")
    actor_id: relay.GlobalID | None = strawberry.field(description="Global id of the actor User.")
    action: str = strawberry.field(description="What was done, e.g. `parameter.update`.")
    object_type: str | None = strawberry.field(description="Type of the changed object.")
    object_id: str | None = strawberry.field(description="Id of the changed object.")
    diff: JSON = strawberry.field(description="Changed fields: {field: [old, new]}.")
    request_id: str | None = strawberry.field(description="Request id (matches server logs).")

    @classmethod
    def from_row(cls, r: RowMapping) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(r["id"])),
            occurred_at=r["occurred_at"],
            actor_label=r["actor_label"],
            actor_id=relay.GlobalID("User", str(r["actor_id"])) if r["actor_id"] else None,
            action=r["action"],
            object_type=r["object_type"],
            object_id=str(r["object_id"]) if r["object_id"] else None,
            diff=r["diff"],
            request_id=r["request_id"],
        )


@strawberry.input(description="Filter audit entries.")
class AuditLogFilter:
    actor: relay.GlobalID | None = strawberry.field(default=None, description="Only this user.")
    action: str | None = strawberry.field(
        default=None, description="Exact action, or a prefix ending in '.' (e.g. `parameter.`)."
    )
    since: datetime | None = strawberry.field(default=None, description="At or after (UTC).")
    until: datetime | None = strawberry.field(default=None, description="Before (UTC).")


async def audit_connection(
    info: GQLInfo, project_id: uuid.UUID, filter: AuditLogFilter | None, page_args: PageArgs
) -> Connection[AuditEntry]:
    role = (await info.context.visible_projects()).get(project_id)
    if role != "owner":
        raise GraphQLError(
            "the audit log is visible to project owners only", extensions={"code": "FORBIDDEN"}
        )
    stmt: Select[Any] = select(A).where(A.c.project_id == project_id)
    if filter is not None:
        if filter.actor is not None:
            stmt = stmt.where(A.c.actor_id == (decode_id(filter.actor, "User") or uuid.UUID(int=0)))
        if filter.action:
            if filter.action.endswith("."):
                stmt = stmt.where(A.c.action.startswith(filter.action, autoescape=True))
            else:
                stmt = stmt.where(A.c.action == filter.action)
        if filter.since is not None:
            stmt = stmt.where(A.c.occurred_at >= filter.since)
        if filter.until is not None:
            stmt = stmt.where(A.c.occurred_at < filter.until)
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=A.c.occurred_at,
        id_col=A.c.id,
        args=page_args,
        descending=True,
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, AuditEntry.from_row, lambda r: encode_cursor(r["occurred_at"], r["id"]), count
    )
