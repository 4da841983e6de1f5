"""Generate the read benchmark's large project: 2,000 components, 40,000 parameters.

    .venv/bin/python -m bench.read_bench.generate --database-url URL [--manifest PATH]

What it creates (deterministic, seed 8):

* through the domain services (the normal code path, audit rows and events
  included): a user and an API token, the project, three component types with
  JSON-Schema'd properties and ports;
* in bulk (``COPY``, one transaction), after the same validation the services
  apply (see ``bench/README.md`` for why not one service call per object):

  - 2,000 components: ``SAT`` → 19 subsystems ``SS-01``… → 1,980 units ``U-0001``…,
    properties validated against their type's JSON Schema;
  - 40,000 parameters, 20 per component, 15,000+ with formulas (units checked
    dimensionally, the graph checked acyclic, every derived value computed by
    the engine ``app.parameters.graph.ParameterGraph``), their dependency edges
    and a first history version each;
  - 5,981 requirements (a tree; 4,000 rules whose compliance and margin come
    from ``app.requirements.compliance.evaluate_rule``) with 5,981 trace links;
  - 5,940 connectors between ports the types declare, kinds matching.

The manifest (JSON) records the token and the ids the load generator needs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.auth.service import create_user, issue_token
from app.components.models import ComponentType
from app.components.service import _validate_properties, component_type_create
from app.db import make_engine, make_sessionmaker
from app.events import append_event
from app.parameters.formula import is_valid_symbol, parse
from app.parameters.graph import ParameterGraph
from app.parameters.recompute import parse_unit_field
from app.projects.service import project_create
from app.requirements.compliance import evaluate_rule

SECRET = "read-bench-secret-key-0123456789"
META = RequestMeta(request_id="read-bench", ip=None, user_agent="bench/read_bench")
SUBSYSTEMS = 19
UNITS = 1980  # 19 subsystems x ~104 units; with SAT and subsystems: 2,000 components
PARAMS_PER_COMPONENT = 20


@dataclass
class Param:
    id: uuid.UUID
    component_id: uuid.UUID
    symbol: str
    name: str
    kind: str = "number"
    unit: str = ""
    value: float | bool | str | None = None
    formula: str | None = None
    uncertainty: float | None = None


@dataclass
class Model:
    components: list[dict[str, Any]] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    requirements: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    connectors: list[dict[str, Any]] = field(default_factory=list)


def _ports(*spec: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"name": n, "kind": k, "direction": d} for n, k, d in spec]


TYPES: dict[str, dict[str, Any]] = {
    "SYSTEM": {
        "name": "System",
        "schema": {
            "type": "object",
            "properties": {"mission": {"type": "string"}},
            "required": ["mission"],
        },
        "ports": _ports(("pwr_out", "power", "out"), ("data_bus", "data", "inout")),
    },
    "SUBSYSTEM": {
        "name": "Subsystem",
        "schema": {
            "type": "object",
            "properties": {"lead": {"type": "string"}, "index": {"type": "integer"}},
            "required": ["index"],
        },
        "ports": _ports(
            ("pwr_in", "power", "in"),
            ("pwr_out", "power", "out"),
            ("data_bus", "data", "inout"),
        ),
    },
    "UNIT": {
        "name": "Unit",
        "schema": {
            "type": "object",
            "properties": {
                "mass_kg": {"type": "number", "minimum": 0},
                "supplier": {"type": "string"},
                "trl": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["trl"],
        },
        "ports": _ports(
            ("pwr_in", "power", "in"),
            ("data", "data", "inout"),
            ("mech_in", "mechanical", "in"),
            ("mech_out", "mechanical", "out"),
        ),
    },
}


def build_model(
    project_id: uuid.UUID, types: dict[str, ComponentType], rng: random.Random
) -> Model:
    m = Model()

    def component(
        tag: str, name: str, type_code: str, parent: uuid.UUID | None, props: dict[str, Any]
    ) -> uuid.UUID:
        ctype = types[type_code]
        _validate_properties(ctype, props)  # the services' JSON-Schema check
        cid = uuid.uuid4()
        m.components.append(
            {
                "id": cid,
                "project_id": project_id,
                "parent_id": parent,
                "type_id": ctype.id,
                "tag": tag,
                "name": name,
                "properties": props,
                "graphics": {"x": rng.randint(0, 4000), "y": rng.randint(0, 4000)},
            }
        )
        return cid

    def param(cid: uuid.UUID, symbol: str, name: str, **kw: Any) -> Param:
        p = Param(uuid.uuid4(), cid, symbol, name, **kw)
        m.params.append(p)
        return p

    root = component("SAT", "Satellite", "SYSTEM", None, {"mission": "LEO imaging"})
    units_of: dict[int, list[int]] = {k: [] for k in range(1, SUBSYSTEMS + 1)}
    for n in range(1, UNITS + 1):
        units_of[(n - 1) % SUBSYSTEMS + 1].append(n)
    sub_ids: dict[int, uuid.UUID] = {}
    unit_ids: dict[int, uuid.UUID] = {}
    for k in range(1, SUBSYSTEMS + 1):
        sub_ids[k] = component(
            f"SS-{k:02d}", f"Subsystem {k}", "SUBSYSTEM", root, {"index": k, "lead": f"L{k}"}
        )
    for k, ns in units_of.items():
        for n in ns:
            unit_ids[n] = component(
                f"U-{n:04d}",
                f"Unit {n}",
                "UNIT",
                sub_ids[k],
                {"trl": rng.randint(3, 9), "mass_kg": round(rng.uniform(0.1, 5), 3)},
            )

    # --- unit parameters: 13 inputs (11 numbers, a text, a boolean) + 7 formulas
    for k, ns in units_of.items():
        for n in ns:
            cid, u = unit_ids[n], f"u{n:04d}"
            param(
                cid,
                f"m_{u}",
                "Mass",
                unit="kg",
                value=round(rng.uniform(0.1, 5), 3),
                uncertainty=0.01,
            )
            param(cid, f"mgn_{u}", "Maturity margin", value=rng.choice((0.05, 0.1, 0.2)))
            param(cid, f"p_{u}", "Peak power", unit="W", value=round(rng.uniform(0.5, 20), 2))
            param(cid, f"duty_{u}", "Duty cycle", value=round(rng.uniform(0.1, 1), 2))
            param(cid, f"len_{u}", "Length", unit="m", value=round(rng.uniform(0.05, 0.4), 3))
            param(cid, f"wid_{u}", "Width", unit="m", value=round(rng.uniform(0.05, 0.4), 3))
            param(cid, f"hei_{u}", "Height", unit="m", value=round(rng.uniform(0.05, 0.4), 3))
            param(cid, f"tmin_{u}", "Min. temperature", unit="K", value=rng.choice((233, 243)))
            param(cid, f"tmax_{u}", "Max. temperature", unit="K", value=rng.choice((333, 343)))
            param(cid, f"cost_{u}", "Cost", value=round(rng.uniform(1, 100), 1))
            param(cid, f"mtbf_{u}", "MTBF", unit="h", value=float(rng.randint(10_000, 100_000)))
            param(cid, f"pn_{u}", "Part number", kind="text", value=f"PN-{n:05d}")
            param(cid, f"qual_{u}", "Qualified", kind="boolean", value=rng.random() < 0.8)
            param(cid, f"me_{u}", "Mass with margin", unit="kg", formula=f"m_{u} * (1 + mgn_{u})")
            param(cid, f"pa_{u}", "Average power", unit="W", formula=f"p_{u} * duty_{u}")
            param(cid, f"cur_{u}", "Bus current", unit="A", formula=f"pa_{u} / vbus_s{k:02d}")
            param(cid, f"vol_{u}", "Volume", unit="L", formula=f"len_{u} * wid_{u} * hei_{u}")
            param(cid, f"rho_{u}", "Density", unit="kg/m**3", formula=f"m_{u} / vol_{u}")
            param(cid, f"pm_{u}", "Power with margin", unit="W", formula=f"pa_{u} * 1.5")
            param(cid, f"fr_{u}", "Failure rate", unit="1/h", formula=f"1 / mtbf_{u}")

    # --- subsystem parameters: 9 inputs + 11 formulas over their units
    for k, ns in units_of.items():
        cid, s = sub_ids[k], f"s{k:02d}"
        quarters = [ns[i::4] for i in range(4)]
        halves = [ns[0::2], ns[1::2]]
        param(cid, f"harn_{s}", "Harness mass", unit="kg", value=round(rng.uniform(0.5, 3), 2))
        param(cid, f"mgn_{s}", "Subsystem margin", value=0.1)
        param(cid, f"vbus_{s}", "Bus voltage", unit="V", value=rng.choice((28.0, 50.0)))
        param(cid, f"eff_{s}", "Converter efficiency", value=rng.choice((0.85, 0.9)))
        param(cid, f"tmin_{s}", "Min. temperature", unit="degC", value=-20.0)
        param(cid, f"tmax_{s}", "Max. temperature", unit="degC", value=60.0)
        param(cid, f"cost_{s}", "Integration cost", value=round(rng.uniform(10, 500), 1))
        param(cid, f"pn_{s}", "Assembly", kind="text", value=f"ASM-{k:02d}")
        param(cid, f"qual_{s}", "Qualified", kind="boolean", value=True)
        for letter, q in zip("abcd", quarters, strict=True):
            param(
                cid,
                f"m{letter}_{s}",
                f"Mass part {letter}",
                unit="kg",
                formula=" + ".join(f"me_u{n:04d}" for n in q),
            )
        param(
            cid,
            f"m_{s}",
            "Units mass",
            unit="kg",
            formula=" + ".join(f"m{letter}_{s}" for letter in "abcd"),
        )
        param(
            cid, f"mt_{s}", "Total mass", unit="kg", formula=f"(m_{s} + harn_{s}) * (1 + mgn_{s})"
        )
        for i, h in enumerate(halves, 1):
            param(
                cid,
                f"pp{i}_{s}",
                f"Power part {i}",
                unit="W",
                formula=" + ".join(f"pa_u{n:04d}" for n in h),
            )
        param(cid, f"p_{s}", "Units power", unit="W", formula=f"pp1_{s} + pp2_{s}")
        param(cid, f"pin_{s}", "Input power", unit="W", formula=f"p_{s} / eff_{s}")
        param(cid, f"ibus_{s}", "Bus current", unit="A", formula=f"pin_{s} / vbus_{s}")

    # --- system parameters (the demo's launch-mass chain at scale): 8 inputs + 12 formulas
    subs = [f"s{k:02d}" for k in range(1, SUBSYSTEMS + 1)]
    param(root, "sys_margin", "System margin", value=0.2)
    param(root, "dv", "Delta-v", unit="m/s", value=148.5)
    param(root, "isp", "Specific impulse", unit="s", value=220.0)
    param(root, "g_0", "Standard gravity", unit="m/s**2", value=9.80665)
    param(root, "h_orb", "Altitude", unit="km", value=550.0)
    param(root, "r_e", "Earth radius", unit="km", value=6371.0)
    param(root, "mu_e", "Earth GM", unit="km**3/s**2", value=398600.4418)
    param(root, "p_margin", "Power margin", value=0.25)
    param(root, "m_sys", "Subsystems mass", unit="kg", formula=" + ".join(f"mt_{s}" for s in subs))
    param(root, "m_dry", "Dry mass", unit="kg", formula="m_sys * (1 + sys_margin)")
    param(root, "m_prop", "Propellant", unit="kg", formula="m_dry * (exp(dv / (isp * g_0)) - 1)")
    param(root, "m_wet", "Wet mass", unit="kg", formula="m_dry + m_prop")
    param(root, "p_sys", "Power demand", unit="W", formula=" + ".join(f"pin_{s}" for s in subs))
    param(root, "p_eol", "Power with margin", unit="W", formula="p_sys * (1 + p_margin)")
    param(root, "a_orb", "Semi-major axis", unit="km", formula="r_e + h_orb")
    param(root, "t_orb", "Orbital period", unit="min", formula="2 * pi * sqrt(a_orb**3 / mu_e)")
    param(root, "e_orb", "Energy per orbit", unit="W*h", formula="p_eol * t_orb")
    param(root, "c_sys", "Integration cost", formula=" + ".join(f"cost_{s}" for s in subs))
    param(
        root, "i_sys", "Total bus current", unit="A", formula=" + ".join(f"ibus_{s}" for s in subs)
    )
    param(root, "m_ratio", "Mass ratio", formula="m_wet / m_dry")

    assert len(m.components) == 1 + SUBSYSTEMS + UNITS == 2000
    assert len(m.params) == PARAMS_PER_COMPONENT * len(m.components), len(m.params)

    # --- requirements: per unit mass and power rules + a test requirement; tree under
    # subsystem rules, under system rules.
    by_symbol = {p.symbol: p for p in m.params}

    def requirement(
        key: str,
        title: str,
        parent: uuid.UUID | None,
        component_id: uuid.UUID,
        rule: tuple[str, str, float, str] | None = None,
        method: str = "test",
    ) -> uuid.UUID:
        rid = uuid.uuid4()
        row: dict[str, Any] = {
            "id": rid,
            "parent_id": parent,
            "key": key,
            "title": title,
            "text": f"The {title.lower()} shall be verified.",
            "priority": rng.choice(("low", "medium", "high", "critical")),
            "status": rng.choice(("draft", "proposed", "approved")),
            "verification_method": method,
            "rule_parameter_id": None,
            "rule_operator": None,
            "rule_threshold": None,
            "rule_unit": None,
            "compliance": "UNKNOWN",
            "margin": None,
            "_rule_symbol": None,
        }
        if rule is not None:
            symbol, op, threshold, unit = rule
            row.update(
                verification_method="rule",
                rule_parameter_id=by_symbol[symbol].id,
                rule_operator=op,
                rule_threshold=threshold,
                rule_unit=unit,
                _rule_symbol=symbol,
            )
        m.requirements.append(row)
        m.links.append(
            {"requirement_id": rid, "kind": "satisfied_by", "target_component_id": component_id}
        )
        return rid

    top = requirement("REQ-SYS-MASS", "Launch mass", None, root, ("m_wet", "<=", 9000.0, "kg"))
    requirement("REQ-SYS-PWR", "Power demand", None, root, ("p_eol", "<=", 60.0, "kW"))
    requirement("REQ-SYS-LIFE", "Design life", None, root, method="analysis")
    for k, ns in units_of.items():
        s = f"s{k:02d}"
        sm = requirement(
            f"REQ-{s.upper()}-MASS",
            f"Subsystem {k} mass",
            top,
            sub_ids[k],
            (f"mt_{s}", "<=", 450.0, "kg"),
        )
        sp = requirement(
            f"REQ-{s.upper()}-PWR",
            f"Subsystem {k} power",
            top,
            sub_ids[k],
            (f"pin_{s}", "<=", 1200.0, "W"),
        )
        for n in ns:
            u = f"u{n:04d}"
            requirement(
                f"REQ-{u.upper()}-M",
                f"Unit {n} mass",
                sm,
                unit_ids[n],
                (f"me_{u}", "<=", 5.0, "kg"),
            )
            requirement(
                f"REQ-{u.upper()}-P",
                f"Unit {n} power",
                sp,
                unit_ids[n],
                (f"pa_{u}", "between", 0.5, "W"),
            )
            requirement(f"REQ-{u.upper()}-V", f"Unit {n} vibration", sm, unit_ids[n])

    # --- connectors: power and data from each subsystem to its units, a mechanical
    # chain through each subsystem's units, power from the system to subsystems.
    def connector(src: uuid.UUID, sp: str, dst: uuid.UUID, tp: str, kind: str, name: str) -> None:
        m.connectors.append(
            {
                "source_component_id": src,
                "source_port": sp,
                "target_component_id": dst,
                "target_port": tp,
                "kind": kind,
                "name": name,
                "properties": {"length_m": round(rng.uniform(0.1, 3), 2)},
            }
        )

    for k, ns in units_of.items():
        connector(root, "pwr_out", sub_ids[k], "pwr_in", "power", f"PWR-SS{k:02d}")
        for n in ns:
            connector(sub_ids[k], "pwr_out", unit_ids[n], "pwr_in", "power", f"PWR-U{n:04d}")
            connector(sub_ids[k], "data_bus", unit_ids[n], "data", "data", f"DATA-U{n:04d}")
        for a, b in itertools.pairwise(ns):
            connector(unit_ids[a], "mech_out", unit_ids[b], "mech_in", "mechanical", "")
    return m


def validate_and_compute(m: Model, types: dict[str, ComponentType]) -> None:
    """The services' checks and computations, in bulk (raises on the first problem)."""
    seen: set[str] = set()
    for p in m.params:
        if not is_valid_symbol(p.symbol) or p.symbol in seen:
            raise ValueError(f"bad or duplicate symbol {p.symbol!r}")
        seen.add(p.symbol)
        p.unit = parse_unit_field(p.unit, kind=p.kind, field="unit")
    numeric = [p for p in m.params if p.kind == "number"]
    graph = ParameterGraph(
        {p.symbol: p.formula for p in numeric},
        {p.symbol: p.unit for p in numeric},
        {p.symbol: p.value for p in numeric if p.formula is None},  # type: ignore[misc]
    )
    graph.check_acyclic()
    graph.check_dimensions()
    derived = graph.evaluate_all()
    by_symbol = {p.symbol: p for p in m.params}
    for symbol, value in derived.items():
        by_symbol[symbol].value = value
    # Rule compliance and margin, exactly as the requirement service computes them.
    for r in m.requirements:
        symbol = r.pop("_rule_symbol")
        if symbol is None:
            continue
        p = by_symbol[symbol]
        if r["rule_operator"] == "between":
            r["rule_threshold_high"] = 12.0
        r["compliance"], r["margin"] = evaluate_rule(
            operator=r["rule_operator"],
            threshold=r["rule_threshold"],
            threshold_high=r.get("rule_threshold_high"),
            rule_unit=r["rule_unit"],
            value_kind=p.kind,
            value=p.value,
            unit=p.unit,
        )
    # Connector ports exist on the types, with matching kinds and directions.
    type_of = {c["id"]: c["type_id"] for c in m.components}
    ports = {t.id: {p["name"]: p for p in t.ports} for t in types.values()}
    for c in m.connectors:
        sp = ports[type_of[c["source_component_id"]]][c["source_port"]]
        tp = ports[type_of[c["target_component_id"]]][c["target_port"]]
        assert sp["direction"] in ("out", "inout") and tp["direction"] in ("in", "inout"), c
        assert sp["kind"] == tp["kind"] == c["kind"], c


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _copy(raw: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    await raw.copy_records_to_table(table, records=rows, columns=list(columns))


async def write(session: AsyncSession, m: Model, project_id: uuid.UUID, actor: Principal) -> None:
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    await _copy(
        raw,
        "components",
        ("id", "project_id", "parent_id", "type_id", "tag", "name", "properties", "graphics"),
        [
            (
                c["id"],
                project_id,
                c["parent_id"],
                c["type_id"],
                c["tag"],
                c["name"],
                _json(c["properties"]),
                _json(c["graphics"]),
            )
            for c in m.components
        ],
    )
    prow, vrow = [], []
    for p in m.params:
        number = p.value if p.kind == "number" else None
        boolean = p.value if p.kind == "boolean" else None
        txt = p.value if p.kind == "text" else None
        prow.append(
            (
                p.id,
                project_id,
                p.component_id,
                p.symbol,
                p.name,
                p.kind,
                number,
                boolean,
                txt,
                p.unit,
                p.uncertainty,
                p.formula,
            )
        )
        vrow.append(
            (
                uuid.uuid4(),
                p.id,
                1,
                number,
                boolean,
                txt,
                p.unit,
                p.formula,
                "import",
                actor.user_id,
            )
        )
    await _copy(
        raw,
        "parameters",
        (
            "id",
            "project_id",
            "component_id",
            "symbol",
            "name",
            "value_kind",
            "value_number",
            "value_bool",
            "value_text",
            "unit",
            "uncertainty",
            "formula",
        ),
        prow,
    )
    by_symbol = {p.symbol: p.id for p in m.params}
    edges = [
        (p.id, by_symbol[dep])
        for p in m.params
        if p.formula is not None
        for dep in sorted(parse(p.formula).symbols)
    ]
    await _copy(raw, "parameter_dependencies", ("parameter_id", "depends_on_id"), edges)
    await _copy(
        raw,
        "parameter_versions",
        (
            "id",
            "parameter_id",
            "version",
            "value_number",
            "value_bool",
            "value_text",
            "unit",
            "formula",
            "cause",
            "actor_id",
        ),
        vrow,
    )
    req_cols = (
        "id",
        "project_id",
        "parent_id",
        "key",
        "title",
        "text",
        "priority",
        "status",
        "verification_method",
        "rule_parameter_id",
        "rule_operator",
        "rule_threshold",
        "rule_threshold_high",
        "rule_unit",
        "compliance",
        "margin",
    )
    await _copy(
        raw,
        "requirements",
        req_cols,
        [
            tuple(project_id if c == "project_id" else r.get(c) for c in req_cols)
            for r in m.requirements
        ],
    )
    await _copy(
        raw,
        "trace_links",
        ("project_id", "requirement_id", "kind", "target_component_id", "created_by_id"),
        [
            (project_id, li["requirement_id"], li["kind"], li["target_component_id"], actor.user_id)
            for li in m.links
        ],
    )
    await _copy(
        raw,
        "connectors",
        (
            "project_id",
            "source_component_id",
            "source_port",
            "target_component_id",
            "target_port",
            "kind",
            "name",
            "properties",
        ),
        [
            (
                project_id,
                c["source_component_id"],
                c["source_port"],
                c["target_component_id"],
                c["target_port"],
                c["kind"],
                c["name"],
                _json(c["properties"]),
            )
            for c in m.connectors
        ],
    )
    # One change event for the import (what a bulk import through the API records).
    await append_event(
        session,
        project_id=project_id,
        kind="project.imported",
        payload={
            "object_type": "project",
            "id": project_id,
            "components": len(m.components),
            "parameters": len(m.params),
            "requirements": len(m.requirements),
            "connectors": len(m.connectors),
        },
        actor_id=actor.user_id,
    )


async def generate(database_url: str, *, seed: int = 8) -> dict[str, Any]:
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    rng = random.Random(seed)
    started = time.perf_counter()
    try:
        async with maker() as s:
            tag = uuid.uuid4().hex[:8]
            user = await create_user(
                s,
                email=f"bench-{tag}@example.test",
                password="read bench password",
                organization=f"Read bench {tag}",
            )
            issued = await issue_token(s, user=user, secret_key=SECRET, kind="api", name="bench")
            actor = Principal(
                user_id=user.id,
                organization_id=user.organization_id,
                email=user.email,
                is_admin=False,
                token_id=issued.row.id,
            )
            project = await project_create(s, actor=actor, meta=META, name="Read bench")
            types = {}
            for code, spec in TYPES.items():
                types[code] = await component_type_create(
                    s,
                    actor=actor,
                    meta=META,
                    project_id=project.id,
                    code=code,
                    name=spec["name"],
                    property_schema=spec["schema"],
                    ports=spec["ports"],
                )
            model = build_model(project.id, types, rng)
            validate_and_compute(model, types)
            await write(s, model, project.id, actor)
            await s.commit()
        async with engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            for table in (
                "components",
                "parameters",
                "parameter_dependencies",
                "parameter_versions",
                "requirements",
                "trace_links",
                "connectors",
            ):
                await conn.execute(text(f"ANALYZE {table}"))
        by_symbol = {p.symbol: p for p in model.params}
        unit_params = [p for p in model.params if "_u" in p.symbol]
        sample = random.Random(seed + 1).sample(unit_params, 1000)
        return {
            "token": issued.token,
            "project_id": str(project.id),
            "user_id": str(user.id),
            "parameter_ids": [str(p.id) for p in sample],
            "traversal_parameter_id": str(by_symbol["m_sys"].id),
            "counts": {
                "components": len(model.components),
                "parameters": len(model.params),
                "derived": sum(p.formula is not None for p in model.params),
                "requirements": len(model.requirements),
                "trace_links": len(model.links),
                "connectors": len(model.connectors),
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--manifest", type=Path, default=None)
    args = parser.parse_args()
    manifest = asyncio.run(generate(args.database_url))
    out = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
    if args.manifest:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_bytes(out)
    print(orjson.dumps({k: v for k, v in manifest.items() if k != "parameter_ids"}).decode())


if __name__ == "__main__":
    main()
