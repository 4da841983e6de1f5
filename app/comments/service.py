"""Threaded comments on any object of a project's thread.

Commenting is editing content (editor role). Only the author edits a comment; the
author or a project owner deletes it (soft: replies stay readable in context).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.comments.errors import Forbidden, NotFound, ValidationError
from app.comments.models import TARGET_TYPES, Comment
from app.components.models import Component, Connector
from app.parameters.models import Parameter
from app.projects.models import Project
from app.requirements.models import Requirement
from app.revisions.models import Revision
from app.service_support import (
    authorize,
    check_choice,
    clean_text,
    finish,
    lock_project,
    set_fields,
)
from app.trade_studies.models import TradeStudy

MAX_BODY = 20_000
_TARGETS: dict[str, Any] = {
    "component": Component,
    "connector": Connector,
    "parameter": Parameter,
    "requirement": Requirement,
    "trade_study": TradeStudy,
    "revision": Revision,
}


async def _target_project(
    session: AsyncSession, target_type: str, target_id: uuid.UUID
) -> uuid.UUID:
    if target_type == "project":
        found = await session.scalar(
            select(Project.id).where(Project.id == target_id, Project.deleted_at.is_(None))
        )
    else:
        model = _TARGETS[target_type]
        found = await session.scalar(
            select(model.project_id).where(model.id == target_id, model.deleted_at.is_(None))
        )
    if found is None:
        raise NotFound(f"{target_type} not found", field="targetId")
    project_id: uuid.UUID = found
    return project_id


def _payload(comment: Comment, diff: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "object_type": "comment",
        "id": comment.id,
        "target_type": comment.target_type,
        "target_id": comment.target_id,
        "parent_id": comment.parent_id,
        "changes": diff,
    }


async def comment_add(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    target_type: str,
    target_id: uuid.UUID,
    body: str,
    parent_id: uuid.UUID | None = None,
) -> Comment:
    """Comment on an object (a reply when ``parent_id`` names a comment on the same one)."""
    check_choice(target_type, TARGET_TYPES, field="targetType")
    body = clean_text(body, field="body", max_length=MAX_BODY)
    project_id = await _target_project(session, target_type, target_id)
    await authorize(
        session,
        actor=actor,
        project_id=project_id,
        minimum="editor",
        not_found=f"{target_type} not found",
        field="targetId",
    )
    await lock_project(session, project_id)
    if parent_id is not None:
        parent = await session.scalar(
            select(Comment).where(
                Comment.id == parent_id,
                Comment.project_id == project_id,
                Comment.deleted_at.is_(None),
            )
        )
        if parent is None:
            raise NotFound("parent comment not found", field="parentId")
        if (parent.target_type, parent.target_id) != (target_type, target_id):
            raise ValidationError(
                "a reply is on the same object as its parent comment", field="parentId"
            )
    comment = Comment(
        id=uuid.uuid4(),
        project_id=project_id,
        parent_id=parent_id,
        target_type=target_type,
        target_id=target_id,
        author_id=actor.user_id,
        body=body,
    )
    session.add(comment)
    await session.flush()
    diff: dict[str, list[Any]] = {"body": [None, body]}
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="comment.add",
        event_kind="comment.added",
        object_type="comment",
        object_id=comment.id,
        diff=diff,
        payload=_payload(comment, diff),
    )
    return comment


async def _comment_for_write(
    session: AsyncSession, *, actor: Principal, comment_id: uuid.UUID
) -> tuple[Comment, str, datetime]:
    project_id = await session.scalar(
        select(Comment.project_id).where(Comment.id == comment_id, Comment.deleted_at.is_(None))
    )
    if project_id is None:
        raise NotFound("comment not found", field="id")
    role = await authorize(
        session,
        actor=actor,
        project_id=project_id,
        minimum="editor",
        not_found="comment not found",
        field="id",
    )
    now = await lock_project(session, project_id)
    comment = await session.scalar(
        select(Comment)
        .where(Comment.id == comment_id, Comment.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if comment is None:
        raise NotFound("comment not found", field="id")
    return comment, role, now


async def comment_edit(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, comment_id: uuid.UUID, body: str
) -> Comment:
    """Change a comment's text (its author only)."""
    body = clean_text(body, field="body", max_length=MAX_BODY)
    comment, _, now = await _comment_for_write(session, actor=actor, comment_id=comment_id)
    if comment.author_id != actor.user_id:
        raise Forbidden("only the author can edit a comment")
    diff = set_fields(comment, {"body": body})
    if diff:
        comment.updated_at = now
        await finish(
            session,
            actor=actor,
            meta=meta,
            project_id=comment.project_id,
            action="comment.edit",
            event_kind="comment.edited",
            object_type="comment",
            object_id=comment.id,
            diff=diff,
            payload=_payload(comment, diff),
        )
    return comment


async def comment_delete(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, comment_id: uuid.UUID
) -> Comment:
    """Soft-delete a comment (its author, or an owner of the project)."""
    comment, role, now = await _comment_for_write(session, actor=actor, comment_id=comment_id)
    if comment.author_id != actor.user_id and role != "owner":
        raise Forbidden("only the author or a project owner can delete a comment")
    comment.deleted_at = comment.updated_at = now
    diff: dict[str, list[Any]] = {"deleted_at": [None, now]}
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=comment.project_id,
        action="comment.delete",
        event_kind="comment.deleted",
        object_type="comment",
        object_id=comment.id,
        diff=diff,
        payload=_payload(comment, diff),
    )
    return comment
