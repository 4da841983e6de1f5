"""Component types, components (a tree) and connectors between their ports.

A component's ``properties`` must satisfy its type's JSON Schema (draft 2020-12);
a connector's ports must exist on its components' types, with a direction that lets
power, data... flow from source to target.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema import exceptions as js_exceptions
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta, record
from app.auth.principal import Principal
from app.components.errors import (
    Duplicate,
    HasDependents,
    NotFound,
    PortNotFound,
    ValidationError,
    VersionConflict,
)
from app.components.models import (
    CONNECTOR_KINDS,
    PORT_DIRECTIONS,
    Component,
    ComponentType,
    Connector,
)
from app.parameters.models import Parameter, ParameterDependency
from app.requirements.models import Requirement, TraceLink
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    authorize,
    authorize_object,
    check_choice,
    check_json_object,
    check_key,
    check_reparent,
    clean_text,
    created_diff,
    finish,
    lock_project,
    set_fields,
)

MAX_NAME = 200
MAX_TAG = 100
MAX_CODE = 64
MAX_PORTS = 200
_CODE_RE = re.compile(r"[A-Z][A-Z0-9_]*", re.ASCII)
_PORT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
_SOURCE_DIRECTIONS = ("out", "inout")
_TARGET_DIRECTIONS = ("in", "inout")


# --------------------------------------------------------------------------- types


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")


def _may_backtrack(pattern: str) -> bool:
    """A quantified group that itself contains a quantifier: `(a+)+`, `(x*y)*`, `(.*){9}`."""
    return len(pattern) > 500 or _NESTED_QUANTIFIER.search(pattern) is not None


def _check_schema(schema: Any) -> dict[str, Any]:
    checked = check_json_object(schema, field="propertySchema")
    try:
        Draft202012Validator.check_schema(checked)
    except js_exceptions.SchemaError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        suffix = f" (at {where})" if where else ""
        raise ValidationError(
            f"not a valid JSON Schema: {exc.message}{suffix}", field="propertySchema"
        ) from None
    for node in _walk(checked):
        patterns = [node.get("pattern"), *(node.get("patternProperties") or {}).keys()]
        for pattern in patterns:
            if isinstance(pattern, str) and _may_backtrack(pattern):
                # Python's regex engine backtracks; nested quantifiers make one input
                # take minutes. Refused at definition time (a ReDoS guard).
                raise ValidationError(
                    f"pattern {pattern[:80]!r} nests quantifiers and may backtrack "
                    "catastrophically; simplify it",
                    field="propertySchema",
                )
        for keyword in ("$ref", "$dynamicRef"):
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                # Schemas are self-contained: nothing is fetched or resolved remotely.
                raise ValidationError(
                    f"{keyword} {ref!r} is not local; only '#...' references are allowed",
                    field="propertySchema",
                )
    return checked


def _check_ports(ports: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    if len(ports) > MAX_PORTS:
        raise ValidationError(f"at most {MAX_PORTS} ports", field="ports")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        pre = f"ports.{i}."
        if not isinstance(port, Mapping):
            raise ValidationError("a port is an object {name, kind, direction}", field=f"ports.{i}")
        name = port.get("name")
        if not isinstance(name, str) or not _PORT_RE.fullmatch(name) or len(name) > 100:
            raise ValidationError(
                "a port name is 1-100 letters, digits, '_', '.' or '-'", field=pre + "name"
            )
        if name in seen:
            raise ValidationError(f"port {name!r} is declared twice", field=pre + "name")
        seen.add(name)
        kind = port.get("kind")
        direction = port.get("direction")
        check_choice(str(kind), CONNECTOR_KINDS, field=pre + "kind")
        check_choice(str(direction), PORT_DIRECTIONS, field=pre + "direction")
        unknown = set(port) - {"name", "kind", "direction"}
        if unknown:
            raise ValidationError(
                f"unknown port attribute(s): {', '.join(sorted(unknown))}", field=f"ports.{i}"
            )
        out.append({"name": name, "kind": str(kind), "direction": str(direction)})
    return out


async def component_type_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    code: str,
    name: str,
    description: str = "",
    property_schema: Mapping[str, Any] | None = None,
    ports: Sequence[Mapping[str, Any]] = (),
) -> ComponentType:
    """A component type: ``code`` (``BATTERY``), a JSON Schema for properties, ports."""
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    if not isinstance(code, str) or not _CODE_RE.fullmatch(code) or len(code) > MAX_CODE:
        raise ValidationError(
            "code is upper-case letters, digits and '_', starting with a letter", field="code"
        )
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    schema = _check_schema(dict(property_schema) if property_schema is not None else {})
    port_list = _check_ports(ports)
    await lock_project(session, project_id)
    taken = await session.scalar(
        select(ComponentType.id).where(
            ComponentType.project_id == project_id,
            ComponentType.code == code,
            ComponentType.deleted_at.is_(None),
        )
    )
    if taken is not None:
        raise Duplicate(f"a component type with code {code!r} already exists", field="code")
    ctype = ComponentType(
        id=uuid.uuid4(),
        project_id=project_id,
        code=code,
        name=name,
        description=description,
        property_schema=schema,
        ports=port_list,
    )
    session.add(ctype)
    await session.flush()
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="component_type.create",
        event_kind="component_type.created",
        object_type="component_type",
        object_id=ctype.id,
        diff=created_diff(ctype, ("code", "name", "description", "property_schema", "ports")),
    )
    return ctype


# --------------------------------------------------------------------------- components


def _validate_properties(ctype: ComponentType | None, properties: dict[str, Any]) -> None:
    if ctype is None or not ctype.property_schema:
        return
    validator = Draft202012Validator(ctype.property_schema)
    try:
        error = js_exceptions.best_match(validator.iter_errors(properties))
    except Exception:  # unresolvable $ref and the like: the schema, not the input
        raise ValidationError(
            f"the schema of type {ctype.code} cannot be applied", field="properties"
        ) from None
    if error is None:
        return
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [r for r in error.validator_value if r not in error.instance]
        path += missing[:1]
    raise ValidationError(
        f"properties do not match type {ctype.code}: {error.message}",
        field=".".join(["properties", *path]),
    )


async def _type_in_project(
    session: AsyncSession, project_id: uuid.UUID, type_id: uuid.UUID
) -> ComponentType:
    ctype = await session.scalar(
        select(ComponentType).where(
            ComponentType.id == type_id,
            ComponentType.project_id == project_id,
            ComponentType.deleted_at.is_(None),
        )
    )
    if ctype is None:
        raise NotFound("component type not found", field="typeId")
    return ctype


async def component_in_project(
    session: AsyncSession, project_id: uuid.UUID, component_id: uuid.UUID, *, field: str
) -> Component:
    comp = await session.scalar(
        select(Component).where(
            Component.id == component_id,
            Component.project_id == project_id,
            Component.deleted_at.is_(None),
        )
    )
    if comp is None:
        raise NotFound("component not found", field=field)
    return comp


async def _check_tag_free(
    session: AsyncSession, project_id: uuid.UUID, tag: str, exclude: uuid.UUID | None
) -> None:
    query = select(Component.id).where(
        Component.project_id == project_id, Component.tag == tag, Component.deleted_at.is_(None)
    )
    if exclude is not None:
        query = query.where(Component.id != exclude)
    if await session.scalar(query.limit(1)) is not None:
        raise Duplicate(f"a component with tag {tag!r} already exists", field="tag")


async def component_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    tag: str,
    name: str,
    type_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    description: str = "",
    properties: Mapping[str, Any] | None = None,
    graphics: Mapping[str, Any] | None = None,
) -> Component:
    """Create a component; ``properties`` are validated against the type's schema."""
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    tag = check_key(tag, field="tag", max_length=MAX_TAG)
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    props = check_json_object(dict(properties or {}), field="properties")
    gfx = check_json_object(dict(graphics or {}), field="graphics")
    await lock_project(session, project_id)
    await _check_tag_free(session, project_id, tag, None)
    ctype = await _type_in_project(session, project_id, type_id) if type_id else None
    if parent_id is not None:
        await component_in_project(session, project_id, parent_id, field="parentId")
    _validate_properties(ctype, props)
    comp = Component(
        id=uuid.uuid4(),
        project_id=project_id,
        parent_id=parent_id,
        type_id=type_id,
        tag=tag,
        name=name,
        description=description,
        properties=props,
        graphics=gfx,
        version=1,
    )
    session.add(comp)
    await session.flush()
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="component.create",
        event_kind="component.created",
        object_type="component",
        object_id=comp.id,
        diff=created_diff(
            comp, ("tag", "name", "description", "type_id", "parent_id", "properties", "graphics")
        ),
    )
    return comp


