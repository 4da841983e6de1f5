"""Trade studies end to end: GraphQL over HTTP/WebSocket → real Dramatiq worker process on
the real Redis broker → PostgreSQL (COPY) → results API.

The module starts one worker (``python -m dramatiq workers.actors``); tests that need
no worker drive :mod:`app.trade_studies.runner` in-process instead.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from strawberry import relay

from app.audit.service import RequestMeta
from app.auth.service import resolve_token
from app.demo.model import demo_model
from app.parameters.service import parameter_create, parameter_update
from app.requirements.compliance import evaluate_rule
from app.requirements.service import RuleInput, requirement_create
from app.settings import Settings
from app.trade_studies import queue, runner
from app.trade_studies.csv_export import routes as csv_routes
from app.trade_studies.models import Scenario, ScenarioResult, TradeStudy
from app.trade_studies.pareto import pareto_mask_brute_force
from tests.conftest import SECRET, Demo, Factory, GraphQLCall, LiveServer
from tests.wsclient import GqlWs

ROOT = Path(__file__).resolve().parents[1]
DONE = ("COMPLETED", "FAILED", "CANCELLED")
OUTPUTS = ["m_wet", "m_prop", "link_margin", "power_margin", "dod", "T_orbit"]
OBJECTIVES = [
    {"symbol": "m_wet", "sense": "MINIMIZE"},
    {"symbol": "link_margin", "sense": "MAXIMIZE"},
]
DEMO_VARIABLES = [
    {"symbol": "h", "min": 400, "max": 700},
    {"symbol": "eta_cell", "min": 0.20, "max": 0.32},
    {"symbol": "R_data", "unit": "Mbit/s", "min": 10, "max": 200},
    {"symbol": "isp", "min": 180, "max": 260},
]


# --------------------------------------------------------------------------- worker


def start_worker(db_url: str, redis_url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python -m dramatiq workers.actors`` in its own process group."""
    environ = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "THREADLINE_LOG_LEVEL": "warning",
        "dramatiq_worker_timeout": "100",  # poll an idle queue every 100 ms, not 1 s
        **env,
    }
    cmd = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1"]
    with log.open("ab") as out:
        return subprocess.Popen(
            [*cmd, "--threads", "2"],
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if proc.poll() is not None:
        return
    if not kill:
        proc.send_signal(signal.SIGTERM)  # the main process stops its workers gracefully
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            pass
    os.killpg(proc.pid, signal.SIGKILL)  # the group we started: main and worker processes
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def worker(db_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(db_url, redis_url, log)
    yield log
    stop_worker(proc)


# --------------------------------------------------------------------------- helpers


def gid(type_name: str, id_: Any) -> str:
    return str(relay.GlobalID(type_name, str(id_)))


CREATE = """
mutation($input: TradeStudyCreateInput!) {
  tradeStudyCreate(input: $input) {
    __typename
    ... on TradeStudyCreateSuccess {
      tradeStudy { id status seed outputs constraints variables { symbol unit levels } }
    }
    ... on UserError { message code field }
  }
}"""

START = """
mutation($id: ID!, $chunk: Int) {
  tradeStudyStart(input: {id: $id, chunkSize: $chunk}) {
    __typename
    ... on TradeStudySuccess { tradeStudy { status } }
    ... on UserError { message code field }
  }
}"""

CANCEL = """
mutation($id: ID!) {
  tradeStudyCancel(input: {id: $id}) {
    __typename
    ... on TradeStudySuccess { tradeStudy { status done total } }
    ... on UserError { message code }
  }
}"""

SCENARIO_FIELDS = """
  id index inputHash feasible onParetoFront infeasibleReason
  inputs { symbol value unit } outputs { symbol value unit }
"""

SCENARIOS = f"""
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String,
      $filter: ScenarioFilter, $order: ScenarioOrder) {{
  node(id: $id) {{
    ... on TradeStudy {{
      scenarios(first: $first, after: $after, last: $last, before: $before,
                filter: $filter, orderBy: $order) {{
        totalCount
        pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
        edges {{ cursor node {{ {SCENARIO_FIELDS} }} }}
      }}
    }}
  }}
}}"""


async def create(graphql: GraphQLCall, token: str, **study: Any) -> dict[str, Any]:
    data = (await graphql(CREATE, {"input": study}, token=token)).ok()["tradeStudyCreate"]
    assert data["__typename"] == "TradeStudyCreateSuccess", data
    return dict(data["tradeStudy"])


async def start(
    graphql: GraphQLCall, token: str, study: str, chunk: int | None = None
) -> dict[str, Any]:
    data = (await graphql(START, {"id": study, "chunk": chunk}, token=token)).ok()
    return dict(data["tradeStudyStart"])


def study_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(relay.GlobalID.from_id(global_id).node_id)


async def wait_for(
    sessionmaker: async_sessionmaker[AsyncSession],
    study: str,
    statuses: tuple[str, ...] = DONE,
    *,
    within: float = 60,
    done_at_least: int = 0,
) -> RowMapping:
    deadline = time.monotonic() + within
    while True:
        async with sessionmaker() as s:
            row = (
                (
                    await s.execute(
                        select(TradeStudy.__table__).where(TradeStudy.id == study_uuid(study))
                    )
                )
                .mappings()
                .one()
            )
        if row["status"] in statuses and row["done"] >= done_at_least:
            return row
        assert time.monotonic() < deadline, (
            f"study still {row['status']} {row['done']}/{row['total']}"
        )
        await asyncio.sleep(0.02)


async def stored(
    sessionmaker: async_sessionmaker[AsyncSession], study: str
) -> tuple[int, int, int]:
    """(scenarios, results, distinct input hashes) stored for the study."""
    sid = study_uuid(study)
    async with sessionmaker() as s:
        n_s = await s.scalar(select(func.count()).where(Scenario.trade_study_id == sid))
        n_r = await s.scalar(select(func.count()).where(ScenarioResult.trade_study_id == sid))
        n_h = await s.scalar(
            select(func.count(func.distinct(Scenario.input_hash))).where(
                Scenario.trade_study_id == sid
            )
        )
    return int(n_s or 0), int(n_r or 0), int(n_h or 0)


async def all_scenarios(
    graphql: GraphQLCall, token: str, study: str, **variables: Any
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        data = (
            await graphql(
                SCENARIOS, {"id": study, "first": 500, "after": after, **variables}, token=token
            )
        ).ok()["node"]["scenarios"]
        out += [e["node"] for e in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return out
        after = data["pageInfo"]["endCursor"]


def values(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{symbol: value}`` of a scenario's inputs or outputs (None where not finite)."""
    return {v["symbol"]: v["value"] for v in items}


async def actor_of(sessionmaker: async_sessionmaker[AsyncSession], token: str) -> Any:
    async with sessionmaker() as s:
        return await resolve_token(s, token=token, secret_key=SECRET)


# --------------------------------------------------------------------------- tests


async def test_demo_grid_matches_direct_evaluation_pareto_and_apply(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: Path,
) -> None:
    """The demo's 4-variable study as a 4-level grid: 256 scenarios, each equal to a
    direct evaluation of the model; the Pareto front equals a brute-force check."""
    variables: list[dict[str, Any]] = [{**v, "levels": 4} for v in DEMO_VARIABLES]
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Grid",
        method="GRID",
        variables=variables,
        outputs=OUTPUTS,
        objectives=OBJECTIVES,
    )
    assert study["status"] == "DRAFT"
    assert study["constraints"] == [
        "REQ-COM-001",
        "REQ-MASS-001",
        "REQ-ORB-001",
        "REQ-PWR-001",
        "REQ-PWR-002",
    ]
    assert (await start(graphql, demo.token, study["id"], chunk=100))["tradeStudy"] == {
        "status": "QUEUED"
    }
    row = await wait_for(sessionmaker, study["id"])
    assert (row["status"], row["done"], row["total"]) == ("COMPLETED", 256, 256)
    assert await stored(sessionmaker, study["id"]) == (256, 256, 256)

    scenarios = await all_scenarios(graphql, demo.token, study["id"])
    assert sorted(s["index"] for s in scenarios) == list(range(256))
    model = demo_model()
    rules = {r.key: r.rule for r in model.requirements if r.rule is not None}
    units = {p.symbol: p.unit for p in model.parameters}
    grid = set()
    for s in scenarios:
        inputs = values(s["inputs"])
        grid.add(tuple(round(float(inputs[v["symbol"]] or 0), 9) for v in variables))
        expected = model.parameter_graph({k: float(v or 0) for k, v in inputs.items()})
        derived = expected.evaluate_all()
        outputs = values(s["outputs"])
        for symbol in OUTPUTS:
            assert outputs[symbol] == pytest.approx(derived[symbol], rel=1e-12), symbol
        every = {**inputs, **derived}
        feasible = all(
            evaluate_rule(
                operator=rule.operator,
                threshold=rule.threshold,
                threshold_high=rule.threshold_high,
                rule_unit=rule.unit,
                value_kind="number",
                value=every[rule.symbol],
                unit=units[rule.symbol],
            )[0]
            == "PASS"
            for key, rule in rules.items()
            if key in study["constraints"]
        )
        assert s["feasible"] is feasible, s
        assert (s["infeasibleReason"] is None) is feasible
    assert len(grid) == 256  # every grid point exactly once

    # Pareto front vs brute force over the feasible scenarios.
    good = [s for s in scenarios if s["feasible"]]
    objectives = np.array(
        [[values(s["outputs"])["m_wet"], values(s["outputs"])["link_margin"]] for s in good]
    )
    mask = pareto_mask_brute_force(objectives, ["minimize", "maximize"])
    expected_front = {s["index"] for s, on in zip(good, mask, strict=True) if on}
    assert (
        expected_front and {s["index"] for s in scenarios if s["onParetoFront"]} == expected_front
    )
    query = """query($id: ID!) { node(id: $id) { ... on TradeStudy {
        status progress { status done total scenariosPerSecond etaSeconds }
        paretoFront(first: 500) { totalCount edges { node { id index outputs { symbol value } } } }
        summary { scenarios feasible infeasible pareto scenariosPerSecond
                  outputs { symbol unit count min max mean p50 }
                  infeasibleReasons { reason count } }
        sensitivity { baseSamples }
        csv
    } } }"""
    data = (await graphql(query, {"id": study["id"]}, token=demo.token)).ok()["node"]
    front = [e["node"] for e in data["paretoFront"]["edges"]]
    assert {n["index"] for n in front} == expected_front
    m_wet = [values(n["outputs"])["m_wet"] for n in front]
    assert m_wet == sorted(m_wet)  # sorted by the first objective
    summary = data["summary"]
    assert summary["scenarios"] == 256 and summary["feasible"] == len(good)
    assert summary["pareto"] == len(expected_front) and data["sensitivity"] is None
    assert sum(r["count"] for r in summary["infeasibleReasons"]) == 256 - len(good)
    m_wet_all = [values(s["outputs"])["m_wet"] for s in scenarios]
    wet = next(o for o in summary["outputs"] if o["symbol"] == "m_wet")
    assert wet["unit"] == "kg" and wet["count"] == 256
    assert wet["min"] == pytest.approx(min(m_wet_all)) and wet["max"] == pytest.approx(
        max(m_wet_all)
    )
    assert wet["p50"] == pytest.approx(float(np.median(m_wet_all)))
    assert data["progress"]["status"] == "COMPLETED" and data["progress"]["etaSeconds"] is None
    lines = data["csv"].strip().split("\n")
    assert lines[0].startswith("index,feasible,on_pareto_front,infeasible_reason,h [km],")
    assert len(lines) == 257

    # Apply the front's lightest scenario to the live parameters.
    best = front[0]
    apply = """mutation($id: ID!) { scenarioApply(input: {id: $id}) {
        __typename
        ... on ParameterChangeSuccess { sequence edited { symbol newValue cause }
              recomputed { symbol newValue } }
        ... on UserError { message code } } }"""
    result = (await graphql(apply, {"id": best["id"]}, token=demo.token)).ok()["scenarioApply"]
    assert result["__typename"] == "ParameterChangeSuccess", result
    recomputed = {r["symbol"]: r["newValue"] for r in result["recomputed"]}
    assert recomputed["m_wet"] == pytest.approx(values(best["outputs"])["m_wet"], rel=1e-12)
    async with sessionmaker() as db:
        causes = (
            await db.execute(
                text(
                    "SELECT p.symbol, v.cause FROM parameter_versions v"
                    " JOIN parameters p ON p.id = v.parameter_id"
                    " WHERE v.event_sequence = :seq AND p.project_id = :p ORDER BY p.symbol"
                ),
                {"seq": result["sequence"], "p": demo.project_id},
            )
        ).all()
    edited = {e["symbol"] for e in result["edited"]}
    assert edited and edited <= {"h", "eta_cell", "R_data", "isp"}
    assert {sym: cause for sym, cause in causes if sym in edited} == dict.fromkeys(
        edited, "scenario_applied"
    )
    assert {cause for sym, cause in causes if sym not in edited} == {"recompute"}


async def test_lhs_is_reproducible_and_results_page_filter_sort_and_export(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    worker: Path,
) -> None:
    common = {
        "projectId": gid("Project", demo.project_id),
        "method": "LATIN_HYPERCUBE",
        "variables": DEMO_VARIABLES,
        "outputs": OUTPUTS,
        "objectives": OBJECTIVES,
        "sampleCount": 300,
    }
    ids = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        study = await create(graphql, demo.token, name=name, seed=seed, **common)
        assert study["seed"] == seed
        await start(graphql, demo.token, study["id"], chunk=64)
        ids.append(study["id"])
    rows = [await wait_for(sessionmaker, i) for i in ids]
    assert [(r["status"], r["done"]) for r in rows] == [("COMPLETED", 300)] * 3
    a, b, c = [await all_scenarios(graphql, demo.token, i) for i in ids]
    inputs = [[(s["index"], s["inputHash"], s["inputs"]) for s in x] for x in (a, b, c)]
    assert inputs[0] == inputs[1]  # same seed, same scenarios, same numbering
    assert {h for _, h, _ in inputs[0]}.isdisjoint({h for _, h, _ in inputs[2]})
    assert [s["outputs"] for s in a] == [s["outputs"] for s in b]

    # Keyset pages ordered by an output, both directions.
    study = ids[0]
    order = {"symbol": "m_wet", "direction": "DESC"}
    forward, after = [], None
    while True:
        page = (
            await graphql(
                SCENARIOS,
                {"id": study, "first": 70, "after": after, "order": order},
                token=demo.token,
            )
        ).ok()["node"]["scenarios"]
        assert page["totalCount"] == 300
        forward += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    keys = [(values(s["outputs"])["m_wet"], s["index"]) for s in forward]
    assert len(forward) == 300 and keys == sorted(keys, key=lambda k: (-k[0], -k[1]))
    back = (
        await graphql(
            SCENARIOS,
            {"id": study, "last": 10, "before": page["edges"][0]["cursor"], "order": order},
            token=demo.token,
        )
    ).ok()["node"]["scenarios"]
    assert [e["node"]["index"] for e in back["edges"]] == [s["index"] for s in forward[270:280]]
    assert back["pageInfo"]["hasPreviousPage"] and back["pageInfo"]["hasNextPage"]

    # Filters: feasible, Pareto, output and input ranges (in each symbol's unit).
    f = {"feasible": True, "outputs": [{"symbol": "link_margin", "min": 5}]}
    f["inputs"] = [{"symbol": "h", "max": 600}]
    filtered = await all_scenarios(graphql, demo.token, study, filter=f)
    expect = [
        s
        for s in a
        if s["feasible"]
        and (values(s["outputs"])["link_margin"] or 0) >= 5
        and (values(s["inputs"])["h"] or 0) <= 600
    ]
    assert filtered and [s["index"] for s in filtered] == [s["index"] for s in expect]
    pareto = await all_scenarios(graphql, demo.token, study, filter={"pareto": True})
    assert pareto and {s["index"] for s in pareto} == {s["index"] for s in a if s["onParetoFront"]}
    bad = await graphql(SCENARIOS, {"id": study, "order": {"symbol": "nope"}}, token=demo.token)
    assert bad.errors and "nope" in bad.errors[0]["message"]

    # CSV download (the Starlette route) with the same bearer token.
    app = Starlette(routes=csv_routes)
    app.state.sessionmaker, app.state.settings = sessionmaker, settings
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        path = f"/trade-studies/{study_uuid(study)}.csv"
        resp = await client.get(path, headers={"Authorization": f"Bearer {demo.token}"})
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(resp.text)))
        assert len(table) == 301 and table[0][4:8] == [
            "h [km]",
            "eta_cell",
            "R_data [Mbit/s]",
            "isp [s]",
        ]
        for row, s in zip(table[1:], a, strict=True):
            assert int(row[0]) == s["index"] and row[1] == str(s["feasible"]).lower()
            assert row[3] == (s["infeasibleReason"] or "")
            numbers = [float(x) for x in row[4:]]
            expected = [v["value"] for v in s["inputs"] + s["outputs"]]
            assert numbers == expected
        assert (await client.get(path)).status_code == 401
        other = f"/trade-studies/{uuid.uuid4()}.csv"
        headers = {"Authorization": f"Bearer {demo.token}"}
        assert (await client.get(other, headers=headers)).status_code == 404


async def test_duplicate_chunk_deliveries_write_nothing_twice(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    worker: Path,
) -> None:
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Dup",
        method="RANDOM",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        sampleCount=6000,
        seed=1,
    )
    await start(graphql, demo.token, study["id"], chunk=500)
    await wait_for(sessionmaker, study["id"], ("RUNNING", *DONE))
    assert settings.redis_url is not None
    for _ in range(2):  # every chunk delivered twice more, while the study runs
        for chunk in range(12):
            await asyncio.to_thread(
                queue.send,
                settings.redis_url,
                queue.CHUNK_ACTOR,
                str(study_uuid(study["id"])),
                chunk,
            )
    row = await wait_for(sessionmaker, study["id"])
    assert (row["status"], row["done"], row["total"]) == ("COMPLETED", 6000, 6000)
    await asyncio.sleep(0.5)  # let the late duplicates run too
    assert await stored(sessionmaker, study["id"]) == (6000, 6000, 6000)
    async with sessionmaker() as s:
        again = await s.scalar(
            select(TradeStudy.done).where(TradeStudy.id == study_uuid(study["id"]))
        )
    assert again == 6000


async def test_concurrent_redelivery_in_process_inserts_once(
    demo: Demo, graphql: GraphQLCall, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Two transactions run the same chunk at once: one inserts, the other waits on the
    chunk's advisory lock, then finds the rows and writes nothing."""
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Twice",
        method="LATIN_HYPERCUBE",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        sampleCount=900,
        seed=2,
    )
    sid = study_uuid(study["id"])
    async with sessionmaker() as s:  # queued without a message: this test is the worker
        await s.execute(
            update(TradeStudy)
            .where(TradeStudy.id == sid)
            .values(
                status="QUEUED",
                definition=TradeStudy.definition.op("||")(text("'{\"chunk_size\": 300}'::jsonb")),
            )
        )
        await s.commit()
    async with sessionmaker() as s:
        plan = await runner.plan_study(s, sid)
        await s.commit()
    assert plan.chunks == [0, 1, 2]

    async def run(chunk: int) -> runner.ChunkOutcome:
        async with sessionmaker() as s:
            outcome = await runner.run_chunk(s, sid, chunk)
            await s.commit()
            return outcome

    first, second = await asyncio.gather(run(0), run(0))
    assert sorted([first.inserted, second.inserted]) == [0, 300]
    assert {first.skipped, second.skipped} == {None, "already stored"}
    assert (await run(1)).inserted == 300
    assert (await run(0)).skipped == "already stored"
    last = await run(2)
    assert last.completed and (last.done, last.total) == (900, 900)
    assert (await run(2)).skipped == "not running"
    assert await stored(sessionmaker, study["id"]) == (900, 900, 900)


async def test_cancel_stops_remaining_chunks_and_resume_completes_exactly(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: Path,
) -> None:
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Cancel",
        method="LATIN_HYPERCUBE",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        sampleCount=40_000,
        seed=3,
    )
    await start(graphql, demo.token, study["id"], chunk=200)
    await wait_for(sessionmaker, study["id"], ("RUNNING",), done_at_least=200)
    cancelled = (await graphql(CANCEL, {"id": study["id"]}, token=demo.token)).ok()
    assert cancelled["tradeStudyCancel"]["tradeStudy"]["status"] == "CANCELLED"
    await asyncio.sleep(1.0)  # in-flight chunks roll back, queued ones find it cancelled
    row = await wait_for(sessionmaker, study["id"], ("CANCELLED",))
    assert 0 < row["done"] < row["total"] == 40_000
    counts = await stored(sessionmaker, study["id"])
    assert counts == (row["done"],) * 3
    await asyncio.sleep(0.5)
    assert await stored(sessionmaker, study["id"]) == counts  # nothing written after cancel
    again = (await graphql(CANCEL, {"id": study["id"]}, token=demo.token)).ok()
    assert again["tradeStudyCancel"]["code"] == "INVALID_STATE"

    # Resuming keeps the stored scenarios and completes with exactly N.
    assert (await start(graphql, demo.token, study["id"]))["tradeStudy"]["status"] == "QUEUED"
    row = await wait_for(sessionmaker, study["id"])
    assert (row["status"], row["done"]) == ("COMPLETED", 40_000)
    assert await stored(sessionmaker, study["id"]) == (40_000, 40_000, 40_000)
    done = await start(graphql, demo.token, study["id"])
    assert done["code"] == "INVALID_STATE"


