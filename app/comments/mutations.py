"""GraphQL mutations of comments: add (on any object of a project), edit, delete."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.comments import service
from app.comments.models import Comment as CommentModel
from app.comments.schema import Comment
from app.errors import NotFound
from app.graphql.common import decode_id
from app.graphql.mutations import GQLInfo, fetch_row, mutate, result_union

CM = CommentModel.__table__
# GraphQL type name of a commentable object -> the service's target type.
TARGET_TYPES = {
    "Project": "project",
    "Component": "component",
    "Connector": "connector",
    "Parameter": "parameter",
    "Requirement": "requirement",
    "TradeStudy": "trade_study",
    "Revision": "revision",
}


def _id(gid: relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID of a global id; a mistyped or malformed one reads as missing."""
    return decode_id(gid, type_name) or uuid.UUID(int=0)


def _target(gid: relay.GlobalID) -> tuple[str, uuid.UUID]:
    """The service's (target_type, id) of any commentable global id; NotFound otherwise."""
    target_type = TARGET_TYPES.get(gid.type_name)
    target_id = decode_id(gid, gid.type_name) if target_type else None
    if target_type is None or target_id is None:
        raise NotFound("target not found", field="targetId")
    return target_type, target_id


@strawberry.input(description="A comment on an object (or a reply to a comment on it).")
class CommentAddInput:
    target_id: relay.GlobalID = strawberry.field(
        description="Global id of a Project, Component, Connector, Parameter, Requirement, "
        "TradeStudy or Revision."
    )
    body: str = strawberry.field(description="Text (Markdown), 1 to 20,000 characters.")
    parent_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The comment replied to (on the same object); null for none."
    )


@strawberry.input(description="New text for a comment (its author only).")
class CommentEditInput:
    id: relay.GlobalID = strawberry.field(description="The comment.")
    body: str = strawberry.field(description="New text (Markdown), 1 to 20,000 characters.")


@strawberry.input(description="Delete a comment (its author or a project owner).")
class CommentDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The comment.")


@strawberry.type(description="The added or edited comment.")
class CommentSuccess:
    comment: Comment = strawberry.field(description="The comment as it is now.")


@strawberry.type(description="The deleted comment, as it was.")
class CommentDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted one.")
    comment: Comment = strawberry.field(description="Its last state.")


if TYPE_CHECKING:
    CommentAddResult = Any
    CommentEditResult = Any
    CommentDeleteResult = Any
else:
    CommentAddResult = result_union("CommentAddResult", CommentSuccess, "The comment, or why not.")
    CommentEditResult = result_union(
        "CommentEditResult", CommentSuccess, "The edited comment, or why not."
    )
    CommentDeleteResult = result_union(
        "CommentDeleteResult", CommentDeleteSuccess, "The deleted comment, or why not."
    )


async def _comment(info: GQLInfo, comment: Any) -> CommentSuccess:
    return CommentSuccess(comment=Comment.from_row(await fetch_row(info.context, CM, comment.id)))


@strawberry.type
class CommentMutation:
    @strawberry.mutation(description="Comment on an object of a project (editors and owners).")
    async def comment_add(
        self,
        info: GQLInfo,
        input: Annotated[CommentAddInput, strawberry.argument(description="The comment.")],
    ) -> CommentAddResult:
        async def call(actor: Any, meta: Any) -> Any:
            target_type, target_id = _target(input.target_id)
            return await service.comment_add(
                info.context.session,
                actor=actor,
                meta=meta,
                target_type=target_type,
                target_id=target_id,
                body=input.body,
                parent_id=None if input.parent_id is None else _id(input.parent_id, "Comment"),
            )

        return await mutate(info, call, lambda c: _comment(info, c))

    @strawberry.mutation(description="Change a comment's text (its author only).")
    async def comment_edit(
        self,
        info: GQLInfo,
        input: Annotated[CommentEditInput, strawberry.argument(description="The edit.")],
    ) -> CommentEditResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.comment_edit(
                info.context.session,
                actor=actor,
                meta=meta,
                comment_id=_id(input.id, "Comment"),
                body=input.body,
            )

        return await mutate(info, call, lambda c: _comment(info, c))

    @strawberry.mutation(
        description="Delete a comment (its author or a project owner; replies stay readable)."
    )
    async def comment_delete(
        self,
        info: GQLInfo,
        input: Annotated[CommentDeleteInput, strawberry.argument(description="Which one.")],
    ) -> CommentDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.comment_delete(
                info.context.session, actor=actor, meta=meta, comment_id=_id(input.id, "Comment")
            )

        async def success(c: Any) -> CommentDeleteSuccess:
            row = await fetch_row(info.context, CM, c.id)
            return CommentDeleteSuccess(
                deleted_id=relay.GlobalID("Comment", str(c.id)), comment=Comment.from_row(row)
            )

        return await mutate(info, call, success)
