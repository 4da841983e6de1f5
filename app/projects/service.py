"""Projects and their members. Services flush, never commit.

Roles: editors may rename and describe a project; only owners manage members and
delete it. A project always keeps at least one owner.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.models import User
from app.auth.principal import Principal
from app.projects.errors import Duplicate, Forbidden, LastOwner, NotFound
from app.projects.models import ROLES, Project, ProjectMember
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    authorize,
    check_choice,
    clean_text,
    created_diff,
    finish,
    lock_project,
    set_fields,
)

MAX_NAME = 200


async def _check_name_free(
    session: AsyncSession, *, organization_id: uuid.UUID, name: str, exclude: uuid.UUID | None
) -> None:
    query = select(Project.id).where(
        Project.organization_id == organization_id,
        Project.name == name,
        Project.deleted_at.is_(None),
    )
    if exclude is not None:
        query = query.where(Project.id != exclude)
    if await session.scalar(query.limit(1)) is not None:
        raise Duplicate(f"a project named {name!r} already exists", field="name")


async def project_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    name: str,
    description: str = "",
) -> Project:
    """Create a project in the actor's organization; the actor becomes its owner."""
    if not actor.can_write:
        raise Forbidden("this token is read-only")
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    await _check_name_free(session, organization_id=actor.organization_id, name=name, exclude=None)
    project = Project(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        name=name,
        description=description,
        event_sequence=0,
    )
    session.add(project)
    session.add(ProjectMember(project_id=project.id, user_id=actor.user_id, role="owner"))
    try:
        await session.flush()
    except IntegrityError as exc:
        # No project lock exists yet to serialise creators: a concurrent twin wins.
        if "uq_projects_org_name_live" in str(exc.orig):
            raise Duplicate(f"a project named {name!r} already exists", field="name") from None
        raise
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project.id,
        action="project.create",
        event_kind="project.created",
        object_type="project",
        object_id=project.id,
        diff=created_diff(project, ("name", "description")),
    )
    return project


async def _load_project(session: AsyncSession, project_id: uuid.UUID) -> Project:
    project = await session.scalar(
        select(Project)
        .where(Project.id == project_id, Project.deleted_at.is_(None))
        .execution_options(populate_existing=True)
    )
    if project is None:
        raise NotFound("project not found")
    return project


async def project_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
) -> Project:
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    now = await lock_project(session, project_id)
    project = await _load_project(session, project_id)
    changes: dict[str, object] = {}
    if name is not UNSET:
        changes["name"] = clean_text(name, field="name", max_length=MAX_NAME)
        await _check_name_free(
            session,
            organization_id=project.organization_id,
            name=str(changes["name"]),
            exclude=project.id,
        )
    if description is not UNSET:
        changes["description"] = clean_text(
            description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
        )
    diff = set_fields(project, changes)
    if diff:
        project.updated_at = now
        await finish(
            session,
            actor=actor,
            meta=meta,
            project_id=project.id,
            action="project.update",
            event_kind="project.updated",
            object_type="project",
            object_id=project.id,
            diff=diff,
        )
    return project


async def project_delete(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, project_id: uuid.UUID
) -> Project:
    """Soft-delete a project (owner only). Its contents stay, invisible with it."""
    await authorize(session, actor=actor, project_id=project_id, minimum="owner")
    now = await lock_project(session, project_id)
    project = await _load_project(session, project_id)
    project.deleted_at = now
    project.updated_at = now
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project.id,
        action="project.delete",
        event_kind="project.deleted",
        object_type="project",
        object_id=project.id,
        diff={"deleted_at": [None, now]},
    )
    return project


# --------------------------------------------------------------------------- members


async def _member(
    session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID
) -> ProjectMember | None:
    return await session.scalar(
        select(ProjectMember)
        .where(ProjectMember.project_id == project_id, ProjectMember.user_id == user_id)
        .execution_options(populate_existing=True)
    )


async def _owner_count(session: AsyncSession, project_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ProjectMember)
        .where(ProjectMember.project_id == project_id, ProjectMember.role == "owner")
    )
    return int(count or 0)


async def _member_action(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    member: ProjectMember,
    action: str,
    diff: dict[str, list[object]],
) -> None:
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=member.project_id,
        action=f"project.member_{action}",
        event_kind=f"member.{action}d" if action != "add" else "member.added",
        object_type="project_member",
        object_id=member.id,
        diff=diff,
        payload={
            "object_type": "project_member",
            "id": member.id,
            "user_id": member.user_id,
            "role": member.role,
            "changes": diff,
        },
    )


async def member_add(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
) -> ProjectMember:
    """Give a user of the project's organization a role in the project (owner only)."""
    check_choice(role, ROLES, field="role")
    await authorize(session, actor=actor, project_id=project_id, minimum="owner")
    await lock_project(session, project_id)
    user = await session.scalar(
        select(User).where(
            User.id == user_id,
            User.organization_id == actor.organization_id,
            User.deleted_at.is_(None),
            User.is_active.is_(True),
        )
    )
    if user is None:
        raise NotFound("user not found", field="userId")
    if await _member(session, project_id, user_id) is not None:
        raise Duplicate("the user is already a member of this project", field="userId")
    member = ProjectMember(id=uuid.uuid4(), project_id=project_id, user_id=user_id, role=role)
    session.add(member)
    await session.flush()
    await _member_action(
        session,
        actor=actor,
        meta=meta,
        member=member,
        action="add",
        diff={"user_id": [None, user_id], "role": [None, role]},
    )
    return member


async def member_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
) -> ProjectMember:
    """Change a member's role (owner only); the last owner cannot be demoted."""
    check_choice(role, ROLES, field="role")
    await authorize(session, actor=actor, project_id=project_id, minimum="owner")
    now = await lock_project(session, project_id)
    member = await _member(session, project_id, user_id)
    if member is None:
        raise NotFound("member not found", field="userId")
    if member.role == "owner" and role != "owner" and await _owner_count(session, project_id) <= 1:
        raise LastOwner("the project would have no owner left", field="role")
    diff = set_fields(member, {"role": role})
    if diff:
        member.updated_at = now
        await _member_action(
            session, actor=actor, meta=meta, member=member, action="update", diff=diff
        )
    return member


async def member_remove(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
) -> ProjectMember:
    """Remove a member (owner only); the last owner cannot be removed. Returns the old row."""
    await authorize(session, actor=actor, project_id=project_id, minimum="owner")
    await lock_project(session, project_id)
    member = await _member(session, project_id, user_id)
    if member is None:
        raise NotFound("member not found", field="userId")
    if member.role == "owner" and await _owner_count(session, project_id) <= 1:
        raise LastOwner("the project would have no owner left", field="userId")
    await session.delete(member)
    await session.flush()
    await _member_action(
        session,
        actor=actor,
        meta=meta,
        member=member,
        action="remove",
        diff={"user_id": [user_id, None], "role": [member.role, None]},
    )
    return member
