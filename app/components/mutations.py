"""GraphQL mutations of component types, components (a tree) and connectors."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.components import connectors as connector_service
from app.components import service
from app.components.models import Component as ComponentModel
from app.components.models import ComponentType as ComponentTypeModel
from app.components.models import Connector as ConnectorModel
from app.components.schema import (
    Component,
    ComponentType,
    Connector,
    ConnectorKind,
    PortDirection,
)
from app.errors import ValidationError as DomainValidationError
from app.graphql.common import decode_id
from app.graphql.mutations import GQLInfo, fetch_row, given, mutate, result_union

C = ComponentModel.__table__
CT = ComponentTypeModel.__table__
K = ConnectorModel.__table__


def _id(gid: relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID of a global id; a mistyped or malformed one reads as missing."""
    return decode_id(gid, type_name) or uuid.UUID(int=0)


def _opt_id(gid: relay.GlobalID | None, type_name: str) -> uuid.UUID | None:
    return None if gid is None else _id(gid, type_name)


def _unless_null(value: Any) -> Any:
    """For non-nullable columns: an explicit null means "leave as is"."""
    return given(strawberry.UNSET if value is None else value)


def _object(value: Any, field: str) -> Any:
    """A JSON input that must be an object (UNSET and None pass through)."""
    if value is strawberry.UNSET or value is None or isinstance(value, dict):
        return value
    raise DomainValidationError(f"{field} must be a JSON object", field=field)


# --------------------------------------------------------------------------- types


@strawberry.input(description="A port a component type offers.")
class PortInput:
    name: str = strawberry.field(
        description="Unique in the type: 1-100 letters, digits, '_', '.' or '-'."
    )
    kind: ConnectorKind = strawberry.field(description="What the port carries.")
    direction: PortDirection = strawberry.field(description="Flow direction.")


@strawberry.input(description="A new component type.")
class ComponentTypeCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    code: str = strawberry.field(
        description="Upper-case code unique in the project, e.g. BATTERY (max 64 characters)."
    )
    name: str = strawberry.field(description="Display name (1 to 200 characters).")
    description: str = strawberry.field(default="", description="Free text.")
    property_schema: JSON | None = strawberry.field(
        default=None,
        description="JSON Schema (draft 2020-12, local $refs only) for components' "
        "`properties`; null accepts anything.",
    )
    ports: list[PortInput] = strawberry.field(
        default_factory=list, description="Ports offered (at most 200)."
    )


@strawberry.type(description="The created component type.")
class ComponentTypeCreateSuccess:
    component_type: ComponentType = strawberry.field(description="The new type.")


# --------------------------------------------------------------------------- components


@strawberry.input(description="A new component.")
class ComponentCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    tag: str = strawberry.field(
        description="Identifier unique in the project, e.g. EPS-BAT-01 (max 100 characters)."
    )
    name: str = strawberry.field(description="Display name (1 to 200 characters).")
    type_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Its `ComponentType`; null for an untyped component."
    )
    parent_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Parent component; null for a root."
    )
    description: str = strawberry.field(default="", description="Free text.")
    properties: JSON | None = strawberry.field(
        default=None, description="JSON object validated against the type's schema."
    )
    graphics: JSON | None = strawberry.field(
        default=None, description="Diagram placement (x, y, rotation in degrees…)."
    )


@strawberry.input(description="Changes to a component; omitted fields stay as they are.")
class ComponentUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The component.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )
    tag: str | None = strawberry.field(default=strawberry.UNSET, description="New tag.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    type_id: relay.GlobalID | None = strawberry.field(
        default=strawberry.UNSET,
        description="New type; null makes it untyped. It must still offer every port in use.",
    )
    properties: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="New properties (replace all; validated)."
    )
    graphics: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="New diagram placement (replaces all)."
    )


@strawberry.input(description="Move a component elsewhere in its project's tree.")
class ComponentMoveInput:
    id: relay.GlobalID = strawberry.field(description="The component.")
    parent_id: relay.GlobalID | None = strawberry.field(
        description="The new parent (not the component or below it); null makes it a root."
    )
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )


@strawberry.input(description="Delete a leaf component with its parameters and connectors.")
class ComponentDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The component.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )


@strawberry.type(description="The created or changed component.")
class ComponentSuccess:
    component: Component = strawberry.field(description="The component as it is now.")


@strawberry.type(description="The deleted component, as it was.")
class ComponentDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted one.")
    component: Component = strawberry.field(description="Its last state.")


# --------------------------------------------------------------------------- connectors