async def _model_project(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], spec: dict[str, Any]
) -> tuple[str, uuid.UUID]:
    """A project with parameters {symbol: (unit, value or formula)} and rules; its owner's
    token."""
    owner = await factory.account()
    project = await factory.project(owner)
    actor = await actor_of(sessionmaker, owner.token)
    meta = RequestMeta(request_id="test")
    async with sessionmaker() as s:
        for symbol, (unit, value) in spec["parameters"].items():
            await parameter_create(
                s,
                actor=actor,
                meta=meta,
                project_id=project.id,
                symbol=symbol,
                name=symbol,
                unit=unit,
                value=value if not isinstance(value, str) else None,
                formula=value if isinstance(value, str) else None,
            )
        for key, (symbol, op, threshold, unit) in spec.get("rules", {}).items():
            await requirement_create(
                s,
                actor=actor,
                meta=meta,
                project_id=project.id,
                key=key,
                title=key,
                rule=RuleInput(
                    operator=op, threshold=threshold, parameter_symbol=symbol, unit=unit
                ),
            )
        await s.commit()
    return owner.token, project.id


async def test_infeasible_scenarios_are_flagged_with_reasons(
    factory: Factory,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: Path,
) -> None:
    token, project_id = await _model_project(
        factory,
        sessionmaker,
        {
            "parameters": {
                "x": ("m", 1.0),
                "x0": ("m", 1.0),
                "y": ("m", "sqrt(x/x0)*x0*x/x"),
                "z": ("m", "y + x"),
            },
            "rules": {"REQ-Z": ("z", "<=", 150.0, "cm")},
        },
    )
    study = await create(
        graphql,
        token,
        projectId=gid("Project", project_id),
        name="Sqrt",
        method="LIST",
        variables=[{"symbol": "x", "unit": "cm"}],
        rows=[[-100.0], [25.0], [400.0], [0.0], [25.0]],  # the repeat is one scenario
        objectives=[{"symbol": "z", "sense": "MINIMIZE"}],
    )
    assert study["outputs"] == ["y", "z"] and study["constraints"] == ["REQ-Z"]
    await start(graphql, token, study["id"])
    row = await wait_for(sessionmaker, study["id"])
    assert (row["status"], row["done"], row["total"]) == ("COMPLETED", 4, 4)
    scenarios = await all_scenarios(graphql, token, study["id"])
    by_x = {values(s["inputs"])["x"]: s for s in scenarios}
    assert [s["index"] for s in scenarios] == [0, 1, 2, 3]  # LIST: row order
    nan_reason = "not computable: y is nan"
    assert by_x[-1.0]["infeasibleReason"] == nan_reason  # stored in the parameter's unit
    assert values(by_x[-1.0]["outputs"]) == {"y": None, "z": None}
    assert by_x[0.0]["infeasibleReason"] == nan_reason  # 0/0
    assert by_x[4.0]["infeasibleReason"] == "violates REQ-Z"
    assert by_x[0.25]["feasible"] and by_x[0.25]["onParetoFront"]
    assert values(by_x[0.25]["outputs"]) == {"y": 0.5, "z": 0.75}
    query = """query($id: ID!) { node(id: $id) { ... on TradeStudy {
        summary { feasible infeasible pareto infeasibleReasons { reason detail count }
                  outputs { symbol count nonFinite } } } } }"""
    summary = (await graphql(query, {"id": study["id"]}, token=token)).ok()["node"]["summary"]
    assert summary["feasible"] == 1 and summary["pareto"] == 1
    assert summary["infeasibleReasons"] == [
        {
            "reason": nan_reason,
            "detail": "not computable: y = sqrt(x/x0)*x0*x/x gives nan",
            "count": 2,
        },
        {"reason": "violates REQ-Z", "detail": "violates REQ-Z (z <= 150 cm)", "count": 1},
    ]
    assert summary["outputs"][0] == {"symbol": "y", "count": 2, "nonFinite": 2}


