"""GraphQL mutations of trade studies: create, update, start, cancel, apply a scenario."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.graphql.common import decode_id
from app.graphql.errors import ValidationError
from app.graphql.mutations import GQLInfo, fetch_row, given, mutate, result_union
from app.graphql.subscriptions import ComplianceChange, ParameterValueChange
from app.parameters.models import Parameter as ParameterModel
from app.parameters.mutations import ParameterChangeSuccess
from app.parameters.results import ParameterChangeResult
from app.parameters.schema import Parameter
from app.trade_studies import queue, service
from app.trade_studies.definition import ObjectiveInput, VariableInput
from app.trade_studies.schema import (
    TS,
    Distribution,
    ObjectiveSense,
    TradeStudy,
    TradeStudyMethod,
)

P = ParameterModel.__table__


def _uuid(gid: relay.GlobalID | None, type_name: str) -> uuid.UUID | None:
    if gid is None:
        return None
    return decode_id(gid, type_name) or uuid.UUID(int=0)  # a mistyped id reads as missing


@strawberry.input(
    description="A design variable: an independent parameter (by symbol or id) and how it "
    "varies. Give `values`, or `min`/`max` with `levels` (GRID) or a distribution "
    "(LATIN_HYPERCUBE, SOBOL, RANDOM); LIST variables need neither."
)
class TradeStudyVariableInput:
    symbol: str | None = strawberry.field(default=None, description="The parameter's symbol…")
    parameter_id: relay.GlobalID | None = strawberry.field(
        default=None, description="…or its global id."
    )
    unit: str | None = strawberry.field(
        default=None,
        description="Unit of every number below and of LIST rows (default: the parameter's).",
    )
    values: list[float] | None = strawberry.field(
        default=None,
        description="Explicit levels (GRID) or a discrete set sampled uniformly (1 to 10,000).",
    )
    min: float | None = strawberry.field(default=None, description="Lower bound.")
    max: float | None = strawberry.field(default=None, description="Upper bound (> min).")
    levels: int | None = strawberry.field(
        default=None, description="GRID: evenly spaced levels from min to max (2 to 10,000)."
    )
    distribution: Distribution | None = strawberry.field(
        default=None, description="Sampled methods: default UNIFORM."
    )
    mean: float | None = strawberry.field(default=None, description="NORMAL: mean.")
    std_dev: float | None = strawberry.field(default=None, description="NORMAL: std dev > 0.")
    mode: float | None = strawberry.field(
        default=None, description="TRIANGULAR: peak in [min, max] (default: the midpoint)."
    )

    def to_domain(self) -> VariableInput:
        return VariableInput(
            symbol=self.symbol,
            parameter_id=_uuid(self.parameter_id, "Parameter"),
            unit=self.unit,
            values=self.values,
            min=self.min,
            max=self.max,
            levels=self.levels,
            distribution=str(self.distribution.value) if self.distribution else None,
            mean=self.mean,
            std_dev=self.std_dev,
            mode=self.mode,
        )


@strawberry.input(description="An output to minimise or maximise (for the Pareto front).")
class TradeStudyObjectiveInput:
    symbol: str = strawberry.field(description="One of the study's outputs.")
    sense: ObjectiveSense = strawberry.field(description="MINIMIZE or MAXIMIZE.")

    def to_domain(self) -> ObjectiveInput:
        return ObjectiveInput(self.symbol, str(self.sense.value))


SEED_DOC = "Random seed (0 to 2^31-1) for sampled methods; same seed → same scenarios. " + (
    "Default: a random seed, stored."
)


@strawberry.input(description="A new trade study (created as DRAFT; start it to run).")
class TradeStudyCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    name: str = strawberry.field(description="Display name (1 to 200 characters).")
    method: TradeStudyMethod = strawberry.field(description="Sampling method.")
    variables: list[TradeStudyVariableInput] = strawberry.field(
        description="1 to 32 design variables (independent numeric parameters)."
    )
    description: str = strawberry.field(default="", description="Free text.")
    outputs: list[str] | None = strawberry.field(
        default=None,
        description="Output symbols (at most 100); default: every parameter downstream of "
        "the variables.",
    )
    objectives: list[TradeStudyObjectiveInput] = strawberry.field(
        default_factory=list, description="Objectives (outputs, at most 8) for the Pareto front."
    )
    constraints: list[str] | None = strawberry.field(
        default=None,
        description="Rule requirement keys a feasible scenario must pass (at most 32); "
        "default: every rule requirement on an output.",
    )
    rows: list[list[float]] | None = strawberry.field(
        default=None,
        description="LIST: the scenarios, one value per variable in variable order and unit "
        "(at most 100,000 rows; e.g. an uploaded CSV).",
    )
    sample_count: int | None = strawberry.field(
        default=None,
        description="LATIN_HYPERCUBE/RANDOM: scenarios; SOBOL: base points N (rounded up to "
        "a power of two; N·(variables+2) scenarios). At most 2,000,000 scenarios.",
    )
    seed: int | None = strawberry.field(default=None, description=SEED_DOC)


@strawberry.input(
    description="Changes to a study without results (DRAFT, or FAILED/CANCELLED before any "
    "scenario was stored); omitted fields stay. The definition is validated again."
)
class TradeStudyUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The study.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    method: TradeStudyMethod | None = strawberry.field(
        default=strawberry.UNSET, description="New method."
    )
    variables: list[TradeStudyVariableInput] | None = strawberry.field(
        default=strawberry.UNSET, description="New variables."
    )
    outputs: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="New outputs; null: the default."
    )
    objectives: list[TradeStudyObjectiveInput] | None = strawberry.field(
        default=strawberry.UNSET, description="New objectives."
    )
    constraints: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="New constraints; null: the default."
    )
    rows: list[list[float]] | None = strawberry.field(
        default=strawberry.UNSET, description="New LIST rows."
    )
    sample_count: int | None = strawberry.field(
        default=strawberry.UNSET, description="New sample count."
    )
    seed: int | None = strawberry.field(default=strawberry.UNSET, description="New seed.")


@strawberry.input(description="Run (or resume) a study on the workers.")
class TradeStudyStartInput:
    id: relay.GlobalID = strawberry.field(description="The study.")
    chunk_size: int | None = strawberry.field(
        default=None,
        description="Scenarios per worker message (1 to 100,000); default: automatic "
        "(total/16, between 2,000 and 50,000). Ignored when resuming.",
    )


@strawberry.input(description="Stop a queued or running study.")
class TradeStudyCancelInput:
    id: relay.GlobalID = strawberry.field(description="The study.")


@strawberry.input(description="Write a scenario's inputs back to the live parameters.")
class ScenarioApplyInput:
    id: relay.GlobalID = strawberry.field(description="The scenario's global id.")


@strawberry.type(description="The created trade study.")
class TradeStudyCreateSuccess:
    trade_study: TradeStudy = strawberry.field(description="The new study (DRAFT).")


@strawberry.type(description="The trade study as it is now.")
class TradeStudySuccess:
    trade_study: TradeStudy = strawberry.field(description="The study.")


if TYPE_CHECKING:
    TradeStudyCreateResult = Any
    TradeStudyUpdateResult = Any
    TradeStudyStartResult = Any
    TradeStudyCancelResult = Any
    ScenarioApplyResult = Any
else:
    TradeStudyCreateResult = result_union(
        "TradeStudyCreateResult", TradeStudyCreateSuccess, "The new study, or why not."
    )
    TradeStudyUpdateResult = result_union(
        "TradeStudyUpdateResult", TradeStudySuccess, "The edited study, or why not."
    )
    TradeStudyStartResult = result_union(
        "TradeStudyStartResult", TradeStudySuccess, "The queued study, or why not."
    )
    TradeStudyCancelResult = result_union(
        "TradeStudyCancelResult", TradeStudySuccess, "The cancelled study, or why not."
    )
    ScenarioApplyResult = result_union(
        "ScenarioApplyResult",
        ParameterChangeSuccess,
        "What the applied scenario changed, or why nothing did.",
    )


def _unset(value: Any, convert: Any = None) -> Any:
    if value is strawberry.UNSET:
        return given(value)
    if value is None or convert is None:
        return value
    return convert(value)


async def _study(info: GQLInfo, study: Any) -> TradeStudySuccess:
    return TradeStudySuccess(
        trade_study=TradeStudy.from_row(await fetch_row(info.context, TS, study.id))
    )


async def _change_success(info: GQLInfo, result: ParameterChangeResult) -> ParameterChangeSuccess:
    params = [Parameter.from_row(await fetch_row(info.context, P, p.id)) for p in result.parameters]
    return ParameterChangeSuccess(
        parameters=params,
        sequence=result.sequence,
        edited=[
            ParameterValueChange.from_payload(c.as_payload(), "scenario_applied")
            for c in result.edited
        ],
        recomputed=[
            ParameterValueChange.from_payload(c.as_payload(), "recompute")
            for c in result.recomputed
        ],
        requirements=[ComplianceChange.from_payload(c.as_payload()) for c in result.requirements],
    )


@strawberry.type
class TradeStudyMutation:
    @strawberry.mutation(
        description="Define a trade study (DRAFT): variables, method, outputs, objectives and "
        "constraints are validated against the live parameters."
    )
    async def trade_study_create(
        self,
        info: GQLInfo,
        input: Annotated[TradeStudyCreateInput, strawberry.argument(description="The study.")],
    ) -> TradeStudyCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.trade_study_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_uuid(input.project_id, "Project") or uuid.UUID(int=0),
                name=input.name,
                description=input.description,
                method=str(input.method.value),
                variables=[v.to_domain() for v in input.variables],
                outputs=input.outputs,
                objectives=[o.to_domain() for o in input.objectives],
                constraints=input.constraints,
                rows=input.rows,
                sample_count=input.sample_count,
                seed=input.seed,
            )

        async def success(study: Any) -> TradeStudyCreateSuccess:
            row = await fetch_row(info.context, TS, study.id)
            return TradeStudyCreateSuccess(trade_study=TradeStudy.from_row(row))

        return await mutate(info, call, success)

    @strawberry.mutation(description="Edit a study that has no results yet.")
    async def trade_study_update(
        self,
        info: GQLInfo,
        input: Annotated[TradeStudyUpdateInput, strawberry.argument(description="The edit.")],
    ) -> TradeStudyUpdateResult:
        for name in ("name", "description", "method", "variables", "objectives"):
            if getattr(input, name) is None:
                return ValidationError(
                    message=f"{name} cannot be null", code="VALIDATION_ERROR", field=name
                )

        async def call(actor: Any, meta: Any) -> Any:
            return await service.trade_study_update(
                info.context.session,
                actor=actor,
                meta=meta,
                study_id=_uuid(input.id, "TradeStudy") or uuid.UUID(int=0),
                name=_unset(input.name),
                description=_unset(input.description),
                method=_unset(input.method, lambda m: str(m.value)),
                variables=_unset(input.variables, lambda vs: [v.to_domain() for v in vs]),
                outputs=_unset(input.outputs),
                objectives=_unset(input.objectives, lambda os: [o.to_domain() for o in os]),
                constraints=_unset(input.constraints),
                rows=_unset(input.rows),
                sample_count=_unset(input.sample_count),
                seed=_unset(input.seed),
            )

        return await mutate(info, call, lambda s: _study(info, s))

    @strawberry.mutation(
        description="Run a DRAFT study on the workers (QUEUED → RUNNING → COMPLETED), or "
        "resume a FAILED/CANCELLED one (stored scenarios are kept; the snapshot frozen at "
        "its first run is reused). On a QUEUED/RUNNING study it re-sends the work "
        "(duplicates are skipped). Follow it with `tradeStudyProgress`."
    )
    async def trade_study_start(
        self,
        info: GQLInfo,
        input: Annotated[TradeStudyStartInput, strawberry.argument(description="Which study.")],
    ) -> TradeStudyStartResult:
        ctx = info.context
        redis_url = queue.redis_url_of(ctx.settings.redis_url, ctx.redis)

        async def call(actor: Any, meta: Any) -> Any:
            return await service.trade_study_start(
                ctx.session,
                actor=actor,
                meta=meta,
                study_id=_uuid(input.id, "TradeStudy") or uuid.UUID(int=0),
                redis_url=redis_url,
                chunk_size=input.chunk_size,
            )

        return await mutate(info, call, lambda s: _study(info, s))

    @strawberry.mutation(
        description="Cancel a QUEUED or RUNNING study: chunks not yet stored are not written."
    )
    async def trade_study_cancel(
        self,
        info: GQLInfo,
        input: Annotated[TradeStudyCancelInput, strawberry.argument(description="Which study.")],
    ) -> TradeStudyCancelResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.trade_study_cancel(
                info.context.session,
                actor=actor,
                meta=meta,
                study_id=_uuid(input.id, "TradeStudy") or uuid.UUID(int=0),
            )

        return await mutate(info, call, lambda s: _study(info, s))

    @strawberry.mutation(
        description="Set the live parameters to a scenario's inputs as one normal edit: "
        "derived values recompute, requirement compliance updates, history records the "
        "cause `scenario_applied`, one `parameter.changed` event."
    )
    async def scenario_apply(
        self,
        info: GQLInfo,
        input: Annotated[ScenarioApplyInput, strawberry.argument(description="Which scenario.")],
    ) -> ScenarioApplyResult:
        scenario_id = _scenario_id(input.id)

        async def call(actor: Any, meta: Any) -> ParameterChangeResult:
            return await service.scenario_apply(
                info.context.session, actor=actor, meta=meta, scenario_id=scenario_id
            )

        return await mutate(info, call, lambda r: _change_success(info, r))


def _scenario_id(gid: relay.GlobalID) -> int:
    if gid.type_name != "Scenario":
        return 0
    try:
        number = int(gid.node_id)
    except ValueError:
        return 0
    return number if -(2**63) <= number < 2**63 else 0
