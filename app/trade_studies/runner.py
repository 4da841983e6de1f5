"""Running a trade study on the workers: plan, evaluate chunks, finalize (one transaction
per actor message; the caller commits).

* :func:`plan_study` freezes the study (parameter snapshot, project sequence,
  latest revision), generates the design to count the scenarios, marks the study
  RUNNING and returns the chunks to send (after commit). Redelivered, it returns
  the chunks again; chunks already stored are skipped.
* :func:`run_chunk` evaluates one chunk and stores it with two binary COPYs. It is
  idempotent: an advisory lock per (study, chunk) serialises duplicate deliveries,
  a chunk whose rows exist is skipped, and the unique indexes on
  ``(trade_study_id, index)`` and ``(trade_study_id, input_hash)`` make a
  double insert impossible. ``done`` grows by the rows actually inserted, in the
  same transaction, so exactly one transaction sees ``done == total``: it computes
  the Pareto front and the summary and marks the study COMPLETED.
* A cancelled study's chunks roll back (the ``done`` update requires RUNNING).
"""

from __future__ import annotations

import io
import logging
import os
import uuid
import zlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import DomainError
from app.events import append_event
from app.service_support import lock_project
from app.trade_studies import execution, pgcopy
from app.trade_studies.definition import freeze
from app.trade_studies.execution import Final, Plan, Prepared
from app.trade_studies.models import TradeStudy
from app.trade_studies.sampling import make_design
from app.trade_studies.service import progress_payload, project_state

log = logging.getLogger("threadline.trade_studies")

_FAST_COPY: bool | None = None


class StudyStopped(Exception):
    """The study left RUNNING (cancelled, failed) while a chunk was being written."""


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    status: str
    chunks: list[int]


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    inserted: int = 0
    done: int = 0
    total: int = 0
    completed: bool = False
    skipped: str | None = None


def _key(study_id: uuid.UUID, frozen_at: Any) -> str:
    return f"{study_id}:{frozen_at}"


def _lock_key(study_id: uuid.UUID) -> int:
    return zlib.crc32(study_id.bytes) - 2**31  # int4 for pg_advisory_xact_lock(int, int)


async def _load_study(session: AsyncSession, study_id: uuid.UUID) -> TradeStudy | None:
    return await session.scalar(
        select(TradeStudy)
        .where(TradeStudy.id == study_id, TradeStudy.deleted_at.is_(None))
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: chunks hold KEY SHARE
        .execution_options(populate_existing=True)
    )


async def _lock(session: AsyncSession, study_id: uuid.UUID) -> tuple[TradeStudy, datetime] | None:
    """Project lock, then the study row (the lock order every writer uses)."""
    project_id = await session.scalar(
        select(TradeStudy.project_id).where(
            TradeStudy.id == study_id, TradeStudy.deleted_at.is_(None)
        )
    )
    if project_id is None:
        return None
    now = await lock_project(session, project_id)
    study = await _load_study(session, study_id)
    return (study, now) if study is not None else None


async def _status_event(session: AsyncSession, study: TradeStudy, now: datetime) -> None:
    await session.flush()
    await append_event(
        session,
        project_id=study.project_id,
        kind="trade_study.status",
        payload=progress_payload(study, now),
        actor_id=None,
    )


# --------------------------------------------------------------------------- plan


async def plan_study(session: AsyncSession, study_id: uuid.UUID) -> PlanOutcome:
    locked = await _lock(session, study_id)
    if locked is None:
        return PlanOutcome("MISSING", [])
    study, now = locked
    if study.status == "RUNNING":
        plan = Plan.from_snapshot(study.snapshot or {})
        return PlanOutcome("RUNNING", list(range(plan.chunks)))
    if study.status != "QUEUED":
        return PlanOutcome(study.status, [])
    try:
        if study.snapshot is None:
            plan = await _freeze(session, study, now)
        else:  # resuming: same frozen model, stored scenarios are kept
            plan = Plan.from_snapshot(study.snapshot)
            study.snapshot = {**study.snapshot, "run": {"done_at_start": study.done}}
    except DomainError as exc:
        study.status, study.error, study.completed_at = "FAILED", exc.message, now
        study.updated_at = now
        await _status_event(session, study, now)
        return PlanOutcome("FAILED", [])
    study.status, study.started_at, study.updated_at = "RUNNING", now, now
    study.completed_at = None
    await _status_event(session, study, now)
    return PlanOutcome("RUNNING", list(range(plan.chunks)))