async def test_sobol_sensitivity_of_the_ishigami_function(
    factory: Factory,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    worker: Path,
) -> None:
    """SOBOL study on a project computing the Ishigami function; indices from the API vs
    analytic (a = 7, b = 0.1). Tolerance: 0.05 absolute with N = 4096 base points."""
    token, project_id = await _model_project(
        factory,
        sessionmaker,
        {
            "parameters": {
                "x1": ("", 0.0),
                "x2": ("", 0.0),
                "x3": ("", 0.0),
                "y": ("", "sin(x1) + 7*sin(x2)**2 + 0.1*x3**4*sin(x1)"),
            }
        },
    )
    study = await create(
        graphql,
        token,
        projectId=gid("Project", project_id),
        name="Ishigami",
        method="SOBOL",
        variables=[{"symbol": s, "min": -math.pi, "max": math.pi} for s in ("x1", "x2", "x3")],
        sampleCount=4000,  # rounded up to 4096
        seed=9,
    )
    await start(graphql, token, study["id"])
    row = await wait_for(sessionmaker, study["id"])
    assert (row["status"], row["total"]) == ("COMPLETED", 4096 * 5)
    query = """query($id: ID!) { node(id: $id) { ... on TradeStudy {
        sensitivity { baseSamples confLevel outputs { symbol error
            indices { variable firstOrder firstOrderConf total totalConf } } } } } }"""
    sens = (await graphql(query, {"id": study["id"]}, token=token)).ok()["node"]["sensitivity"]
    assert sens["baseSamples"] == 4096 and sens["confLevel"] == 0.95
    (output,) = sens["outputs"]
    assert output["symbol"] == "y" and output["error"] is None
    a, b = 7.0, 0.1
    v = a**2 / 8 + b * math.pi**4 / 5 + b**2 * math.pi**8 / 18 + 0.5
    v1, v2 = 0.5 * (1 + b * math.pi**4 / 5) ** 2, a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    analytic = {"x1": (v1 / v, (v1 + v13) / v), "x2": (v2 / v, v2 / v), "x3": (0.0, v13 / v)}
    for index in output["indices"]:
        s1, st = analytic[index["variable"]]
        assert abs(index["firstOrder"] - s1) < 0.05, index
        assert abs(index["total"] - st) < 0.05, index
        assert 0 < index["firstOrderConf"] < 0.1 and 0 < index["totalConf"] < 0.1


