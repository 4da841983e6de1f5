"""GraphQL: component types, components (a tree) and connectors."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, literal, or_, select
from sqlalchemy.engine import RowMapping
from strawberry import relay
from strawberry.scalars import JSON

from app.components.models import Component as ComponentModel
from app.components.models import ComponentType as ComponentTypeModel
from app.components.models import Connector as ConnectorModel
from app.graphql.common import (
    After,
    Before,
    First,
    GQLInfo,
    Last,
    args,
    decode_id,
    enum_of,
    parse_uuid,
)
from app.graphql.loaders import any_of, rows_of
from app.graphql.pagination import (
    Connection,
    PageArgs,
    SortDirection,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)
from app.projects.schema import like_pattern
from app.requirements.models import TraceLink as TraceLinkModel

if TYPE_CHECKING:
    from app.parameters.schema import Parameter, ParameterFilter, ParameterOrder
    from app.projects.schema import Project
    from app.requirements.schema import Requirement

C = ComponentModel.__table__
CT = ComponentTypeModel.__table__
K = ConnectorModel.__table__
TL = TraceLinkModel.__table__


@strawberry.enum(description="What a connector carries.")
class ConnectorKind(Enum):
    POWER = strawberry.enum_value("power", description="Electrical power.")
    DATA = strawberry.enum_value("data", description="Digital data.")
    FLUID = strawberry.enum_value("fluid", description="Propellant, coolant, gas.")
    MECHANICAL = strawberry.enum_value("mechanical", description="Structural load path.")
    THERMAL = strawberry.enum_value("thermal", description="Heat path.")
    SIGNAL = strawberry.enum_value("signal", description="Analog or discrete signal.")
    RF = strawberry.enum_value("rf", description="Radio-frequency (coax, waveguide).")
    OTHER = strawberry.enum_value("other", description="Anything else.")


@strawberry.enum(description="Direction of a port or of connectors relative to a component.")
class PortDirection(Enum):
    IN = strawberry.enum_value("in", description="Into the component.")
    OUT = strawberry.enum_value("out", description="Out of the component.")
    INOUT = strawberry.enum_value("inout", description="Both ways.")


@strawberry.enum(description="Which connectors of a component to list.")
class ConnectorDirection(Enum):
    INCOMING = strawberry.enum_value("incoming", description="The component is the target.")
    OUTGOING = strawberry.enum_value("outgoing", description="The component is the source.")
    BOTH = strawberry.enum_value("both", description="Either end.")


@strawberry.type(description="A connection point offered by a component type.")
class Port:
    name: str = strawberry.field(description="Port name, unique within the type.")
    kind: ConnectorKind = strawberry.field(description="What the port carries.")
    direction: PortDirection = strawberry.field(description="Flow direction.")


@strawberry.type(description="A kind of component: validates properties, offers ports.")
class ComponentType(relay.Node):
    id: relay.NodeID[str]
    code: str = strawberry.field(description="Upper-case code, unique in the project.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Free text.")
    property_schema: JSON = strawberry.field(
        description="JSON Schema every component's `properties` of this type must satisfy."
    )
    ports: list[Port] = strawberry.field(description="Ports a component of this type offers.")

    @classmethod
    def from_row(cls, r: RowMapping) -> ComponentType:
        ports = [
            Port(
                name=p.get("name", ""),
                kind=enum_of(ConnectorKind, p.get("kind", "other")),
                direction=enum_of(PortDirection, p.get("direction", "inout")),
            )
            for p in r["ports"]
        ]
        return cls(
            id=str(r["id"]),
            code=r["code"],
            name=r["name"],
            description=r["description"],
            property_schema=r["property_schema"],
            ports=ports,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[ComponentType | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(CT, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]


@strawberry.type(description="A part of the product: system, subsystem, unit. Forms a tree.")
class Component(relay.Node):
    id: relay.NodeID[str]
    tag: str = strawberry.field(description="Identifier unique in the project, e.g. EPS-BAT-01.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Free text.")
    properties: JSON = strawberry.field(description="Typed properties (validated by the type).")
    graphics: JSON = strawberry.field(description="Diagram placement: x, y, rotation (deg)…")
    version: int = strawberry.field(description="Optimistic-concurrency version.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")
    uuid_: strawberry.Private[uuid.UUID]
    project_id: strawberry.Private[uuid.UUID]
    parent_id: strawberry.Private[uuid.UUID | None]
    type_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> Component:
        return cls(
            id=str(r["id"]),
            uuid_=r["id"],
            project_id=r["project_id"],
            parent_id=r["parent_id"],
            type_id=r["type_id"],
            tag=r["tag"],
            name=r["name"],
            description=r["description"],
            properties=r["properties"],
            graphics=r["graphics"],
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Component | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(C, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="The project.")
    async def project(
        self, info: GQLInfo
    ) -> Annotated[Project, strawberry.lazy("app.projects.schema")]:
        from app.projects.models import Project as ProjectModel
        from app.projects.schema import Project

        row = await info.context.loaders.row(ProjectModel.__table__, self.project_id)
        assert row is not None  # visible component ⇒ visible project
        return Project.from_row(row)

    @strawberry.field(description="The parent component; null at the root.")
    async def parent(self, info: GQLInfo) -> Component | None:
        row = await info.context.loaders.row(C, self.parent_id)
        return Component.from_row(row) if row is not None else None

    @strawberry.field(description="Direct children, by tag.")
    async def children(self, info: GQLInfo) -> list[Component]:
        async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
            rows = await rows_of(
                info.context.session,
                select(C)
                .where(any_of(C.c.parent_id, parents), C.c.deleted_at.is_(None))
                .order_by(C.c.tag, C.c.id),
            )
            return list(rows)

        rows = await info.context.loaders.children(
            "component.children", self.uuid_, query, "parent_id"
        )
        return [Component.from_row(r) for r in rows]

    @strawberry.field(description="Ancestors from the root down to the parent.")
    async def ancestors(self, info: GQLInfo) -> list[Component]:
        rows = await _ancestors(info, self.uuid_)
        return [Component.from_row(r) for r in rows]

    @strawberry.field(description="Tags from the root to this component joined by '/'.")
    async def path(self, info: GQLInfo) -> str:
        rows = await _ancestors(info, self.uuid_)
        return "/".join([*(r["tag"] for r in rows), self.tag])

    @strawberry.field(name="type", description="The component type; null if untyped.")
    async def type_(self, info: GQLInfo) -> ComponentType | None:
        row = await info.context.loaders.row(CT, self.type_id)
        return ComponentType.from_row(row) if row is not None else None

    @strawberry.field(description="Parameters owned by this component.")
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
            info,
            self.project_id,
            self.uuid_,
            filter,
            order_by,
            args(info, first, after, last, before),
        )

    @strawberry.field(description="Connectors attached to this component.")
    async def connectors(
        self,
        info: GQLInfo,
        direction: Annotated[
            ConnectorDirection, strawberry.argument(description="Which end this component is.")
        ] = ConnectorDirection.BOTH,
    ) -> list[Connector]:
        async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
            stmt = select(K).where(K.c.deleted_at.is_(None))
            rows: list[RowMapping] = []
            if direction in (ConnectorDirection.OUTGOING, ConnectorDirection.BOTH):
                q = stmt.add_columns(K.c.source_component_id.label("_owner")).where(
                    any_of(K.c.source_component_id, parents)
                )
                rows += list((await info.context.session.execute(q)).mappings())
            if direction in (ConnectorDirection.INCOMING, ConnectorDirection.BOTH):
                q = stmt.add_columns(K.c.target_component_id.label("_owner")).where(
                    any_of(K.c.target_component_id, parents)
                )
                rows += list((await info.context.session.execute(q)).mappings())
            return sorted(rows, key=lambda r: (r["kind"], r["source_port"], str(r["id"])))

        rows = await info.context.loaders.children(
            ("component.connectors", direction), self.uuid_, query, "_owner"
        )
        seen: set[uuid.UUID] = set()
        out = []
        for r in rows:
            if r["id"] not in seen:  # a self-connector appears at both ends
                seen.add(r["id"])
                out.append(Connector.from_row(r))
        return out

    @strawberry.field(description="Requirements this component satisfies or is allocated.")
    async def requirements(
        self, info: GQLInfo
    ) -> list[Annotated[Requirement, strawberry.lazy("app.requirements.schema")]]:
        from app.requirements.models import Requirement as RequirementModel
        from app.requirements.schema import Requirement

        R = RequirementModel.__table__

        async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
            rows = await rows_of(
                info.context.session,
                select(R, TL.c.target_component_id.label("_owner"))
                .join(TL, TL.c.requirement_id == R.c.id)
                .where(any_of(TL.c.target_component_id, parents), R.c.deleted_at.is_(None))
                .distinct()
                .order_by(TL.c.target_component_id, R.c.key, R.c.id),
            )
            return list(rows)

        rows = await info.context.loaders.children(
            "component.requirements", self.uuid_, query, "_owner"
        )
        return [Requirement.from_row(r) for r in rows]


async def _ancestors(info: GQLInfo, component_id: uuid.UUID) -> list[RowMapping]:
    async def query(starts: list[uuid.UUID]) -> list[RowMapping]:
        # One recursive walk for every component asked about in this operation.
        anc = (
            select(C.c.id.label("start"), C.c.parent_id.label("next"), literal(0).label("depth"))
            .where(any_of(C.c.id, starts))
            .cte("anc", recursive=True)
        )
        parent = C.alias("p")
        anc = anc.union_all(
            select(anc.c.start, parent.c.parent_id, anc.c.depth + 1)
            .join(parent, parent.c.id == anc.c.next)
            .where(anc.c.depth < 100)
        )
        rows = await rows_of(
            info.context.session,
            select(C, anc.c.start.label("_start"), anc.c.depth.label("_depth"))
            .join(anc, C.c.id == anc.c.next)
            .order_by(anc.c.start, anc.c.depth.desc()),
        )
        return list(rows)

    return await info.context.loaders.children("component.ancestors", component_id, query, "_start")


@strawberry.type(description="One end of a connector.")
class ConnectorEnd:
    port: str = strawberry.field(description="Port name on the component's type.")
    component_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The component at this end.")
    async def component(self, info: GQLInfo) -> Component | None:
        row = await info.context.loaders.row(C, self.component_id)
        return Component.from_row(row) if row is not None else None


@strawberry.type(description="A link from a source component port to a target port.")
class Connector(relay.Node):
    id: relay.NodeID[str]
    kind: ConnectorKind = strawberry.field(description="What it carries.")
    name: str = strawberry.field(description="Optional label (harness id, net name…).")
    properties: JSON = strawberry.field(description="Open properties (gauge, length…).")
    version: int = strawberry.field(description="Optimistic-concurrency version.")
    source: ConnectorEnd = strawberry.field(description="Where it starts.")
    target: ConnectorEnd = strawberry.field(description="Where it ends.")

    @classmethod
    def from_row(cls, r: RowMapping) -> Connector:
        return cls(
            id=str(r["id"]),
            kind=ConnectorKind(r["kind"]),
            name=r["name"],
            properties=r["properties"],
            version=r["version"],
            source=ConnectorEnd(port=r["source_port"], component_id=r["source_component_id"]),
            target=ConnectorEnd(port=r["target_port"], component_id=r["target_component_id"]),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Connector | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(K, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]


@strawberry.input(description="Filter components.")
class ComponentFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of tag or name."
    )
    subtree_of: relay.GlobalID | None = strawberry.field(
        default=None, description="Only this component and its descendants."
    )
    type_code: str | None = strawberry.field(default=None, description="Only this type code.")
    roots_only: bool = strawberry.field(default=False, description="Only top-level components.")


@strawberry.enum(description="Component sort keys.")
class ComponentOrderField(Enum):
    TAG = strawberry.enum_value("tag", description="By tag.")
    NAME = strawberry.enum_value("name", description="By name.")
    CREATED_AT = strawberry.enum_value("created_at", description="By creation time.")


@strawberry.input(description="Component ordering (default: tag ascending).")
class ComponentOrder:
    field: ComponentOrderField = strawberry.field(description="Sort key.")
    direction: SortDirection = strawberry.field(default=SortDirection.ASC, description="Direction.")


async def component_connection(
    info: GQLInfo,
    project_id: uuid.UUID,
    filter: ComponentFilter | None,
    order_by: ComponentOrder | None,
    page_args: PageArgs,
) -> Connection[Component]:
    stmt: Select[Any] = select(C).where(C.c.project_id == project_id, C.c.deleted_at.is_(None))
    if filter is not None:
        if filter.search:
            pattern = like_pattern(filter.search)
            stmt = stmt.where(or_(C.c.tag.ilike(pattern), C.c.name.ilike(pattern)))
        if filter.roots_only:
            stmt = stmt.where(C.c.parent_id.is_(None))
        if filter.type_code:
            stmt = stmt.where(
                C.c.type_id.in_(
                    select(CT.c.id).where(
                        CT.c.project_id == project_id, CT.c.code == filter.type_code
                    )
                )
            )
        if filter.subtree_of is not None:
            root = decode_id(filter.subtree_of, "Component") or uuid.UUID(int=0)
            sub = select(C.c.id).where(C.c.id == root).cte("subtree", recursive=True)
            child = C.alias("child")
            sub = sub.union_all(select(child.c.id).join(sub, child.c.parent_id == sub.c.id))
            stmt = stmt.where(C.c.id.in_(select(sub.c.id)))
    key = str(order_by.field.value) if order_by else "tag"
    desc = bool(order_by and order_by.direction == SortDirection.DESC)
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=C.c[key],
        id_col=C.c.id,
        args=page_args,
        descending=desc,
    )

    count = counter(info.context.session, stmt)

    return to_connection(page, Component.from_row, lambda r: encode_cursor(r[key], r["id"]), count)


async def component_by_tag(info: GQLInfo, project_id: uuid.UUID, tag: str) -> Component | None:
    row = (
        (
            await info.context.session.execute(
                select(C).where(
                    C.c.project_id == project_id, C.c.tag == tag, C.c.deleted_at.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    return Component.from_row(row) if row is not None else None


async def component_types_of(info: GQLInfo, project_id: uuid.UUID) -> list[ComponentType]:
    rows = await info.context.session.execute(
        select(CT)
        .where(CT.c.project_id == project_id, CT.c.deleted_at.is_(None))
        .order_by(CT.c.code)
    )
    return [ComponentType.from_row(r) for r in rows.mappings()]


@strawberry.input(description="Filter connectors.")
class ConnectorFilter:
    kind: ConnectorKind | None = strawberry.field(default=None, description="Only this kind.")
    component: relay.GlobalID | None = strawberry.field(
        default=None, description="Only connectors attached to this component (either end)."
    )


async def connector_connection(
    info: GQLInfo, project_id: uuid.UUID, filter: ConnectorFilter | None, page_args: PageArgs
) -> Connection[Connector]:
    stmt: Select[Any] = select(K).where(K.c.project_id == project_id, K.c.deleted_at.is_(None))
    if filter is not None:
        if filter.kind is not None:
            stmt = stmt.where(K.c.kind == filter.kind.value)
        if filter.component is not None:
            cid = decode_id(filter.component, "Component") or uuid.UUID(int=0)
            stmt = stmt.where(or_(K.c.source_component_id == cid, K.c.target_component_id == cid))
    page = await fetch_page(
        info.context.session, stmt, key_col=K.c.created_at, id_col=K.c.id, args=page_args
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, Connector.from_row, lambda r: encode_cursor(r["created_at"], r["id"]), count
    )