async def _freeze(session: AsyncSession, study: TradeStudy, now: datetime) -> Plan:
    params, rules = await project_state(session, study.project_id)
    definition = study.definition or {}
    plan = freeze(
        method=study.method,
        definition=definition,
        sample_count=study.sample_count,
        seed=study.seed,
        params=params,
        rules=rules,
        chunk_size=definition.get("chunk_size"),
    )
    design = make_design(plan.design)
    plan = replace(plan, total=design.size)
    sequence = await session.scalar(
        text("SELECT event_sequence FROM projects WHERE id = :id"), {"id": study.project_id}
    )
    revision = await session.scalar(
        text(
            "SELECT name FROM revisions WHERE project_id = :id AND deleted_at IS NULL"
            " ORDER BY sequence DESC, created_at DESC LIMIT 1"
        ),
        {"id": study.project_id},
    )
    frozen_at = now.isoformat()
    study.snapshot = {
        **plan.snapshot(),
        "frozen_at": frozen_at,
        "sequence": sequence,
        "revision": revision,
        "run": {"done_at_start": 0},
    }
    study.snapshot_sequence = sequence
    study.total = design.size
    # This process will likely run chunks too: keep the design it just generated.
    execution.remember(_key(study.id, frozen_at), Prepared(plan, design))
    return plan


# --------------------------------------------------------------------------- chunks

_STUDY_STATE = text(
    "SELECT project_id, status, total, done, snapshot->>'frozen_at' AS frozen_at"
    " FROM trade_studies WHERE id = :id AND deleted_at IS NULL"
)
_CHUNK_EXISTS = text(
    "SELECT EXISTS (SELECT 1 FROM scenarios WHERE trade_study_id = :id"
    " AND index >= :start AND index < :stop)"
)
_ADD_DONE = text(
    "UPDATE trade_studies SET done = done + :n, updated_at = now()"
    " WHERE id = :id AND status = 'RUNNING'"
    " RETURNING id, status, done, total, started_at, completed_at, snapshot, error, summary"
)
_PRECOMPUTED = text("SELECT done, summary FROM trade_studies WHERE id = :id")
# A precomputed front larger than this is not stored in the summary (computed at the end).
MAX_PRECOMPUTED_FRONT = 100_000


def _precomputed(summary: dict[str, Any] | None) -> Final | None:
    if not summary or "pareto_indexes" not in summary:
        return None
    rest = {k: v for k, v in summary.items() if k != "pareto_indexes"}
    return Final(summary=rest, pareto=np.asarray(summary["pareto_indexes"], dtype=np.int64))


async def summarize_study(session: AsyncSession, study_id: uuid.UUID) -> bool:
    """Compute a RUNNING study's summary and Pareto front ahead of its last chunk.

    Deterministic (the frozen design and model), so it can run while the chunks are
    stored; the completing chunk uses it instead of computing it then. Stored with
    the front's indexes until completion; the API shows a summary only once COMPLETED.
    """
    state = (
        (
            await session.execute(
                text(
                    "SELECT status, summary IS NOT NULL AS ready, snapshot->>'frozen_at'"
                    " AS frozen_at FROM trade_studies WHERE id = :id AND deleted_at IS NULL"
                ),
                {"id": study_id},
            )
        )
        .mappings()
        .one_or_none()
    )
    if state is None or state["status"] != "RUNNING" or state["ready"]:
        return False
    prepared = await prepared_for(session, study_id, state["frozen_at"])
    final = prepared.finalize(seed=prepared.plan.design.seed)
    if final.pareto.size > MAX_PRECOMPUTED_FRONT:
        return False
    summary = {**final.summary, "pareto_indexes": [int(i) for i in final.pareto]}
    result = await session.execute(
        text(
            "UPDATE trade_studies SET summary = CAST(:summary AS jsonb)"
            " WHERE id = :id AND status = 'RUNNING' AND summary IS NULL"
        ),
        {"id": study_id, "summary": _json(summary)},
    )
    return bool(getattr(result, "rowcount", 0))