async def test_progress_subscription_streams_until_completed(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    live_server: LiveServer,
    worker: Path,
) -> None:
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Progress",
        method="RANDOM",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        sampleCount=5000,
        seed=4,
    )
    ws = await GqlWs.connect(live_server.base_url, demo.token)
    try:
        assert await ws.acked()
        sub = """subscription($id: ID!) { tradeStudyProgress(id: $id) {
            tradeStudyId status done total scenariosPerSecond etaSeconds sequence } }"""
        op = await ws.subscribe(sub, {"id": study["id"]})
        first = (await ws.data(op))["tradeStudyProgress"]
        assert first["status"] == "DRAFT" and first["sequence"] is None
        assert first["tradeStudyId"] == study["id"]
        await start(graphql, demo.token, study["id"], chunk=1000)
        updates = []
        while True:
            msg = await ws.next(op, wait=30)
            if msg["type"] == "complete":
                break
            assert msg["type"] == "next", msg
            updates.append(msg["payload"]["data"]["tradeStudyProgress"])
        statuses = [u["status"] for u in updates]
        assert statuses[0] == "QUEUED" and statuses[-1] == "COMPLETED" and "RUNNING" in statuses
        running = [u for u in updates if u["status"] == "RUNNING" and u["done"] > 0]
        assert running and all(u["total"] == 5000 for u in running)
        assert all(u["scenariosPerSecond"] > 0 and u["etaSeconds"] >= 0 for u in running)
        dones = [u["done"] for u in updates]
        assert dones == sorted(dones) and dones[-1] == 5000
        sequences = [u["sequence"] for u in updates]
        assert sequences == sorted(sequences)
        # A finished study: one message with its final state, then complete.
        op2 = await ws.subscribe(sub, {"id": study["id"]})
        assert (await ws.data(op2))["tradeStudyProgress"]["status"] == "COMPLETED"
        assert (await ws.next(op2))["type"] == "complete"
        hidden = await ws.subscribe(sub, {"id": gid("TradeStudy", uuid.uuid4())})
        msg = await ws.next(hidden)
        assert msg["type"] == "error" or msg["payload"].get("errors"), msg
    finally:
        await ws.close()