@strawberry.input(description="Connect a source component port to a target port.")
class ConnectorCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    source_component_id: relay.GlobalID = strawberry.field(description="Source component.")
    source_port: str = strawberry.field(description="Port of the source type (out or inout).")
    target_component_id: relay.GlobalID = strawberry.field(description="Target component.")
    target_port: str = strawberry.field(description="Port of the target type (in or inout).")
    kind: ConnectorKind = strawberry.field(
        description="What it carries; both ports must be of this kind (or OTHER)."
    )
    name: str = strawberry.field(default="", description="Optional label (max 200 characters).")
    properties: JSON | None = strawberry.field(
        default=None, description="Open JSON object (gauge, length…)."
    )


@strawberry.input(description="Changes to a connector; omitted fields stay as they are.")
class ConnectorUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The connector.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New label.")
    kind: ConnectorKind | None = strawberry.field(
        default=strawberry.UNSET, description="New kind (ports are re-checked)."
    )
    properties: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="New properties (replace all)."
    )
    source_port: str | None = strawberry.field(
        default=strawberry.UNSET, description="New port on the same source component."
    )
    target_port: str | None = strawberry.field(
        default=strawberry.UNSET, description="New port on the same target component."
    )


@strawberry.input(description="Delete a connector.")
class ConnectorDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The connector.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )


@strawberry.type(description="The created or changed connector.")
class ConnectorSuccess:
    connector: Connector = strawberry.field(description="The connector as it is now.")


@strawberry.type(description="The deleted connector, as it was.")
class ConnectorDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted one.")
    connector: Connector = strawberry.field(description="Its last state.")


if TYPE_CHECKING:
    ComponentTypeCreateResult = Any
    ComponentCreateResult = Any
    ComponentUpdateResult = Any
    ComponentMoveResult = Any
    ComponentDeleteResult = Any
    ConnectorCreateResult = Any
    ConnectorUpdateResult = Any
    ConnectorDeleteResult = Any
else:
    ComponentTypeCreateResult = result_union(
        "ComponentTypeCreateResult", ComponentTypeCreateSuccess, "The new type, or why not."
    )
    ComponentCreateResult = result_union(
        "ComponentCreateResult", ComponentSuccess, "The new component, or why not."
    )
    ComponentUpdateResult = result_union(
        "ComponentUpdateResult", ComponentSuccess, "The changed component, or why not."
    )
    ComponentMoveResult = result_union(
        "ComponentMoveResult", ComponentSuccess, "The moved component, or why not."
    )
    ComponentDeleteResult = result_union(
        "ComponentDeleteResult", ComponentDeleteSuccess, "The deleted component, or why not."
    )
    ConnectorCreateResult = result_union(
        "ConnectorCreateResult", ConnectorSuccess, "The new connector, or why not."
    )
    ConnectorUpdateResult = result_union(
        "ConnectorUpdateResult", ConnectorSuccess, "The changed connector, or why not."
    )
    ConnectorDeleteResult = result_union(
        "ConnectorDeleteResult", ConnectorDeleteSuccess, "The deleted connector, or why not."
    )


async def _component(info: GQLInfo, comp: Any) -> ComponentSuccess:
    return ComponentSuccess(component=Component.from_row(await fetch_row(info.context, C, comp.id)))


async def _connector(info: GQLInfo, conn: Any) -> ConnectorSuccess:
    return ConnectorSuccess(connector=Connector.from_row(await fetch_row(info.context, K, conn.id)))


