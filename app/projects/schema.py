"""GraphQL: projects, their members, and the project-scoped entry points."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError
from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from strawberry import relay

from app.auth.models import User as UserModel
from app.graphql.common import After, Before, First, GQLInfo, Last, args, enum_of
from app.graphql.pagination import (
    Connection,
    SortDirection,
    encode_cursor,
    fetch_page,
    to_connection,
)
from app.projects.models import Project as ProjectModel
from app.projects.models import ProjectMember as MemberModel

if TYPE_CHECKING:
    from app.audit.schema import AuditEntry, AuditLogFilter
    from app.auth.schema import User
    from app.comments.schema import Comment
    from app.components.schema import (
        Component,
        ComponentFilter,
        ComponentOrder,
        ComponentType,
        Connector,
        ConnectorFilter,
    )
    from app.parameters.schema import Parameter, ParameterFilter, ParameterOrder
    from app.requirements.schema import Requirement, RequirementFilter, RequirementOrder
    from app.revisions.schema import Revision
    from app.trade_studies.schema import TradeStudy

T = ProjectModel.__table__
M = MemberModel.__table__


@strawberry.enum(description="A member's role in a project.")
class Role(Enum):
    OWNER = strawberry.enum_value("owner", description="Edits content, manages members, deletes.")
    EDITOR = strawberry.enum_value("editor", description="Reads and edits content.")
    VIEWER = strawberry.enum_value("viewer", description="Reads only.")


@strawberry.type(description="A user's (or a team's) role in a project.")
class Member:
    role: Role = strawberry.field(description="The role granted.")
    user_id: strawberry.Private[uuid.UUID | None]
    team_id: strawberry.Private[uuid.UUID | None]
    created_at: datetime = strawberry.field(description="When the role was granted (UTC).")

    @strawberry.field(description="The member user (null for a team membership).")
    async def user(
        self, info: GQLInfo
    ) -> Annotated[User, strawberry.lazy("app.auth.schema")] | None:
        from app.auth.schema import User

        if self.user_id is None:
            return None
        row = await info.context.session.get(UserModel, self.user_id)
        return User.from_model(row) if row is not None else None


@strawberry.type(description="A workspace holding one product's digital thread.")
class Project(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name, unique in the organization.")
    description: str = strawberry.field(description="Free text.")
    event_sequence: int = strawberry.field(
        description="Sequence number of the latest change event (for `projectEvents(after:)`)."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change of the project row (UTC).")
    uuid_: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, r: RowMapping) -> Project:
        return cls(
            id=str(r["id"]),
            uuid_=r["id"],
            name=r["name"],
            description=r["description"],
            event_sequence=r["event_sequence"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Project | None]:
        from app.graphql.common import parse_uuid

        ids = [parse_uuid(i) for i in node_ids]
        rows = await info.context.loaders.rows(T, [i or uuid.UUID(int=0) for i in ids])
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="The caller's role in this project.")
    async def viewer_role(self, info: GQLInfo) -> Role:
        return enum_of(Role, (await info.context.visible_projects())[self.uuid_])

    @strawberry.field(description="Members and their roles.")
    async def members(self, info: GQLInfo) -> list[Member]:
        rows = await info.context.session.execute(
            select(M).where(M.c.project_id == self.uuid_).order_by(M.c.created_at, M.c.id)
        )
        return [
            Member(
                role=Role(r["role"]),
                user_id=r["user_id"],
                team_id=r["team_id"],
                created_at=r["created_at"],
            )
            for r in rows.mappings()
        ]

    @strawberry.field(description="Components of the project (a tree; filter to a subtree).")
    async def components(
        self,
        info: GQLInfo,
        filter: Annotated[
            Annotated[ComponentFilter, strawberry.lazy("app.components.schema")] | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        order_by: Annotated[
            Annotated[ComponentOrder, strawberry.lazy("app.components.schema")] | None,
            strawberry.argument(description="Sort key and direction; ties break by id."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Component, strawberry.lazy("app.components.schema")]]:
        from app.components.schema import component_connection

        return await component_connection(
            info, self.uuid_, filter, order_by, args(info, first, after, last, before)
        )

    @strawberry.field(description="Component types defined in the project.")
    async def component_types(
        self, info: GQLInfo
    ) -> list[Annotated[ComponentType, strawberry.lazy("app.components.schema")]]:
        from app.components.schema import component_types_of

        return await component_types_of(info, self.uuid_)

    @strawberry.field(description="A component by its tag (e.g. `EPS-BAT-01`), or null.")
    async def component(
        self, info: GQLInfo, tag: Annotated[str, strawberry.argument(description="Tag.")]
    ) -> Annotated[Component, strawberry.lazy("app.components.schema")] | None:
        from app.components.schema import component_by_tag

        return await component_by_tag(info, self.uuid_, tag)

    @strawberry.field(description="Connectors between the project's component ports.")
    async def connectors(
        self,
        info: GQLInfo,
        filter: Annotated[
            Annotated[ConnectorFilter, strawberry.lazy("app.components.schema")] | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Connector, strawberry.lazy("app.components.schema")]]:
        from app.components.schema import connector_connection

        return await connector_connection(
            info, self.uuid_, filter, args(info, first, after, last, before)
        )

    @strawberry.field(description="Parameters of the project (of all components).")
    async def parameters(
        self,
        info: GQLInfo,
        filter: Annotated[
            Annotated[ParameterFilter, strawberry.lazy("app.parameters.schema")] | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        order_by: Annotated[
            Annotated[ParameterOrder, strawberry.lazy("app.parameters.schema")] | None,
            strawberry.argument(description="Sort key and direction; ties break by id."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Parameter, strawberry.lazy("app.parameters.schema")]]:
        from app.parameters.schema import parameter_connection

        return await parameter_connection(
            info, self.uuid_, None, filter, order_by, args(info, first, after, last, before)
        )

    @strawberry.field(description="A parameter by its symbol (e.g. `m_wet`), or null.")
    async def parameter(
        self, info: GQLInfo, symbol: Annotated[str, strawberry.argument(description="Symbol.")]
    ) -> Annotated[Parameter, strawberry.lazy("app.parameters.schema")] | None:
        from app.parameters.schema import parameter_by_symbol

        return await parameter_by_symbol(info, self.uuid_, symbol)

    @strawberry.field(description="Requirements of the project.")
    async def requirements(
        self,
        info: GQLInfo,
        filter: Annotated[
            Annotated[RequirementFilter, strawberry.lazy("app.requirements.schema")] | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        order_by: Annotated[
            Annotated[RequirementOrder, strawberry.lazy("app.requirements.schema")] | None,
            strawberry.argument(description="Sort key and direction; ties break by id."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Requirement, strawberry.lazy("app.requirements.schema")]]:
        from app.requirements.schema import requirement_connection

        return await requirement_connection(
            info, self.uuid_, filter, order_by, args(info, first, after, last, before)
        )

    @strawberry.field(description="A requirement by its key (e.g. `REQ-MASS-001`), or null.")
    async def requirement(
        self, info: GQLInfo, key: Annotated[str, strawberry.argument(description="Key.")]
    ) -> Annotated[Requirement, strawberry.lazy("app.requirements.schema")] | None:
        from app.requirements.schema import requirement_by_key

        return await requirement_by_key(info, self.uuid_, key)

    @strawberry.field(description="Trade studies of the project, newest first.")
    async def trade_studies(
        self,
        info: GQLInfo,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[TradeStudy, strawberry.lazy("app.trade_studies.schema")]]:
        from app.trade_studies.schema import trade_study_connection

        return await trade_study_connection(
            info, self.uuid_, args(info, first, after, last, before)
        )

    @strawberry.field(description="Named baselines of the project, newest first.")
    async def revisions(
        self,
        info: GQLInfo,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Revision, strawberry.lazy("app.revisions.schema")]]:
        from app.revisions.schema import revision_connection

        return await revision_connection(info, self.uuid_, args(info, first, after, last, before))

    @strawberry.field(description="Comments anywhere in the project, newest first.")
    async def comments(
        self,
        info: GQLInfo,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[Comment, strawberry.lazy("app.comments.schema")]]:
        from app.comments.schema import comment_connection

        return await comment_connection(
            info, self.uuid_, None, args(info, first, after, last, before)
        )

    @strawberry.field(description="Audit log of the project, newest first (owners only).")
    async def audit_log(
        self,
        info: GQLInfo,
        filter: Annotated[
            Annotated[AuditLogFilter, strawberry.lazy("app.audit.schema")] | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Annotated[AuditEntry, strawberry.lazy("app.audit.schema")]]:
        from app.audit.schema import audit_connection

        return await audit_connection(
            info, self.uuid_, filter, args(info, first, after, last, before)
        )


@strawberry.input(description="Filter projects.")
class ProjectFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the name."
    )


@strawberry.enum(description="Project sort keys.")
class ProjectOrderField(Enum):
    NAME = strawberry.enum_value("name", description="By name.")
    CREATED_AT = strawberry.enum_value("created_at", description="By creation time.")


@strawberry.input(description="Project ordering.")
class ProjectOrder:
    field: ProjectOrderField = strawberry.field(description="Sort key.")
    direction: SortDirection = strawberry.field(default=SortDirection.ASC, description="Direction.")


MAX_SEARCH = 200


def like_pattern(text: str) -> str:
    if len(text) > MAX_SEARCH:
        raise GraphQLError(
            f"search text is limited to {MAX_SEARCH} characters",
            extensions={"code": "BAD_USER_INPUT"},
        )
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@strawberry.type
class ProjectQuery:
    @strawberry.field(description="Projects the caller may see.")
    async def projects(
        self,
        info: GQLInfo,
        filter: Annotated[
            ProjectFilter | None,
            strawberry.argument(description="Narrow the list; all conditions must hold."),
        ] = None,
        order_by: Annotated[
            ProjectOrder | None,
            strawberry.argument(description="Sort key and direction; ties break by id."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[Project]:
        page_args = args(info, first, after, last, before)
        visible = list(await info.context.visible_projects())
        stmt: Select[Any] = select(T).where(T.c.id.in_(visible), T.c.deleted_at.is_(None))
        if filter is not None and filter.search:
            stmt = stmt.where(T.c.name.ilike(like_pattern(filter.search)))
        key_name = str(order_by.field.value) if order_by else "name"
        desc = bool(order_by and order_by.direction == SortDirection.DESC)
        key_col = T.c[key_name]
        page = await fetch_page(
            info.context.session,
            stmt,
            key_col=key_col,
            id_col=T.c.id,
            args=page_args,
            descending=desc,
        )

        async def count() -> int:
            return int(
                await info.context.session.scalar(select(func.count()).select_from(stmt.subquery()))
                or 0
            )

        return to_connection(
            page, Project.from_row, lambda r: encode_cursor(r[key_name], r["id"]), count
        )

    @strawberry.field(description="A project by global id; null if missing or not visible.")
    async def project(
        self, info: GQLInfo, id: Annotated[relay.GlobalID, strawberry.argument(description="Id.")]
    ) -> Project | None:
        from app.graphql.common import decode_id

        pid = decode_id(id, "Project")
        if pid is None:
            return None
        row = await info.context.loaders.row(T, pid)
        return Project.from_row(row) if row is not None else None
