"""GraphQL mutations of projects and their members."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry import relay

from app.graphql.common import decode_id
from app.graphql.mutations import GQLInfo, fetch_row, given, mutate, result_union
from app.projects import service
from app.projects.models import Project as ProjectModel
from app.projects.models import ProjectMember as MemberModel
from app.projects.schema import Member, Project, Role

T = ProjectModel.__table__
M = MemberModel.__table__


def _id(gid: relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID of a global id; a mistyped or malformed one reads as missing."""
    return decode_id(gid, type_name) or uuid.UUID(int=0)


def _unless_null(value: Any) -> Any:
    """For non-nullable columns: an explicit null means "leave as is"."""
    return given(strawberry.UNSET if value is None else value)


def _member(m: Any) -> Member:
    return Member(role=Role(m.role), user_id=m.user_id, team_id=m.team_id, created_at=m.created_at)


# --------------------------------------------------------------------------- projects


@strawberry.input(description="A new project; the caller becomes its owner.")
class ProjectCreateInput:
    name: str = strawberry.field(
        description="Display name, unique in the organization (1 to 200 characters)."
    )
    description: str = strawberry.field(default="", description="Free text (Markdown).")


@strawberry.input(description="Changes to a project; omitted fields stay as they are.")
class ProjectUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The project.")
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="New name (unique in the organization)."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )


@strawberry.input(description="Delete a project (owners only).")
class ProjectDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The project.")


@strawberry.type(description="The created or changed project.")
class ProjectSuccess:
    project: Project = strawberry.field(description="The project as it is now.")


@strawberry.type(description="The deleted project.")
class ProjectDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted project.")
    name: str = strawberry.field(description="Its name.")


# --------------------------------------------------------------------------- members


@strawberry.input(description="Give a user of the organization a role in a project.")
class ProjectMemberAddInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    user_id: relay.GlobalID = strawberry.field(
        description="Global id of a `User` of the project's organization."
    )
    role: Role = strawberry.field(description="The role to grant.")


@strawberry.input(description="Change a member's role.")
class ProjectMemberUpdateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    user_id: relay.GlobalID = strawberry.field(description="Global id of the member `User`.")
    role: Role = strawberry.field(description="The new role (the last owner stays owner).")


@strawberry.input(description="Remove a member from a project.")
class ProjectMemberRemoveInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    user_id: relay.GlobalID = strawberry.field(description="Global id of the member `User`.")


@strawberry.type(description="A membership change and the project's members after it.")
class ProjectMemberSuccess:
    project: Project = strawberry.field(description="The project.")
    member: Member = strawberry.field(
        description="The membership added or changed (as it was, when removed)."
    )
    members: list[Member] = strawberry.field(description="Every member of the project now.")


if TYPE_CHECKING:
    ProjectCreateResult = Any
    ProjectUpdateResult = Any
    ProjectDeleteResult = Any
    ProjectMemberAddResult = Any
    ProjectMemberUpdateResult = Any
    ProjectMemberRemoveResult = Any
else:
    ProjectCreateResult = result_union(
        "ProjectCreateResult", ProjectSuccess, "The new project, or why not."
    )
    ProjectUpdateResult = result_union(
        "ProjectUpdateResult", ProjectSuccess, "The changed project, or why nothing changed."
    )
    ProjectDeleteResult = result_union(
        "ProjectDeleteResult", ProjectDeleteSuccess, "The deleted project, or why not."
    )
    ProjectMemberAddResult = result_union(
        "ProjectMemberAddResult", ProjectMemberSuccess, "The new membership, or why not."
    )
    ProjectMemberUpdateResult = result_union(
        "ProjectMemberUpdateResult", ProjectMemberSuccess, "The changed membership, or why not."
    )
    ProjectMemberRemoveResult = result_union(
        "ProjectMemberRemoveResult", ProjectMemberSuccess, "The removed membership, or why not."
    )


async def _project_success(info: GQLInfo, project: Any) -> ProjectSuccess:
    return ProjectSuccess(project=Project.from_row(await fetch_row(info.context, T, project.id)))


async def _member_success(info: GQLInfo, member: Any) -> ProjectMemberSuccess:
    ctx = info.context
    rows = await ctx.session.scalars(
        select(MemberModel)
        .where(MemberModel.project_id == member.project_id)
        .order_by(MemberModel.created_at, MemberModel.id)
    )
    return ProjectMemberSuccess(
        project=Project.from_row(await fetch_row(ctx, T, member.project_id)),
        member=_member(member),
        members=[_member(m) for m in rows],
    )


@strawberry.type
class ProjectMutation:
    @strawberry.mutation(description="Create a project in the caller's organization.")
    async def project_create(
        self,
        info: GQLInfo,
        input: Annotated[ProjectCreateInput, strawberry.argument(description="The project.")],
    ) -> ProjectCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.project_create(
                info.context.session,
                actor=actor,
                meta=meta,
                name=input.name,
                description=input.description,
            )

        return await mutate(info, call, lambda p: _project_success(info, p))

    @strawberry.mutation(description="Rename or describe a project (editors and owners).")
    async def project_update(
        self,
        info: GQLInfo,
        input: Annotated[ProjectUpdateInput, strawberry.argument(description="The changes.")],
    ) -> ProjectUpdateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.project_update(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.id, "Project"),
                name=_unless_null(input.name),
                description=_unless_null(input.description),
            )

        return await mutate(info, call, lambda p: _project_success(info, p))

    @strawberry.mutation(
        description="Delete a project (owners only; soft delete: its contents go with it)."
    )
    async def project_delete(
        self,
        info: GQLInfo,
        input: Annotated[ProjectDeleteInput, strawberry.argument(description="Which one.")],
    ) -> ProjectDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.project_delete(
                info.context.session, actor=actor, meta=meta, project_id=_id(input.id, "Project")
            )

        async def success(p: Any) -> ProjectDeleteSuccess:
            return ProjectDeleteSuccess(
                deleted_id=relay.GlobalID("Project", str(p.id)), name=p.name
            )

        return await mutate(info, call, success)

    @strawberry.mutation(description="Give a user a role in a project (owners only).")
    async def project_member_add(
        self,
        info: GQLInfo,
        input: Annotated[ProjectMemberAddInput, strawberry.argument(description="Who and how.")],
    ) -> ProjectMemberAddResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.member_add(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                user_id=_id(input.user_id, "User"),
                role=str(input.role.value),
            )

        return await mutate(info, call, lambda m: _member_success(info, m))

    @strawberry.mutation(
        description="Change a member's role (owners only; the last owner cannot be demoted)."
    )
    async def project_member_update(
        self,
        info: GQLInfo,
        input: Annotated[ProjectMemberUpdateInput, strawberry.argument(description="The change.")],
    ) -> ProjectMemberUpdateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.member_update(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                user_id=_id(input.user_id, "User"),
                role=str(input.role.value),
            )

        return await mutate(info, call, lambda m: _member_success(info, m))

    @strawberry.mutation(
        description="Remove a member (owners only; the last owner cannot be removed)."
    )
    async def project_member_remove(
        self,
        info: GQLInfo,
        input: Annotated[ProjectMemberRemoveInput, strawberry.argument(description="Who.")],
    ) -> ProjectMemberRemoveResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.member_remove(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                user_id=_id(input.user_id, "User"),
            )

        return await mutate(info, call, lambda m: _member_success(info, m))
