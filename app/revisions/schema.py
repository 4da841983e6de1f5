"""GraphQL: revisions (named baselines)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.engine import RowMapping
from strawberry import relay

from app.graphql.common import GQLInfo, parse_uuid
from app.graphql.pagination import (
    Connection,
    PageArgs,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)
from app.revisions.models import Revision as RevisionModel

RV = RevisionModel.__table__


@strawberry.type(description="A named baseline freezing parameters, requirements, components.")
class Revision(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Name unique in the project, e.g. `A`.")
    description: str = strawberry.field(description="Free text.")
    sequence: int = strawberry.field(description="Project event sequence it was taken at.")
    created_at: datetime = strawberry.field(description="When it was taken (UTC).")
    parameter_count: int = strawberry.field(description="Parameters frozen in it.")
    requirement_count: int = strawberry.field(description="Requirements frozen in it.")
    component_count: int = strawberry.field(description="Components frozen in it.")

    @classmethod
    def from_row(cls, r: RowMapping) -> Revision:
        snap = r["snapshot"] or {}
        return cls(
            id=str(r["id"]),
            name=r["name"],
            description=r["description"],
            sequence=r["sequence"],
            created_at=r["created_at"],
            parameter_count=len(snap.get("parameters", [])),
            requirement_count=len(snap.get("requirements", [])),
            component_count=len(snap.get("components", [])),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Revision | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(RV, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]


async def revision_connection(
    info: GQLInfo, project_id: uuid.UUID, page_args: PageArgs
) -> Connection[Revision]:
    stmt: Select[Any] = select(RV).where(RV.c.project_id == project_id, RV.c.deleted_at.is_(None))
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=RV.c.created_at,
        id_col=RV.c.id,
        args=page_args,
        descending=True,
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, Revision.from_row, lambda r: encode_cursor(r["created_at"], r["id"]), count
    )