async def test_validation_errors_visibility_and_planner_failure(
    demo: Demo,
    factory: Factory,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    project = gid("Project", demo.project_id)

    async def create_error(**study: Any) -> dict[str, Any]:
        data = (await graphql(CREATE, {"input": study}, token=demo.token)).ok()
        result = dict(data["tradeStudyCreate"])
        assert result["__typename"] != "TradeStudyCreateSuccess", result
        return result

    derived = await create_error(
        projectId=project,
        name="x",
        method="GRID",
        variables=[{"symbol": "m_wet", "min": 1, "max": 2, "levels": 2}],
    )
    assert (derived["code"], derived["field"]) == ("VALIDATION_ERROR", "variables.0.symbol")
    big = await create_error(
        projectId=project,
        name="x",
        method="GRID",
        variables=[{**v, "levels": 100} for v in DEMO_VARIABLES],
    )
    assert big["code"] == "DESIGN_TOO_LARGE" and "100,000,000" in big["message"]
    unit = await create_error(
        projectId=project,
        name="x",
        method="GRID",
        variables=[{"symbol": "h", "unit": "s", "min": 1, "max": 2, "levels": 2}],
    )
    assert (unit["__typename"], unit["field"]) == ("DimensionError", "variables.0.unit")
    objective = await create_error(
        projectId=project,
        name="x",
        method="GRID",
        variables=[{"symbol": "h", "min": 1, "max": 2, "levels": 2}],
        outputs=["T_orbit"],
        objectives=[{"symbol": "m_wet", "sense": "MINIMIZE"}],
    )
    assert objective["field"] == "objectives.0.symbol"

    study = await create(
        graphql,
        demo.token,
        projectId=project,
        name="Fails",
        method="LATIN_HYPERCUBE",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        sampleCount=10,
    )
    # Another organization sees nothing and can change nothing.
    stranger = await factory.account()
    node = (
        await graphql(
            "query($id: ID!) { node(id: $id) { id } }", {"id": study["id"]}, token=stranger.token
        )
    ).ok()
    assert node["node"] is None
    assert (await start(graphql, stranger.token, study["id"]))["__typename"] == "NotFoundError"

    # The model changes after the study was queued: the planner fails it, readably.
    sid = study_uuid(study["id"])
    async with sessionmaker() as s:
        await s.execute(update(TradeStudy).where(TradeStudy.id == sid).values(status="QUEUED"))
        await s.commit()
    actor = await actor_of(sessionmaker, demo.token)
    async with sessionmaker() as s:
        h = await s.scalar(
            text("SELECT id FROM parameters WHERE project_id = :p AND symbol = 'h'"),
            {"p": demo.project_id},
        )
        version = await s.scalar(text("SELECT version FROM parameters WHERE id = :i"), {"i": h})
        await parameter_update(
            s,
            actor=actor,
            meta=RequestMeta(),
            parameter_id=h,
            expected_version=version,
            formula="R_E/10",
        )
        await s.commit()
    async with sessionmaker() as s:
        outcome = await runner.plan_study(s, sid)
        await s.commit()
    assert outcome.status == "FAILED" and outcome.chunks == []
    query = """query($id: ID!) { node(id: $id) { ... on TradeStudy {
        status error progress { status error } } } }"""
    data = (await graphql(query, {"id": study["id"]}, token=demo.token)).ok()["node"]
    assert data["status"] == "FAILED"
    assert data["error"] == "h is no longer an independent numeric parameter"
    assert data["progress"]["error"] == data["error"]


async def test_hostile_inputs_get_typed_errors_not_crashes(
    demo: Demo, graphql: GraphQLCall
) -> None:
    project = gid("Project", demo.project_id)
    nul_unit = await graphql(
        CREATE,
        {
            "input": {
                "projectId": project,
                "name": "n",
                "method": "GRID",
                "variables": [{"symbol": "h", "unit": "k\x00m", "values": [1.0]}],
            }
        },
        token=demo.token,
    )
    if nul_unit.status == 200:  # the HTTP layer may refuse NUL characters before GraphQL
        error = nul_unit.ok()["tradeStudyCreate"]
        assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "variables.0.unit")
    else:
        assert nul_unit.status == 400
    study = await create(
        graphql,
        demo.token,
        projectId=project,
        name="Hostile",
        method="GRID",
        variables=[{"symbol": "h", "values": [500.0, 600.0]}],
    )
    cursor = base64.urlsafe_b64encode(b"[1, 99999999999999]").decode()
    bad = await graphql(SCENARIOS, {"id": study["id"], "after": cursor}, token=demo.token)
    assert bad.errors and bad.errors[0]["extensions"]["code"] == "BAD_PAGINATION"
    huge = str(relay.GlobalID("Scenario", "9" * 30))
    node = await graphql("query($id: ID!) { node(id: $id) { id } }", {"id": huge}, token=demo.token)
    assert node.ok() == {"node": None}
    apply = (
        await graphql(
            "mutation($id: ID!) { scenarioApply(input: {id: $id}) { __typename } }",
            {"id": huge},
            token=demo.token,
        )
    ).ok()["scenarioApply"]
    assert apply["__typename"] == "NotFoundError"
