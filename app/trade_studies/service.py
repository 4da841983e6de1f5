"""Trade-study use cases: create, update, start, cancel, and applying a scenario.

Services flush, never commit (the caller owns the transaction). Starting a study
only marks it QUEUED and registers an after-commit hook that sends the planner
message (``app.trade_studies.queue``); the workers do the rest
(``app.trade_studies.runner``). Writes lock the project row first, like every
other domain, so lock order is project → study everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta, record
from app.auth.principal import Principal
from app.db import after_commit
from app.parameters.models import Parameter, ParameterVersion
from app.parameters.results import ParameterChangeResult
from app.parameters.service import ParameterValueInput, parameter_set_values
from app.requirements.models import Requirement
from app.service_support import (
    MAX_DESCRIPTION,
    UNSET,
    Unset,
    authorize,
    authorize_object,
    clean_text,
    finish,
    lock_project,
    set_fields,
)
from app.trade_studies import queue
from app.trade_studies.definition import (
    MAX_CHUNK,
    ObjectiveInput,
    ParamInfo,
    RuleInfo,
    VariableInput,
    freeze,
    normalize,
)
from app.trade_studies.errors import InvalidState, NotFound, ValidationError
from app.trade_studies.models import TradeStudy

log = logging.getLogger("threadline.trade_studies")

MAX_NAME = 200
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


# --------------------------------------------------------------------------- project state


async def project_state(
    session: AsyncSession, project_id: uuid.UUID
) -> tuple[list[ParamInfo], list[RuleInfo]]:
    """The project's live parameters and rule requirements as plain records (2 queries)."""
    params = await session.execute(
        select(
            Parameter.id,
            Parameter.symbol,
            Parameter.unit,
            Parameter.value_kind,
            Parameter.formula,
            Parameter.value_number,
        ).where(Parameter.project_id == project_id, Parameter.deleted_at.is_(None))
    )
    rules = await session.execute(
        select(
            Requirement.id,
            Requirement.key,
            Parameter.symbol,
            Requirement.rule_operator,
            Requirement.rule_threshold,
            Requirement.rule_threshold_high,
            Requirement.rule_unit,
            Parameter.value_kind,
        )
        .join(Parameter, Parameter.id == Requirement.rule_parameter_id)
        .where(
            Requirement.project_id == project_id,
            Requirement.deleted_at.is_(None),
            Requirement.rule_operator.is_not(None),
            Parameter.deleted_at.is_(None),
        )
        .order_by(Requirement.key)
    )
    return (
        [ParamInfo(*row) for row in params],
        [RuleInfo(*row) for row in rules],  # type: ignore[arg-type]
    )


def progress_payload(
    study: Mapping[str, Any] | TradeStudy, now: datetime | None = None
) -> dict[str, Any]:
    """The payload of ``trade_study.status``/``trade_study.progress`` events."""
    get = study.get if isinstance(study, Mapping) else lambda k: getattr(study, k)
    done, total = int(get("done") or 0), int(get("total") or 0)
    started = get("started_at")
    rate: float | None = None
    eta: float | None = None
    status = get("status")
    snapshot = get("snapshot") or {}
    base = int((snapshot.get("run") or {}).get("done_at_start") or 0)
    end = get("completed_at") if status in TERMINAL else now
    if started is not None and end is not None:
        elapsed = (end - started).total_seconds()
        if elapsed > 0 and done > base:
            rate = (done - base) / elapsed
            if status in ("RUNNING", "QUEUED"):
                eta = (total - done) / rate
    return {
        "id": str(get("id")),
        "status": status,
        "done": done,
        "total": total,
        "scenarios_per_second": rate,
        "eta_seconds": eta,
        "error": get("error"),
    }


# --------------------------------------------------------------------------- create/update


def _seed() -> int:
    return secrets.randbelow(2**31)


async def trade_study_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    name: str,
    method: str,
    variables: Sequence[VariableInput],
    description: str = "",
    outputs: Sequence[str] | None = None,
    objectives: Sequence[ObjectiveInput] = (),
    constraints: Sequence[str] | None = None,
    rows: Sequence[Sequence[float]] | None = None,
    sample_count: int | None = None,
    seed: int | None = None,
) -> TradeStudy:
    """Create a DRAFT study; the definition is validated against the live parameters.

    ``outputs`` default to every parameter downstream of the variables and
    ``constraints`` to every rule requirement on an output; both are stored as
    explicit lists. A sampled study without a seed gets a random one (stored).
    """
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    await lock_project(session, project_id)
    params, rules = await project_state(session, project_id)
    norm = normalize(
        method=method,
        variables=variables,
        outputs=outputs,
        objectives=objectives,
        constraints=constraints,
        rows=rows,
        sample_count=sample_count,
        seed=seed,
        params=params,
        rules=rules,
        default_seed=_seed(),
    )
    study = TradeStudy(
        id=uuid.uuid4(),
        project_id=project_id,
        name=name,
        description=description,
        method=method,
        status="DRAFT",
        definition=norm.definition,
        sample_count=norm.sample_count,
        seed=norm.seed,
        created_by_id=actor.user_id,
    )
    session.add(study)
    await session.flush()
    diff = {
        k: [None, getattr(study, k)]
        for k in ("name", "method", "sample_count", "seed", "definition")
    }
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="trade_study.create",
        event_kind="trade_study.created",
        object_type="trade_study",
        object_id=study.id,
        diff=diff,
        payload={"object_type": "trade_study", "id": study.id, "name": name, "status": "DRAFT"},
    )
    return study