_MARK_PARETO = text(
    "UPDATE scenario_results r SET on_pareto_front = true, updated_at = now()"
    " FROM scenarios s WHERE s.trade_study_id = :id AND s.index = ANY(:indexes)"
    " AND r.scenario_id = s.id AND r.trade_study_id = :id"
)


async def prepared_for(session: AsyncSession, study_id: uuid.UUID, frozen_at: Any) -> Prepared:
    key = _key(study_id, frozen_at)
    hit = execution.cached(key)
    if hit is not None:
        return hit
    snapshot = await session.scalar(select(TradeStudy.snapshot).where(TradeStudy.id == study_id))
    return execution.prepare(key, lambda: Plan.from_snapshot(snapshot or {}))


async def run_chunk(session: AsyncSession, study_id: uuid.UUID, chunk: int) -> ChunkOutcome:
    state = (await session.execute(_STUDY_STATE, {"id": study_id})).mappings().one_or_none()
    if state is None or state["status"] != "RUNNING":
        return ChunkOutcome(skipped="not running")
    prepared = await prepared_for(session, study_id, state["frozen_at"])
    plan = prepared.plan
    start, stop = plan.chunk_range(chunk)
    if start >= stop:
        return ChunkOutcome(skipped="empty chunk")
    # Duplicate deliveries of this chunk wait here, then find its rows.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _lock_key(study_id), "b": chunk}
    )
    if await session.scalar(_CHUNK_EXISTS, {"id": study_id, "start": start, "stop": stop}):
        return ChunkOutcome(skipped="already stored")

    evaluation = prepared.evaluate(start, stop)
    raw = await _raw_connection(session)
    n = stop - start
    ids = await _reserve_ids(raw, n)
    scenarios = pgcopy.scenarios_payload(
        ids,
        study_id,
        np.arange(start, stop, dtype=np.int64),
        prepared.design.digests(start, stop),
        evaluation.inputs,
    )
    results = pgcopy.results_payload(
        ids,
        study_id,
        evaluation.outputs,
        evaluation.feasible,
        evaluation.reason_index,
        evaluation.reasons,
    )
    inserted = await _copy(raw, study_id, scenarios, results)

    # The transaction that completes the study also finalizes it. The summary is
    # usually precomputed (summarize_study, in parallel with the chunks); otherwise do
    # the heavy part before taking the project lock when this chunk is probably last.
    final: Final | None = None
    current = (await session.execute(_PRECOMPUTED, {"id": study_id})).mappings().one_or_none()
    if current is not None and current["done"] + inserted >= plan.total:
        final = _precomputed(current["summary"]) or prepared.finalize(seed=plan.design.seed)
    now = await lock_project(session, state["project_id"])
    row = (await session.execute(_ADD_DONE, {"id": study_id, "n": inserted})).mappings().first()
    if row is None:
        raise StudyStopped(f"trade study {study_id} is no longer running")
    progress = dict(row)
    if row["done"] < row["total"]:
        await append_event(
            session,
            project_id=state["project_id"],
            kind="trade_study.progress",
            payload=progress_payload(progress, now),
            actor_id=None,
        )
        return ChunkOutcome(inserted, row["done"], row["total"])
    if final is None:
        final = _precomputed(row["summary"]) or prepared.finalize(seed=plan.design.seed)
    await _complete(session, study_id, state["project_id"], progress, final, now)
    return ChunkOutcome(inserted, row["done"], row["total"], completed=True)