async def _load_component(
    session: AsyncSession, component_id: uuid.UUID, expected_version: int | None
) -> Component:
    comp = await session.scalar(
        select(Component)
        .where(Component.id == component_id, Component.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if comp is None:
        raise NotFound("component not found", field="id")
    if expected_version is not None and comp.version != expected_version:
        raise VersionConflict(
            f"{comp.tag} is at version {comp.version}, not {expected_version}",
            current_version=comp.version,
        )
    return comp


async def _component_for_write(
    session: AsyncSession,
    *,
    actor: Principal,
    component_id: uuid.UUID,
    expected_version: int | None,
) -> tuple[Component, datetime]:
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Component,
        object_id=component_id,
        what="component",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    return await _load_component(session, component_id, expected_version), now


async def bump_version(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    obj: Component | Connector,
    diff: dict[str, list[Any]],
    now: datetime,
    action: str,
    event_kind: str,
    object_type: str,
) -> None:
    old = obj.version
    obj.version = old + 1
    obj.updated_at = now
    diff["version"] = [old, obj.version]
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=obj.project_id,
        action=action,
        event_kind=event_kind,
        object_type=object_type,
        object_id=obj.id,
        diff=diff,
    )


async def component_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    component_id: uuid.UUID,
    expected_version: int | None = None,
    tag: str | Unset = UNSET,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    type_id: uuid.UUID | Unset | None = UNSET,
    properties: Mapping[str, Any] | Unset = UNSET,
    graphics: Mapping[str, Any] | Unset = UNSET,
) -> Component:
    """Edit a component (version + 1). Properties are re-validated when they or the type
    change; a new type must still offer every port its connectors use."""
    comp, now = await _component_for_write(
        session, actor=actor, component_id=component_id, expected_version=expected_version
    )
    changes: dict[str, Any] = {}
    if tag is not UNSET:
        changes["tag"] = check_key(tag, field="tag", max_length=MAX_TAG)
        await _check_tag_free(session, comp.project_id, changes["tag"], comp.id)
    if name is not UNSET:
        changes["name"] = clean_text(name, field="name", max_length=MAX_NAME)
    if description is not UNSET:
        changes["description"] = clean_text(
            description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
        )
    if properties is not UNSET:
        changes["properties"] = check_json_object(dict(properties), field="properties")
    if graphics is not UNSET:
        changes["graphics"] = check_json_object(dict(graphics), field="graphics")
    new_type_id = comp.type_id
    if type_id is not UNSET:
        changes["type_id"] = new_type_id = type_id
    ctype = await _type_in_project(session, comp.project_id, new_type_id) if new_type_id else None
    if "properties" in changes or "type_id" in changes:
        _validate_properties(ctype, changes.get("properties", comp.properties))
    if "type_id" in changes and changes["type_id"] != comp.type_id:
        await _check_ports_still_exist(session, comp, ctype)
    diff = set_fields(comp, changes)
    if diff:
        await bump_version(
            session,
            actor=actor,
            meta=meta,
            obj=comp,
            diff=diff,
            now=now,
            action="component.update",
            event_kind="component.updated",
            object_type="component",
        )
    return comp