@strawberry.type
class ComponentMutation:
    @strawberry.mutation(description="Create a component type: property schema and ports.")
    async def component_type_create(
        self,
        info: GQLInfo,
        input: Annotated[ComponentTypeCreateInput, strawberry.argument(description="The type.")],
    ) -> ComponentTypeCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.component_type_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                code=input.code,
                name=input.name,
                description=input.description,
                property_schema=_object(input.property_schema, "propertySchema"),
                ports=[
                    {"name": p.name, "kind": p.kind.value, "direction": p.direction.value}
                    for p in input.ports
                ],
            )

        async def success(t: Any) -> ComponentTypeCreateSuccess:
            row = await fetch_row(info.context, CT, t.id)
            return ComponentTypeCreateSuccess(component_type=ComponentType.from_row(row))

        return await mutate(info, call, success)

    @strawberry.mutation(
        description="Create a component; `properties` must satisfy its type's JSON Schema."
    )
    async def component_create(
        self,
        info: GQLInfo,
        input: Annotated[ComponentCreateInput, strawberry.argument(description="The component.")],
    ) -> ComponentCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.component_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                tag=input.tag,
                name=input.name,
                type_id=_opt_id(input.type_id, "ComponentType"),
                parent_id=_opt_id(input.parent_id, "Component"),
                description=input.description,
                properties=_object(input.properties, "properties"),
                graphics=_object(input.graphics, "graphics"),
            )

        return await mutate(info, call, lambda c: _component(info, c))

    @strawberry.mutation(
        description="Edit a component (version + 1); properties are re-validated when they "
        "or the type change."
    )
    async def component_update(
        self,
        info: GQLInfo,
        input: Annotated[ComponentUpdateInput, strawberry.argument(description="The edit.")],
    ) -> ComponentUpdateResult:
        async def call(actor: Any, meta: Any) -> Any:
            type_id: Any = input.type_id
            if type_id is not strawberry.UNSET and type_id is not None:
                type_id = _id(type_id, "ComponentType")
            return await service.component_update(
                info.context.session,
                actor=actor,
                meta=meta,
                component_id=_id(input.id, "Component"),
                expected_version=input.expected_version,
                tag=_unless_null(input.tag),
                name=_unless_null(input.name),
                description=_unless_null(input.description),
                type_id=given(type_id),
                properties=_unless_null(_object(input.properties, "properties")),
                graphics=_unless_null(_object(input.graphics, "graphics")),
            )

        return await mutate(info, call, lambda c: _component(info, c))

    @strawberry.mutation(description="Re-parent a component within its project; no cycles.")
    async def component_move(
        self,
        info: GQLInfo,
        input: Annotated[ComponentMoveInput, strawberry.argument(description="The move.")],
    ) -> ComponentMoveResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.component_move(
                info.context.session,
                actor=actor,
                meta=meta,
                component_id=_id(input.id, "Component"),
                parent_id=_opt_id(input.parent_id, "Component"),
                expected_version=input.expected_version,
            )

        return await mutate(info, call, lambda c: _component(info, c))

    @strawberry.mutation(
        description="Delete a leaf component with its parameters and connectors (refused while "
        "it has children or others use its parameters)."
    )
    async def component_delete(
        self,
        info: GQLInfo,
        input: Annotated[ComponentDeleteInput, strawberry.argument(description="Which one.")],
    ) -> ComponentDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.component_delete(
                info.context.session,
                actor=actor,
                meta=meta,
                component_id=_id(input.id, "Component"),
                expected_version=input.expected_version,
            )

        async def success(c: Any) -> ComponentDeleteSuccess:
            row = await fetch_row(info.context, C, c.id)
            return ComponentDeleteSuccess(
                deleted_id=relay.GlobalID("Component", str(c.id)), component=Component.from_row(row)
            )

        return await mutate(info, call, success)

    @strawberry.mutation(
        description="Connect two component ports; both must exist on the components' types."
    )
    async def connector_create(
        self,
        info: GQLInfo,
        input: Annotated[ConnectorCreateInput, strawberry.argument(description="The connector.")],
    ) -> ConnectorCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await connector_service.connector_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                source_component_id=_id(input.source_component_id, "Component"),
                source_port=input.source_port,
                target_component_id=_id(input.target_component_id, "Component"),
                target_port=input.target_port,
                kind=str(input.kind.value),
                name=input.name,
                properties=_object(input.properties, "properties"),
            )

        return await mutate(info, call, lambda c: _connector(info, c))

    @strawberry.mutation(description="Edit a connector (version + 1); ports are re-checked.")
    async def connector_update(
        self,
        info: GQLInfo,
        input: Annotated[ConnectorUpdateInput, strawberry.argument(description="The edit.")],
    ) -> ConnectorUpdateResult:
        async def call(actor: Any, meta: Any) -> Any:
            kind = input.kind
            return await connector_service.connector_update(
                info.context.session,
                actor=actor,
                meta=meta,
                connector_id=_id(input.id, "Connector"),
                expected_version=input.expected_version,
                name=_unless_null(input.name),
                kind=_unless_null(kind.value if isinstance(kind, ConnectorKind) else kind),
                properties=_unless_null(_object(input.properties, "properties")),
                source_port=_unless_null(input.source_port),
                target_port=_unless_null(input.target_port),
            )

        return await mutate(info, call, lambda c: _connector(info, c))

    @strawberry.mutation(description="Delete a connector (soft delete).")
    async def connector_delete(
        self,
        info: GQLInfo,
        input: Annotated[ConnectorDeleteInput, strawberry.argument(description="Which one.")],
    ) -> ConnectorDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await connector_service.connector_delete(
                info.context.session,
                actor=actor,
                meta=meta,
                connector_id=_id(input.id, "Connector"),
                expected_version=input.expected_version,
            )

        async def success(c: Any) -> ConnectorDeleteSuccess:
            row = await fetch_row(info.context, K, c.id)
            return ConnectorDeleteSuccess(
                deleted_id=relay.GlobalID("Connector", str(c.id)), connector=Connector.from_row(row)
            )

        return await mutate(info, call, success)
