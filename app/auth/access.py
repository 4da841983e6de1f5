"""Who may see and change which project.

Reads ask :func:`visible_projects` once per request and filter every row by it, so an
object of a project the caller may not see is indistinguishable from a missing one.
Writes call :func:`require_role`, which raises ``NotFound`` for invisible projects (not
``Forbidden``: that would confirm the project exists) and ``Forbidden`` for a role that
is too low.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.errors import AuthError, Forbidden
from app.auth.models import TeamMember
from app.auth.principal import Principal
from app.projects.models import Project, ProjectMember

ROLE_RANK = {"viewer": 1, "editor": 2, "owner": 3}


class ProjectNotFound(AuthError):
    code = "NOT_FOUND"


async def visible_projects(
    session: AsyncSession, *, principal: Principal | None
) -> dict[uuid.UUID, str]:
    """``{project_id: role}`` for every live project the principal may see."""
    if principal is None:
        return {}
    if principal.is_admin:
        ids = await session.scalars(
            select(Project.id).where(
                Project.organization_id == principal.organization_id, Project.deleted_at.is_(None)
            )
        )
        return dict.fromkeys(ids, "owner")
    team_ids = select(TeamMember.team_id).where(TeamMember.user_id == principal.user_id)
    statement = (
        select(ProjectMember.project_id, ProjectMember.role)
        .join(Project, Project.id == ProjectMember.project_id)
        .where(
            Project.organization_id == principal.organization_id,
            Project.deleted_at.is_(None),
            (ProjectMember.user_id == principal.user_id) | ProjectMember.team_id.in_(team_ids),
        )
    )
    # Asked once per operation: straight through asyncpg where the session can.
    fetch_rows = getattr(session, "fetch_rows", None)
    if fetch_rows is not None:
        rows = await fetch_rows(statement)
    else:
        rows = await session.execute(statement)
    roles: dict[uuid.UUID, str] = {}
    for project_id, role in rows:
        if ROLE_RANK[role] > ROLE_RANK.get(roles.get(project_id, ""), 0):
            roles[project_id] = role
    return roles


async def require_role(
    session: AsyncSession, *, principal: Principal | None, project_id: uuid.UUID, minimum: str
) -> str:
    """The caller's role in the project if it is at least ``minimum``; raise otherwise."""
    if principal is None:
        raise ProjectNotFound("project not found")
    roles = await visible_projects(session, principal=principal)
    role = roles.get(project_id)
    if role is None:
        raise ProjectNotFound("project not found")
    if ROLE_RANK[role] < ROLE_RANK[minimum]:
        raise Forbidden(f"requires the {minimum} role in this project; you are {role}")
    if minimum != "viewer" and not principal.can_write:
        raise Forbidden("this token is read-only")
    return role