async def _check_ports_still_exist(
    session: AsyncSession, comp: Component, ctype: ComponentType | None
) -> None:
    names = {p.get("name") for p in ctype.ports} if ctype else set()
    connectors = await session.scalars(
        select(Connector).where(
            or_(Connector.source_component_id == comp.id, Connector.target_component_id == comp.id),
            Connector.deleted_at.is_(None),
        )
    )
    for conn in connectors:
        port = conn.source_port if conn.source_component_id == comp.id else conn.target_port
        if port not in names:
            raise PortNotFound(
                f"a connector uses port {port!r} of {comp.tag}, which the new type lacks",
                component=comp.tag,
                port=port,
                available=sorted(str(n) for n in names),
                field="typeId",
            )


async def component_move(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    component_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    expected_version: int | None = None,
) -> Component:
    """Re-parent a component within its project (None: make it a root); no cycles."""
    comp, now = await _component_for_write(
        session, actor=actor, component_id=component_id, expected_version=expected_version
    )
    if parent_id is not None:
        await component_in_project(session, comp.project_id, parent_id, field="parentId")
        await check_reparent(
            session,
            model=Component,
            label=Component.tag,
            object_id=comp.id,
            object_label=comp.tag,
            new_parent_id=parent_id,
            field="parentId",
        )
    diff = set_fields(comp, {"parent_id": parent_id})
    if diff:
        await bump_version(
            session,
            actor=actor,
            meta=meta,
            obj=comp,
            diff=diff,
            now=now,
            action="component.move",
            event_kind="component.moved",
            object_type="component",
        )
    return comp


