"""A worker killed mid-study (SIGKILL: no cleanup, messages in flight) → when a worker
comes back, the study completes exactly once with exactly N scenarios.

Runs its own workers (the other trade-study module's worker is stopped by then).
The broker treats a worker whose heartbeat is older than 1.5 s as dead and puts
its unacknowledged messages back on the queue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Demo, GraphQLCall
from tests.test_trade_studies import (
    DEMO_VARIABLES,
    OUTPUTS,
    create,
    gid,
    start,
    start_worker,
    stop_worker,
    stored,
    study_uuid,
    wait_for,
)

FAST_RECOVERY = {
    "THREADLINE_WORKER_HEARTBEAT_MS": "1500",
    "THREADLINE_WORKER_MAINTENANCE_CHANCE": "1000000",
}


@pytest.mark.slow
async def test_worker_killed_mid_study_completes_exactly_once_after_restart(
    demo: Demo,
    graphql: GraphQLCall,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    n = 20_000
    study = await create(
        graphql,
        demo.token,
        projectId=gid("Project", demo.project_id),
        name="Killed",
        method="LATIN_HYPERCUBE",
        variables=DEMO_VARIABLES,
        outputs=OUTPUTS,
        objectives=[{"symbol": "m_wet", "sense": "MINIMIZE"}],
        sampleCount=n,
        seed=12,
    )
    log = tmp_path / "worker.log"
    first = start_worker(db_url, redis_url, log, **FAST_RECOVERY)
    try:
        await start(graphql, demo.token, study["id"], chunk=250)
        row = await wait_for(sessionmaker, study["id"], ("RUNNING",), done_at_least=1_000)
        stop_worker(first, kill=True)  # mid-study, chunks in flight and prefetched
    finally:
        stop_worker(first, kill=True)
    killed_at = (await wait_for(sessionmaker, study["id"], ("RUNNING",)))["done"]
    assert row["done"] <= killed_at < n
    await asyncio.sleep(0.5)
    assert (await stored(sessionmaker, study["id"]))[0] == killed_at  # nothing half-written

    second = start_worker(db_url, redis_url, log, **FAST_RECOVERY)
    try:
        row = await wait_for(sessionmaker, study["id"], within=90)
    finally:
        stop_worker(second)
    assert (row["status"], row["done"], row["total"]) == ("COMPLETED", n, n)
    assert await stored(sessionmaker, study["id"]) == (n, n, n)
    async with sessionmaker() as s:
        completions = await s.scalar(
            text(
                "SELECT count(*) FROM project_events WHERE project_id = :p"
                " AND kind = 'trade_study.status' AND payload->>'id' = :id"
                " AND payload->>'status' = 'COMPLETED'"
            ),
            {"p": demo.project_id, "id": str(study_uuid(study["id"]))},
        )
        pareto = await s.scalar(
            text(
                "SELECT count(*) FROM scenario_results WHERE trade_study_id = :id"
                " AND on_pareto_front"
            ),
            {"id": study_uuid(study["id"])},
        )
    assert completions == 1
    assert pareto and pareto >= 1
