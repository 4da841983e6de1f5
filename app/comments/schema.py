"""GraphQL: threaded comments."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.engine import RowMapping
from strawberry import relay

from app.comments.models import Comment as CommentModel
from app.graphql.common import GQLInfo, parse_uuid
from app.graphql.pagination import (
    Connection,
    PageArgs,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)

if TYPE_CHECKING:
    from app.auth.schema import User

CM = CommentModel.__table__
_TYPE_NAMES = {
    "project": "Project",
    "component": "Component",
    "connector": "Connector",
    "parameter": "Parameter",
    "requirement": "Requirement",
    "trade_study": "TradeStudy",
    "revision": "Revision",
}


@strawberry.type(description="A comment on an object of the thread; replies form threads.")
class Comment(relay.Node):
    id: relay.NodeID[str]
    body: str = strawberry.field(description="Text (Markdown), up to 20,000 characters.")
    created_at: datetime = strawberry.field(description="When it was written (UTC).")
    updated_at: datetime = strawberry.field(description="Last edit (UTC).")
    target_id: relay.GlobalID = strawberry.field(description="Global id of the commented object.")
    parent_id: strawberry.Private[uuid.UUID | None]
    author_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> Comment:
        return cls(
            id=str(r["id"]),
            body=r["body"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            target_id=relay.GlobalID(_TYPE_NAMES[r["target_type"]], str(r["target_id"])),
            parent_id=r["parent_id"],
            author_id=r["author_id"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Comment | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(CM, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="The comment this one replies to.")
    async def parent(self, info: GQLInfo) -> Comment | None:
        row = await info.context.loaders.row(CM, self.parent_id)
        return Comment.from_row(row) if row is not None else None

    @strawberry.field(description="The author (null if the account was removed).")
    async def author(
        self, info: GQLInfo
    ) -> Annotated[User, strawberry.lazy("app.auth.schema")] | None:
        from app.auth.models import User as UserModel
        from app.auth.schema import User

        if self.author_id is None:
            return None
        row = await info.context.session.get(UserModel, self.author_id)
        return User.from_model(row) if row is not None else None


async def comment_connection(
    info: GQLInfo, project_id: uuid.UUID, target_id: uuid.UUID | None, page_args: PageArgs
) -> Connection[Comment]:
    stmt: Select[Any] = select(CM).where(CM.c.project_id == project_id, CM.c.deleted_at.is_(None))
    if target_id is not None:
        stmt = stmt.where(CM.c.target_id == target_id)
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=CM.c.created_at,
        id_col=CM.c.id,
        args=page_args,
        descending=True,
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, Comment.from_row, lambda r: encode_cursor(r["created_at"], r["id"]), count
    )
