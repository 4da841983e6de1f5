"""Connectors: ``source component . port`` -> ``target component . port``.

Both components live in the connector's project; both ports exist on the
components' types, the source port can send (``out``/``inout``), the target port
can receive (``in``/``inout``), and port kinds match the connector's kind (``other``
matches anything).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.components.errors import NotFound, PortNotFound, ValidationError, VersionConflict
from app.components.models import CONNECTOR_KINDS, Component, ComponentType, Connector
from app.components.service import MAX_NAME, bump_version, component_in_project
from app.service_support import (
    UNSET,
    Unset,
    authorize,
    authorize_object,
    check_choice,
    check_json_object,
    clean_text,
    created_diff,
    finish,
    lock_project,
    set_fields,
)

_SOURCE_DIRECTIONS = ("out", "inout")
_TARGET_DIRECTIONS = ("in", "inout")


def _port(
    comp: Component, ctype: ComponentType | None, name: str, *, field: str
) -> Mapping[str, Any]:
    ports = list(ctype.ports) if ctype else []
    for port in ports:
        if port.get("name") == name:
            return port
    available = [str(p.get("name")) for p in ports]
    type_code = ctype.code if ctype else "no type"
    raise PortNotFound(
        f"{comp.tag} ({type_code}) has no port {name!r}; ports: {', '.join(available) or 'none'}",
        component=comp.tag,
        port=name,
        available=available,
        field=field,
    )


async def _check_connection(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    source_component_id: uuid.UUID,
    source_port: str,
    target_component_id: uuid.UUID,
    target_port: str,
    kind: str,
) -> None:
    check_choice(kind, CONNECTOR_KINDS, field="kind")
    src = await component_in_project(
        session, project_id, source_component_id, field="sourceComponentId"
    )
    dst = await component_in_project(
        session, project_id, target_component_id, field="targetComponentId"
    )
    type_ids = {t for t in (src.type_id, dst.type_id) if t is not None}
    types = {
        t.id: t
        for t in await session.scalars(select(ComponentType).where(ComponentType.id.in_(type_ids)))
    }
    sp = _port(
        src, types.get(src.type_id) if src.type_id else None, source_port, field="sourcePort"
    )
    tp = _port(
        dst, types.get(dst.type_id) if dst.type_id else None, target_port, field="targetPort"
    )
    if src.id == dst.id and source_port == target_port:
        raise ValidationError("a connector cannot join a port to itself", field="targetPort")
    if sp.get("direction") not in _SOURCE_DIRECTIONS:
        raise ValidationError(
            f"{src.tag}.{source_port} is an input; a source port is 'out' or 'inout'",
            field="sourcePort",
        )
    if tp.get("direction") not in _TARGET_DIRECTIONS:
        raise ValidationError(
            f"{dst.tag}.{target_port} is an output; a target port is 'in' or 'inout'",
            field="targetPort",
        )
    for port, end in ((sp, f"{src.tag}.{source_port}"), (tp, f"{dst.tag}.{target_port}")):
        if port.get("kind") not in (kind, "other") and kind != "other":
            raise ValidationError(
                f"{end} is a {port.get('kind')} port; the connector is {kind}", field="kind"
            )


async def connector_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    source_component_id: uuid.UUID,
    source_port: str,
    target_component_id: uuid.UUID,
    target_port: str,
    kind: str,
    name: str = "",
    properties: Mapping[str, Any] | None = None,
) -> Connector:
    """Connect ``source.port`` to ``target.port`` (ports of the components' types)."""
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    name = clean_text(name, field="name", max_length=MAX_NAME, allow_empty=True)
    props = check_json_object(dict(properties or {}), field="properties")
    await lock_project(session, project_id)
    await _check_connection(
        session,
        project_id=project_id,
        source_component_id=source_component_id,
        source_port=source_port,
        target_component_id=target_component_id,
        target_port=target_port,
        kind=kind,
    )
    conn = Connector(
        id=uuid.uuid4(),
        project_id=project_id,
        source_component_id=source_component_id,
        source_port=source_port,
        target_component_id=target_component_id,
        target_port=target_port,
        kind=kind,
        name=name,
        properties=props,
        version=1,
    )
    session.add(conn)
    await session.flush()
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="connector.create",
        event_kind="connector.created",
        object_type="connector",
        object_id=conn.id,
        diff=created_diff(conn, _CONNECTOR_FIELDS),
    )
    return conn


_CONNECTOR_FIELDS = (
    "source_component_id",
    "source_port",
    "target_component_id",
    "target_port",
    "kind",
    "name",
    "properties",
)


async def _connector_for_write(
    session: AsyncSession,
    *,
    actor: Principal,
    connector_id: uuid.UUID,
    expected_version: int | None,
) -> tuple[Connector, datetime]:
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Connector,
        object_id=connector_id,
        what="connector",
        minimum="editor",
    )
    now = await lock_project(session, project_id)
    conn = await session.scalar(
        select(Connector)
        .where(Connector.id == connector_id, Connector.deleted_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if conn is None:
        raise NotFound("connector not found", field="id")
    if expected_version is not None and conn.version != expected_version:
        raise VersionConflict(
            f"the connector is at version {conn.version}, not {expected_version}",
            current_version=conn.version,
        )
    return conn, now


async def connector_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    connector_id: uuid.UUID,
    expected_version: int | None = None,
    name: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    properties: Mapping[str, Any] | Unset = UNSET,
    source_port: str | Unset = UNSET,
    target_port: str | Unset = UNSET,
) -> Connector:
    """Edit a connector (version + 1); changed ports and kind are re-checked."""
    conn, now = await _connector_for_write(
        session, actor=actor, connector_id=connector_id, expected_version=expected_version
    )
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = clean_text(name, field="name", max_length=MAX_NAME, allow_empty=True)
    if properties is not UNSET:
        changes["properties"] = check_json_object(dict(properties), field="properties")
    if kind is not UNSET:
        changes["kind"] = kind
    if source_port is not UNSET:
        changes["source_port"] = source_port
    if target_port is not UNSET:
        changes["target_port"] = target_port
    if {"kind", "source_port", "target_port"} & changes.keys():
        await _check_connection(
            session,
            project_id=conn.project_id,
            source_component_id=conn.source_component_id,
            source_port=changes.get("source_port", conn.source_port),
            target_component_id=conn.target_component_id,
            target_port=changes.get("target_port", conn.target_port),
            kind=changes.get("kind", conn.kind),
        )
    diff = set_fields(conn, changes)
    if diff:
        await bump_version(
            session,
            actor=actor,
            meta=meta,
            obj=conn,
            diff=diff,
            now=now,
            action="connector.update",
            event_kind="connector.updated",
            object_type="connector",
        )
    return conn


async def connector_delete(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    connector_id: uuid.UUID,
    expected_version: int | None = None,
) -> Connector:
    conn, now = await _connector_for_write(
        session, actor=actor, connector_id=connector_id, expected_version=expected_version
    )
    conn.deleted_at = conn.updated_at = now
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=conn.project_id,
        action="connector.delete",
        event_kind="connector.deleted",
        object_type="connector",
        object_id=conn.id,
        diff={"deleted_at": [None, now]},
    )
    return conn
