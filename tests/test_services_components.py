"""Component types, components and connectors: schemas, ports, tree moves, deletes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.principal import Principal
from app.components.connectors import connector_create, connector_delete, connector_update
from app.components.models import Component, ComponentType, Connector
from app.components.service import (
    component_create,
    component_delete,
    component_move,
    component_type_create,
    component_update,
)
from app.parameters.models import Parameter
from app.parameters.service import parameter_create
from app.projects.service import project_create
from app.requirements.models import TraceLink
from app.requirements.service import requirement_create, trace_link_create
from tests.conftest import Factory
from tests.services_kit import Maker, fails, fingerprint, ok, principal

BATTERY_SCHEMA = {
    "type": "object",
    "properties": {
        "chemistry": {"enum": ["Li-ion", "NiH2"]},
        "cells": {"type": "integer", "minimum": 1},
        "pack": {"type": "object", "properties": {"series": {"type": "integer"}}},
    },
    "required": ["chemistry"],
    "additionalProperties": False,
}


@dataclass
class World:
    actor: Principal
    project_id: uuid.UUID
    battery: ComponentType
    load: ComponentType
    root: Component
    bat: Component
    obc: Component


async def _world(factory: Factory, sessionmaker: Maker) -> World:
    actor = await principal(sessionmaker, await factory.account())
    pid = (await ok(sessionmaker, project_create, actor=actor, name="Sat")).id
    battery = await ok(
        sessionmaker,
        component_type_create,
        actor=actor,
        project_id=pid,
        code="BATTERY",
        name="Battery",
        property_schema=BATTERY_SCHEMA,
        ports=[
            {"name": "pwr", "kind": "power", "direction": "out"},
            {"name": "data", "kind": "data", "direction": "inout"},
        ],
    )
    load = await ok(
        sessionmaker,
        component_type_create,
        actor=actor,
        project_id=pid,
        code="LOAD",
        name="Load",
        ports=[
            {"name": "pwr_in", "kind": "power", "direction": "in"},
            {"name": "data", "kind": "data", "direction": "inout"},
        ],
    )

    async def make(tag: str, **kw: Any) -> Component:
        return await ok(
            sessionmaker, component_create, actor=actor, project_id=pid, tag=tag, name=tag, **kw
        )

    root = await make("SAT")
    bat = await make(
        "EPS-BAT-01", type_id=battery.id, parent_id=root.id, properties={"chemistry": "Li-ion"}
    )
    obc = await make("CDH-OBC-01", type_id=load.id, parent_id=root.id)
    return World(actor, pid, battery, load, root, bat, obc)


@pytest.fixture
async def world(factory: Factory, sessionmaker: Maker) -> World:
    return await _world(factory, sessionmaker)


async def test_component_type_validation(world: World, sessionmaker: Maker) -> None:
    snapshot = await fingerprint(sessionmaker, world.project_id)
    port = {"name": "p", "kind": "power", "direction": "in"}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"code": "battery"}, "VALIDATION_ERROR", "code"),
        ({"code": "BATTERY"}, "DUPLICATE", "code"),
        ({"property_schema": {"type": "objekt"}}, "VALIDATION_ERROR", "propertySchema"),
        ({"property_schema": {"pattern": "("}}, "VALIDATION_ERROR", "propertySchema"),
        (
            {"property_schema": {"$ref": "https://example.com/schema.json"}},
            "VALIDATION_ERROR",
            "propertySchema",
        ),
        ({"ports": [port, port]}, "VALIDATION_ERROR", "ports.1.name"),
        ({"ports": [{**port, "kind": "steam"}]}, "VALIDATION_ERROR", "ports.0.kind"),
        ({"ports": [{**port, "direction": "up"}]}, "VALIDATION_ERROR", "ports.0.direction"),
        ({"ports": [{**port, "name": ""}]}, "VALIDATION_ERROR", "ports.0.name"),
    ]
    for inputs, code, field in cases:
        args = {"code": "THING", "name": "Thing", **inputs}
        error = await fails(
            sessionmaker,
            component_type_create,
            actor=world.actor,
            project_id=world.project_id,
            **args,
        )
        assert (error.code, error.field) == (code, field), (inputs, error.details())
    assert await fingerprint(sessionmaker, world.project_id) == snapshot


async def test_component_properties_are_validated_against_the_schema(
    world: World, sessionmaker: Maker, factory: Factory
) -> None:
    snapshot = await fingerprint(sessionmaker, world.project_id)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(25):
        node["x"] = {}
        node = node["x"]
    other = await _world(factory, sessionmaker)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"properties": {"chemistry": "Li-ion", "cells": 0}},
            "VALIDATION_ERROR",
            "properties.cells",
        ),
        ({"properties": {"cells": 2}}, "VALIDATION_ERROR", "properties.chemistry"),
        ({"properties": {"chemistry": "lead"}}, "VALIDATION_ERROR", "properties.chemistry"),
        (
            {"properties": {"chemistry": "NiH2", "pack": {"series": "four"}}},
            "VALIDATION_ERROR",
            "properties.pack.series",
        ),
        ({"properties": {"chemistry": "NiH2", "colour": "red"}}, "VALIDATION_ERROR", "properties"),
        ({"graphics": {"blob": "x" * 70_000}}, "VALIDATION_ERROR", "graphics"),
        ({"tag": "EPS-BAT-01"}, "DUPLICATE", "tag"),
        ({"tag": "-bad tag"}, "VALIDATION_ERROR", "tag"),
        ({"type_id": other.battery.id}, "NOT_FOUND", "typeId"),
        ({"parent_id": other.root.id}, "NOT_FOUND", "parentId"),
    ]
    for inputs, code, field in cases:
        args = {"tag": "EPS-BAT-02", "name": "B2", "type_id": world.battery.id, **inputs}
        args.setdefault("properties", {"chemistry": "Li-ion"})
        error = await fails(
            sessionmaker, component_create, actor=world.actor, project_id=world.project_id, **args
        )
        assert (error.code, error.field) == (code, field), (inputs, error.details())
    error = await fails(
        sessionmaker,
        component_create,
        actor=world.actor,
        project_id=world.project_id,
        tag="GEN-01",
        name="Generic",
        properties=deep,
    )
    assert error.code == "VALIDATION_ERROR" and (error.field or "").startswith("properties.x")
    assert await fingerprint(sessionmaker, world.project_id) == snapshot

    updated = await ok(
        sessionmaker,
        component_update,
        actor=world.actor,
        component_id=world.bat.id,
        expected_version=1,
        properties={"chemistry": "NiH2", "cells": 8},
        graphics={"x": 10, "y": 20},
    )
    assert (updated.version, updated.properties["cells"]) == (2, 8)
    stale = await fails(
        sessionmaker,
        component_update,
        actor=world.actor,
        component_id=world.bat.id,
        expected_version=1,
        name="Renamed",
    )
    assert stale.code == "VERSION_CONFLICT" and stale.details()["current_version"] == 2


async def test_connectors_need_existing_ports_of_the_right_kind_and_direction(
    world: World, sessionmaker: Maker, factory: Factory
) -> None:
    pid = world.project_id
    snapshot = await fingerprint(sessionmaker, pid)
    other = await _world(factory, sessionmaker)
    base = {
        "source_component_id": world.bat.id,
        "source_port": "pwr",
        "target_component_id": world.obc.id,
        "target_port": "pwr_in",
        "kind": "power",
    }
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"source_port": "pwr_out"}, "PORT_NOT_FOUND", "sourcePort"),
        ({"target_port": "power"}, "PORT_NOT_FOUND", "targetPort"),
        ({"target_component_id": world.root.id}, "PORT_NOT_FOUND", "targetPort"),
        ({"kind": "steam"}, "VALIDATION_ERROR", "kind"),
        ({"kind": "data"}, "VALIDATION_ERROR", "kind"),
        (
            {
                "source_component_id": world.obc.id,
                "source_port": "pwr_in",
                "target_component_id": world.bat.id,
                "target_port": "pwr",
            },
            "VALIDATION_ERROR",
            "sourcePort",
        ),
        ({"target_component_id": other.obc.id}, "NOT_FOUND", "targetComponentId"),
    ]
    for inputs, code, field in cases:
        error = await fails(
            sessionmaker,
            connector_create,
            actor=world.actor,
            project_id=pid,
            **{**base, **inputs},
        )
        assert (error.code, error.field) == (code, field), (inputs, error.details())
    missing = await fails(
        sessionmaker,
        connector_create,
        actor=world.actor,
        project_id=pid,
        **{**base, "source_port": "pwr_out"},
    )
    assert missing.details()["available"] == ["pwr", "data"]
    assert missing.details()["component"] == "EPS-BAT-01"
    assert await fingerprint(sessionmaker, pid) == snapshot

    conn = await ok(
        sessionmaker, connector_create, actor=world.actor, project_id=pid, name="bus", **base
    )
    data = await ok(
        sessionmaker,
        connector_create,
        actor=world.actor,
        project_id=pid,
        **{**base, "source_port": "data", "target_port": "data", "kind": "data"},
    )
    bad = await fails(
        sessionmaker, connector_update, actor=world.actor, connector_id=data.id, target_port="x"
    )
    assert bad.code == "PORT_NOT_FOUND"
    renamed = await ok(
        sessionmaker,
        connector_update,
        actor=world.actor,
        connector_id=conn.id,
        expected_version=1,
        name="main bus",
    )
    assert (renamed.version, renamed.name) == (2, "main bus")
    # The battery's type cannot change to one without the ports its connectors use.
    error = await fails(
        sessionmaker,
        component_update,
        actor=world.actor,
        component_id=world.bat.id,
        type_id=world.load.id,
        properties={},
    )
    assert (error.code, error.field, error.details()["port"]) == ("PORT_NOT_FOUND", "typeId", "pwr")
    gone = await ok(sessionmaker, connector_delete, actor=world.actor, connector_id=data.id)
    assert gone.deleted_at is not None


async def test_move_rejects_cycles_and_delete_guards_and_cascades(
    world: World, sessionmaker: Maker
) -> None:
    pid, actor = world.project_id, world.actor
    child = await ok(
        sessionmaker,
        component_create,
        actor=actor,
        project_id=pid,
        tag="EPS-BAT-01-CELL",
        name="Cell",
        parent_id=world.bat.id,
    )
    snapshot = await fingerprint(sessionmaker, pid)
    error = await fails(
        sessionmaker, component_move, actor=actor, component_id=world.root.id, parent_id=child.id
    )
    assert error.code == "CYCLE_DETECTED" and error.field == "parentId"
    assert error.details()["path"] == ["SAT", "EPS-BAT-01-CELL", "EPS-BAT-01", "SAT"]
    error = await fails(
        sessionmaker, component_move, actor=actor, component_id=child.id, parent_id=child.id
    )
    assert error.details()["path"] == ["EPS-BAT-01-CELL", "EPS-BAT-01-CELL"]
    error = await fails(sessionmaker, component_delete, actor=actor, component_id=world.bat.id)
    assert (error.code, error.details()["dependents"]) == ("HAS_DEPENDENTS", ["EPS-BAT-01-CELL"])
    assert await fingerprint(sessionmaker, pid) == snapshot

    moved = await ok(
        sessionmaker, component_move, actor=actor, component_id=child.id, parent_id=world.root.id
    )
    assert (moved.parent_id, moved.version) == (world.root.id, 2)

    # The battery's capacity feeds a parameter elsewhere: its deletion is refused.
    await ok(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="cap",
        name="Cap",
        value=10.0,
        unit="W*h",
        component_id=world.bat.id,
    )
    await ok(
        sessionmaker,
        parameter_create,
        actor=actor,
        project_id=pid,
        symbol="energy",
        name="E",
        formula="cap * 2",
        unit="W*h",
        component_id=world.obc.id,
    )
    error = await fails(sessionmaker, component_delete, actor=actor, component_id=world.bat.id)
    assert error.details()["dependents"] == ["energy"]

    # The OBC goes, with its parameter, its connectors and links to it.
    conn = await ok(
        sessionmaker,
        connector_create,
        actor=actor,
        project_id=pid,
        source_component_id=world.bat.id,
        source_port="pwr",
        target_component_id=world.obc.id,
        target_port="pwr_in",
        kind="power",
    )
    req = await ok(
        sessionmaker, requirement_create, actor=actor, project_id=pid, key="REQ-1", title="R"
    )
    await ok(
        sessionmaker,
        trace_link_create,
        actor=actor,
        requirement_id=req.id,
        kind="satisfied_by",
        target_id=world.obc.id,
    )
    deleted = await ok(sessionmaker, component_delete, actor=actor, component_id=world.obc.id)
    assert deleted.deleted_at is not None
    async with sessionmaker() as s:
        assert (await s.get(Connector, conn.id)).deleted_at is not None  # type: ignore[union-attr]
        energy = await s.scalar(
            select(Parameter).where(Parameter.symbol == "energy", Parameter.project_id == pid)
        )
        assert energy is not None and energy.deleted_at is not None
        links = (await s.scalars(select(TraceLink).where(TraceLink.project_id == pid))).all()
        assert links == []
    # Now nothing outside depends on the battery's parameters.
    await ok(sessionmaker, component_delete, actor=actor, component_id=world.bat.id)