async def _locked_study(
    session: AsyncSession, actor: Principal, study_id: uuid.UUID, minimum: str = "editor"
) -> tuple[TradeStudy, datetime]:
    project_id = await authorize_object(
        session,
        actor=actor,
        model=TradeStudy,
        object_id=study_id,
        what="trade study",
        minimum=minimum,
    )
    now = await lock_project(session, project_id)
    study = await session.scalar(
        select(TradeStudy)
        .where(TradeStudy.id == study_id, TradeStudy.deleted_at.is_(None))
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: chunks hold KEY SHARE
        .execution_options(populate_existing=True)
    )
    if study is None:
        raise NotFound("trade study not found", field="id")
    return study, now


def _variable_inputs(definition: Mapping[str, Any]) -> list[VariableInput]:
    out = []
    for v in definition.get("variables") or []:
        pid = v.get("parameter_id")
        out.append(
            VariableInput(
                symbol=v.get("symbol"),
                parameter_id=uuid.UUID(pid) if pid else None,
                unit=v.get("unit"),
                values=v.get("values"),
                min=v.get("min"),
                max=v.get("max"),
                levels=v.get("levels"),
                distribution=v.get("distribution"),
                mean=v.get("mean"),
                std_dev=v.get("std_dev"),
                mode=v.get("mode"),
            )
        )
    return out


async def trade_study_update(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    study_id: uuid.UUID,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    method: str | Unset = UNSET,
    variables: Sequence[VariableInput] | Unset = UNSET,
    outputs: Sequence[str] | Unset | None = UNSET,
    objectives: Sequence[ObjectiveInput] | Unset = UNSET,
    constraints: Sequence[str] | Unset | None = UNSET,
    rows: Sequence[Sequence[float]] | Unset | None = UNSET,
    sample_count: int | Unset | None = UNSET,
    seed: int | Unset | None = UNSET,
) -> TradeStudy:
    """Edit a study that has no results yet (DRAFT, or FAILED/CANCELLED before any scenario
    was stored; it returns to DRAFT). ``outputs``/``constraints`` set to null recompute
    their defaults. The whole definition is validated again."""
    study, _ = await _locked_study(session, actor, study_id)
    if study.status not in ("DRAFT", "FAILED", "CANCELLED") or study.done > 0:
        raise InvalidState(
            f"the study is {study.status} with {study.done} stored scenarios; only a study "
            "without results can be edited (create a new one)",
            status=study.status,
        )
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = clean_text(name, field="name", max_length=MAX_NAME)
    if description is not UNSET:
        changes["description"] = clean_text(
            description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
        )
    definition = study.definition or {}
    touches_definition = any(
        x is not UNSET
        for x in (method, variables, outputs, objectives, constraints, rows, sample_count, seed)
    )
    if touches_definition:
        params, rules = await project_state(session, study.project_id)
        new_method = study.method if method is UNSET else method
        stored_objectives = [
            ObjectiveInput(o["symbol"], o["sense"]) for o in definition.get("objectives", [])
        ]
        norm = normalize(
            method=new_method,
            variables=_variable_inputs(definition) if variables is UNSET else variables,
            outputs=definition.get("outputs") if outputs is UNSET else outputs,
            objectives=stored_objectives if objectives is UNSET else objectives,
            constraints=definition.get("constraints") if constraints is UNSET else constraints,
            rows=definition.get("rows") if rows is UNSET else rows,
            sample_count=study.sample_count if sample_count is UNSET else sample_count,
            seed=study.seed if seed is UNSET else seed,
            params=params,
            rules=rules,
            default_seed=study.seed if study.seed is not None else _seed(),
        )
        changes.update(
            method=new_method,
            definition=norm.definition,
            sample_count=norm.sample_count,
            seed=norm.seed,
        )
    changes.update(
        status="DRAFT", snapshot=None, snapshot_sequence=None, error=None, total=0, summary=None
    )
    diff = set_fields(study, changes)
    if diff:
        await finish(
            session,
            actor=actor,
            meta=meta,
            project_id=study.project_id,
            action="trade_study.update",
            event_kind="trade_study.updated",
            object_type="trade_study",
            object_id=study.id,
            diff=diff,
            payload={"object_type": "trade_study", "id": study.id, "changes": sorted(diff)},
        )
    return study


# --------------------------------------------------------------------------- start/cancel


