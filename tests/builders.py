"""Bulk builders of real thread data (Core inserts) for read-side tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.components.models import Component, ComponentType, Connector
from app.parameters.models import Parameter, ParameterDependency, ParameterVersion
from app.requirements.models import Requirement, TraceLink


@dataclass
class Thread:
    project_id: uuid.UUID
    root_id: uuid.UUID
    type_id: uuid.UUID
    component_ids: list[uuid.UUID] = field(default_factory=list)
    param_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    requirement_ids: dict[str, uuid.UUID] = field(default_factory=dict)


async def build_thread(
    sessionmaker: async_sessionmaker[AsyncSession],
    project_id: uuid.UUID,
    *,
    components: int = 3,
    params_per_component: int = 3,
) -> Thread:
    """SAT root → C-000…; each C-i has p_i_0..p_i_{n-1} (kg) and derived s_i = p_i_0 + p_i_1;
    REQ-i: s_i <= 10 kg (PASS), satisfied by C-i; connectors C-i → C-(i+1)."""
    type_id, root_id = uuid.uuid4(), uuid.uuid4()
    thread = Thread(project_id=project_id, root_id=root_id, type_id=type_id)
    comp_rows = [
        dict(id=root_id, project_id=project_id, tag="SAT", name="Satellite", type_id=type_id)
    ]
    param_rows, dep_rows, ver_rows, req_rows, link_rows, conn_rows = [], [], [], [], [], []
    for i in range(components):
        cid = uuid.uuid4()
        thread.component_ids.append(cid)
        comp_rows.append(
            dict(
                id=cid,
                project_id=project_id,
                parent_id=root_id,
                type_id=type_id,
                tag=f"C-{i:03d}",
                name=f"Unit {i}",
                properties={"mass_kg": i},
                graphics={"x": i * 10, "y": 0},
            )
        )
        for j in range(params_per_component):
            pid = uuid.uuid4()
            sym = f"p_{i}_{j}"
            thread.param_ids[sym] = pid
            param_rows.append(
                dict(
                    id=pid,
                    project_id=project_id,
                    component_id=cid,
                    symbol=sym,
                    name=f"Mass {i}.{j}",
                    value_number=1.0 + j,
                    unit="kg",
                )
            )
            ver_rows.append(
                dict(parameter_id=pid, version=1, value_number=1.0 + j, unit="kg", cause="create")
            )
        sid = uuid.uuid4()
        thread.param_ids[f"s_{i}"] = sid
        param_rows.append(
            dict(
                id=sid,
                project_id=project_id,
                component_id=cid,
                symbol=f"s_{i}",
                name=f"Sum {i}",
                value_number=3.0,
                unit="kg",
                formula=f"p_{i}_0 + p_{i}_1",
            )
        )
        ver_rows.append(
            dict(
                parameter_id=sid,
                version=1,
                value_number=3.0,
                unit="kg",
                formula=f"p_{i}_0 + p_{i}_1",
                cause="create",
            )
        )
        dep_rows += [
            dict(parameter_id=sid, depends_on_id=thread.param_ids[f"p_{i}_0"]),
            dict(parameter_id=sid, depends_on_id=thread.param_ids[f"p_{i}_1"]),
        ]
        rid = uuid.uuid4()
        thread.requirement_ids[f"REQ-{i:03d}"] = rid
        req_rows.append(
            dict(
                id=rid,
                project_id=project_id,
                key=f"REQ-{i:03d}",
                title=f"Sum {i} limit",
                verification_method="rule",
                rule_parameter_id=sid,
                rule_operator="<=",
                rule_threshold=10.0,
                rule_unit="kg",
                compliance="PASS",
                margin=7.0,
            )
        )
        link_rows.append(
            dict(
                project_id=project_id,
                requirement_id=rid,
                kind="satisfied_by",
                target_component_id=cid,
            )
        )
    for a, b in zip(thread.component_ids, thread.component_ids[1:], strict=False):
        conn_rows.append(
            dict(
                project_id=project_id,
                source_component_id=a,
                source_port="out",
                target_component_id=b,
                target_port="in",
                kind="power",
            )
        )
    async with sessionmaker() as s:
        await s.execute(
            insert(ComponentType),
            [
                dict(
                    id=type_id,
                    project_id=project_id,
                    code="UNIT",
                    name="Unit",
                    property_schema={"type": "object"},
                    ports=[
                        {"name": "in", "kind": "power", "direction": "in"},
                        {"name": "out", "kind": "power", "direction": "out"},
                    ],
                )
            ],
        )
        await s.execute(insert(Component), comp_rows)
        await s.execute(insert(Parameter), param_rows)
        await s.execute(insert(ParameterDependency), dep_rows)
        await s.execute(insert(ParameterVersion), ver_rows)
        await s.execute(insert(Requirement), req_rows)
        await s.execute(insert(TraceLink), link_rows)
        if conn_rows:
            await s.execute(insert(Connector), conn_rows)
        await s.commit()
    return thread