async def _complete(
    session: AsyncSession,
    study_id: uuid.UUID,
    project_id: uuid.UUID,
    progress: dict[str, Any],
    final: Final,
    now: datetime,
) -> None:
    if final.pareto.size:
        await session.execute(
            _MARK_PARETO, {"id": study_id, "indexes": [int(i) for i in final.pareto]}
        )
    started = progress["started_at"]
    base = int(((progress.get("snapshot") or {}).get("run") or {}).get("done_at_start") or 0)
    elapsed = (now - started).total_seconds() if started else None
    summary = {
        **final.summary,
        "elapsed_seconds": elapsed,
        "scenarios_per_second": (progress["done"] - base) / elapsed if elapsed else None,
    }
    await session.execute(
        text(
            "UPDATE trade_studies SET status = 'COMPLETED', summary = CAST(:summary AS jsonb),"
            " completed_at = :now, updated_at = :now WHERE id = :id"
        ),
        {"id": study_id, "summary": _json(summary), "now": now},
    )
    progress.update(status="COMPLETED", completed_at=now)
    await append_event(
        session,
        project_id=project_id,
        kind="trade_study.status",
        payload=progress_payload(progress, now),
        actor_id=None,
    )


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def _raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection of the session's transaction (for COPY)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


ID_BLOCK = 1 << 17  # ids per block of ``scenario_id_blocks`` (>= the largest chunk)


async def _reserve_ids(raw: Any, n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``n`` fresh ``scenarios.id`` values: one block of the ``scenario_id_blocks``
    sequence (``id = block * 2^17 + i``; see the migration). Lock-free; a block of a
    transaction that rolls back is simply never used."""
    if n > ID_BLOCK:
        raise ValueError(f"a chunk has at most {ID_BLOCK} scenarios")
    block = int(await raw.fetchval("SELECT nextval('scenario_id_blocks')"))
    return np.arange(block * ID_BLOCK, block * ID_BLOCK + n, dtype=np.int64)


async def _fast_copy_allowed(raw: Any) -> bool:
    """Whether the COPYs may skip the per-row foreign-key triggers (see :func:`_copy`)."""
    global _FAST_COPY
    if _FAST_COPY is None:
        if os.environ.get("THREADLINE_TRADE_STUDY_FAST_COPY", "1") == "0":
            _FAST_COPY = False
        else:
            _FAST_COPY = bool(
                await raw.fetchval(
                    "SELECT current_setting('is_superuser') = 'on' AND NOT EXISTS ("
                    " SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN"
                    " ('scenarios'::regclass, 'scenario_results'::regclass))"
                )
            )
    return _FAST_COPY


async def _copy(raw: Any, study_id: uuid.UUID, scenarios: bytes, results: bytes) -> int:
    """COPY both payloads; the number of scenarios inserted.

    The only triggers on these tables are the foreign-key checks to
    ``trade_studies`` — one SPI query per row, more than half of the database's
    cost of a 10^6-scenario study. Every row of a chunk references the same
    study, so when the role may (superuser, no user triggers on the tables) the
    check is done once, by locking the study row exactly as the trigger would
    (``FOR KEY SHARE``), and the per-row triggers are skipped for the two COPYs
    (``session_replication_role = replica``, transaction-local, as ``pg_restore
    --disable-triggers`` does). Otherwise the triggers run as usual.
    """
    fast = await _fast_copy_allowed(raw)
    if fast:
        found = await raw.fetchval(
            "SELECT 1 FROM trade_studies WHERE id = $1 FOR KEY SHARE", study_id
        )
        if found is None:
            raise StudyStopped(f"trade study {study_id} does not exist")
        await raw.execute("SET LOCAL session_replication_role = replica")
    status = await raw.copy_to_table(
        "scenarios",
        source=io.BytesIO(scenarios),
        columns=list(pgcopy.SCENARIO_COLUMNS),
        format="binary",
    )
    await raw.copy_to_table(
        "scenario_results",
        source=io.BytesIO(results),
        columns=list(pgcopy.RESULT_COLUMNS),
        format="binary",
    )
    if fast:  # (an error aborts the transaction, and SET LOCAL with it)
        await raw.execute("SET LOCAL session_replication_role = origin")
    return int(str(status).split()[-1])


# --------------------------------------------------------------------------- failure


async def fail_study(session: AsyncSession, study_id: uuid.UUID, error: str) -> bool:
    """Mark a QUEUED/RUNNING study FAILED with ``error``; False if it was not running."""
    locked = await _lock(session, study_id)
    if locked is None:
        return False
    study, now = locked
    if study.status not in ("QUEUED", "RUNNING"):
        return False
    study.status, study.error = "FAILED", error[:2000]
    study.completed_at = study.updated_at = now
    await _status_event(session, study, now)
    return True