async def trade_study_start(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    study_id: uuid.UUID,
    redis_url: str | None,
    chunk_size: int | None = None,
) -> TradeStudy:
    """Queue a run (DRAFT), or resume one (FAILED/CANCELLED: stored scenarios are kept and
    the same frozen snapshot is used). On a QUEUED or RUNNING study it only sends the
    work again (recovering lost messages; work already done is skipped). The planner
    message is sent after commit."""
    if redis_url is None:
        raise ValidationError("no Redis broker is configured for trade-study workers")
    if chunk_size is not None and not 1 <= chunk_size <= MAX_CHUNK:
        raise ValidationError(f"chunkSize must be 1 to {MAX_CHUNK:,}", field="chunkSize")
    study, now = await _locked_study(session, actor, study_id)
    if study.status == "COMPLETED":
        raise InvalidState(
            "the study is COMPLETED; create a new study to run it again", status=study.status
        )
    if study.status in ("DRAFT", "FAILED", "CANCELLED"):
        if study.snapshot is None:
            # Fail fast: the same checks the planner makes, against the model as it is now.
            params, rules = await project_state(session, study.project_id)
            freeze(
                method=study.method,
                definition=study.definition,
                sample_count=study.sample_count,
                seed=study.seed,
                params=params,
                rules=rules,
            )
        definition = dict(study.definition or {})
        if chunk_size is not None and study.snapshot is None:
            definition["chunk_size"] = chunk_size
        old = study.status
        set_fields(study, {"definition": definition})
        study.status, study.error, study.completed_at = "QUEUED", None, None
        study.updated_at = now
        await session.flush()
        await finish(
            session,
            actor=actor,
            meta=meta,
            project_id=study.project_id,
            action="trade_study.start",
            event_kind="trade_study.status",
            object_type="trade_study",
            object_id=study.id,
            diff={"status": [old, "QUEUED"]},
            payload=progress_payload(study, now),
        )
    study_key = str(study.id)

    async def enqueue() -> None:
        try:
            await asyncio.to_thread(queue.send, redis_url, queue.RUN_ACTOR, study_key)
        except Exception:
            # Committed as QUEUED: starting it again re-sends the message.
            log.exception("enqueueing trade study %s failed", study_key)

    after_commit(session, enqueue)
    return study


async def trade_study_cancel(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, study_id: uuid.UUID
) -> TradeStudy:
    """Stop a QUEUED or RUNNING study: chunks not yet committed write nothing."""
    study, now = await _locked_study(session, actor, study_id)
    if study.status not in ("QUEUED", "RUNNING"):
        raise InvalidState(f"the study is {study.status}, not running", status=study.status)
    old = study.status
    study.status, study.completed_at, study.updated_at = "CANCELLED", now, now
    await session.flush()
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=study.project_id,
        action="trade_study.cancel",
        event_kind="trade_study.status",
        object_type="trade_study",
        object_id=study.id,
        diff={"status": [old, "CANCELLED"]},
        payload=progress_payload(study, now),
    )
    return study


# --------------------------------------------------------------------------- apply


_SCENARIO = text(
    "SELECT s.id, s.index, s.inputs, t.id AS study_id, t.project_id, t.snapshot, t.definition"
    " FROM scenarios s JOIN trade_studies t ON t.id = s.trade_study_id"
    " WHERE s.id = :id AND t.deleted_at IS NULL"
)


async def scenario_apply(
    session: AsyncSession, *, actor: Principal, meta: RequestMeta, scenario_id: int
) -> ParameterChangeResult:
    """Write a scenario's inputs to the live parameters as one normal edit (recompute,
    compliance, history, audit, one ``parameter.changed`` event); the history rows of
    the edited parameters record the cause ``scenario_applied``."""
    row = (await session.execute(_SCENARIO, {"id": scenario_id})).mappings().one_or_none()
    if row is None:
        raise NotFound("scenario not found", field="id")
    await authorize(
        session,
        actor=actor,
        project_id=row["project_id"],
        minimum="editor",
        not_found="scenario not found",
        field="id",
    )
    frozen = (row["snapshot"] or {}).get("variables") or row["definition"].get("variables") or []
    items = [
        ParameterValueInput(value=float(value), symbol=v["symbol"], unit=v.get("unit") or "")
        for v, value in zip(frozen, row["inputs"], strict=True)
    ]
    result = await parameter_set_values(
        session, actor=actor, meta=meta, project_id=row["project_id"], items=items
    )
    if result.event is not None and result.edited:
        await session.execute(
            update(ParameterVersion)
            .where(
                ParameterVersion.event_sequence == result.event.sequence,
                ParameterVersion.parameter_id.in_([c.parameter.id for c in result.edited]),
                ParameterVersion.cause == "edit",
            )
            .values(cause="scenario_applied")
        )
    record(
        session,
        actor=actor,
        meta=meta,
        action="trade_study.scenario_apply",
        project_id=row["project_id"],
        object_type="trade_study",
        object_id=row["study_id"],
        diff={
            "scenario": [None, {"id": scenario_id, "index": row["index"]}],
            "inputs": [None, {i.symbol: i.value for i in items}],
            "event_sequence": [None, result.sequence],
        },
    )
    await session.flush()
    return result