async def component_delete(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    component_id: uuid.UUID,
    expected_version: int | None = None,
) -> Component:
    """Soft-delete a leaf component with its parameters and connectors.

    Refused (HasDependents) while it has live children, or while parameters outside
    it or rule requirements use its parameters. Trace links to it and its parameters
    are removed.
    """
    comp, now = await _component_for_write(
        session, actor=actor, component_id=component_id, expected_version=expected_version
    )
    children = (
        await session.scalars(
            select(Component.tag)
            .where(Component.parent_id == comp.id, Component.deleted_at.is_(None))
            .order_by(Component.tag)
        )
    ).all()
    if children:
        raise HasDependents(
            f"{comp.tag} has child components: {', '.join(children)}",
            dependents=children,
            field="id",
        )
    params = (
        await session.scalars(
            select(Parameter)
            .where(Parameter.component_id == comp.id, Parameter.deleted_at.is_(None))
            .execution_options(populate_existing=True)
        )
    ).all()
    own = [p.id for p in params]
    if own:
        dependents = (
            await session.scalars(
                select(Parameter.symbol)
                .join(ParameterDependency, ParameterDependency.parameter_id == Parameter.id)
                .where(
                    ParameterDependency.depends_on_id.in_(own),
                    Parameter.id.not_in(own),
                    Parameter.deleted_at.is_(None),
                )
                .distinct()
                .order_by(Parameter.symbol)
            )
        ).all()
        rules = (
            await session.scalars(
                select(Requirement.key)
                .where(Requirement.rule_parameter_id.in_(own), Requirement.deleted_at.is_(None))
                .order_by(Requirement.key)
            )
        ).all()
        if dependents or rules:
            raise HasDependents(
                f"parameters of {comp.tag} are used by: "
                + ", ".join([*dependents, *(f"rule of {k}" for k in rules)]),
                dependents=dependents,
                requirements=rules,
                field="id",
            )
    connectors = (
        await session.scalars(
            select(Connector)
            .where(
                or_(
                    Connector.source_component_id == comp.id,
                    Connector.target_component_id == comp.id,
                ),
                Connector.deleted_at.is_(None),
            )
            .execution_options(populate_existing=True)
        )
    ).all()
    for conn in connectors:
        conn.deleted_at = conn.updated_at = now
    for param in params:
        param.deleted_at = param.updated_at = now
    if own:
        await session.execute(
            delete(ParameterDependency).where(ParameterDependency.parameter_id.in_(own))
        )
    links = (
        await session.scalars(
            delete(TraceLink)
            .where(
                or_(
                    TraceLink.target_component_id == comp.id,
                    TraceLink.target_parameter_id.in_(own),
                )
            )
            .returning(TraceLink.id)
        )
    ).all()
    comp.deleted_at = comp.updated_at = now
    for obj_type, ids in (("connector", [c.id for c in connectors]), ("parameter", own)):
        for obj_id in ids:
            record(
                session,
                actor=actor,
                meta=meta,
                action=f"{obj_type}.delete",
                project_id=comp.project_id,
                object_type=obj_type,
                object_id=obj_id,
                diff={"deleted_at": [None, now], "with_component": [None, comp.id]},
            )
    diff: dict[str, list[Any]] = {"deleted_at": [None, now]}
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=comp.project_id,
        action="component.delete",
        event_kind="component.deleted",
        object_type="component",
        object_id=comp.id,
        diff=diff | {"trace_links_removed": [list(links), []]},
        payload={
            "object_type": "component",
            "id": comp.id,
            "tag": comp.tag,
            "deleted_connectors": [c.id for c in connectors],
            "deleted_parameters": own,
            "removed_trace_links": list(links),
        },
    )
    return comp
