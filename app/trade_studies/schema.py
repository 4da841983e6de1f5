"""GraphQL: trade studies — definition, progress, scenarios (keyset, filters), results.

Scenario inputs and outputs are stored as ``float8[]`` in the order of the study's
variables/outputs (frozen in its snapshot); this module names them.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import strawberry
from graphql import GraphQLError
from sqlalchemy import ColumnElement, Select, and_, func, select, tuple_
from sqlalchemy.engine import RowMapping
from strawberry import relay
from strawberry.scalars import JSON

from app.graphql.common import AFTER_DOC, BEFORE_DOC, GQLInfo, args, decode_id, parse_uuid
from app.graphql.pagination import (
    Connection,
    Page,
    PageArgs,
    PaginationError,
    SortDirection,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)
from app.trade_studies.models import Scenario as ScenarioModel
from app.trade_studies.models import ScenarioResult as ResultModel
from app.trade_studies.models import TradeStudy as TradeStudyModel

if TYPE_CHECKING:
    from app.projects.schema import Project

TS = TradeStudyModel.__table__
S = ScenarioModel.__table__
R = ResultModel.__table__

MAX_CSV_ROWS = 10_000
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@strawberry.enum(description="How a trade study samples its design space.")
class TradeStudyMethod(Enum):
    GRID = strawberry.enum_value("GRID", description="Full factorial over the levels.")
    LATIN_HYPERCUBE = strawberry.enum_value("LATIN_HYPERCUBE", description="Latin hypercube.")
    SOBOL = strawberry.enum_value(
        "SOBOL",
        description="Saltelli design over a scrambled Sobol' sequence: sampleCount base "
        "points (rounded up to a power of two) x (variables + 2) scenarios; gives "
        "first-order and total sensitivity indices.",
    )
    RANDOM = strawberry.enum_value("RANDOM", description="Uniform random.")
    LIST = strawberry.enum_value("LIST", description="Explicit rows.")


@strawberry.enum(description="Lifecycle of a trade study run.")
class TradeStudyStatus(Enum):
    DRAFT = strawberry.enum_value("DRAFT", description="Defined, not started.")
    QUEUED = strawberry.enum_value("QUEUED", description="Waiting for a worker.")
    RUNNING = strawberry.enum_value("RUNNING", description="Being evaluated.")
    COMPLETED = strawberry.enum_value("COMPLETED", description="All scenarios evaluated.")
    FAILED = strawberry.enum_value("FAILED", description="Stopped with an error.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Cancelled by a user.")


@strawberry.enum(description="How a variable's values are drawn by sampled methods.")
class Distribution(Enum):
    UNIFORM = strawberry.enum_value("UNIFORM", description="Uniform on [min, max].")
    LOG_UNIFORM = strawberry.enum_value(
        "LOG_UNIFORM", description="Uniform in log space on [min, max] (min > 0)."
    )
    NORMAL = strawberry.enum_value("NORMAL", description="Normal with mean and stdDev.")
    TRIANGULAR = strawberry.enum_value(
        "TRIANGULAR", description="Triangular on [min, max] peaking at mode."
    )


@strawberry.enum(description="Direction of an objective.")
class ObjectiveSense(Enum):
    MINIMIZE = strawberry.enum_value("minimize", description="Smaller is better.")
    MAXIMIZE = strawberry.enum_value("maximize", description="Larger is better.")


@strawberry.type(description="A design variable: an independent parameter and how it varies.")
class TradeStudyVariable:
    symbol: str = strawberry.field(description="The parameter's symbol.")
    unit: str = strawberry.field(description="Unit of min/max/values/mean/stdDev/mode.")
    values: list[float] | None = strawberry.field(description="Explicit levels, if given.")
    min: float | None = strawberry.field(description="Lower bound.")
    max: float | None = strawberry.field(description="Upper bound.")
    levels: int | None = strawberry.field(description="GRID: evenly spaced levels min..max.")
    distribution: Distribution | None = strawberry.field(description="Sampled methods.")
    mean: float | None = strawberry.field(description="NORMAL: mean.")
    std_dev: float | None = strawberry.field(description="NORMAL: standard deviation.")
    mode: float | None = strawberry.field(description="TRIANGULAR: peak.")

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> TradeStudyVariable:
        dist = v.get("distribution")
        return cls(
            symbol=v["symbol"],
            unit=v.get("unit") or "",
            values=v.get("values"),
            min=v.get("min"),
            max=v.get("max"),
            levels=v.get("levels"),
            distribution=Distribution(dist) if dist else None,
            mean=v.get("mean"),
            std_dev=v.get("std_dev"),
            mode=v.get("mode"),
        )


@strawberry.type(description="An output to minimise or maximise.")
class TradeStudyObjective:
    symbol: str = strawberry.field(description="The output's symbol.")
    sense: ObjectiveSense = strawberry.field(description="Minimise or maximise.")


@strawberry.type(description="Progress of a run (also the `tradeStudyProgress` message).")
class TradeStudyProgress:
    trade_study_id: relay.GlobalID = strawberry.field(description="The study.")
    status: TradeStudyStatus = strawberry.field(description="Run status.")
    done: int = strawberry.field(description="Scenarios evaluated and stored.")
    total: int = strawberry.field(description="Scenarios in the design (0 until planned).")
    scenarios_per_second: float | None = strawberry.field(
        description="Throughput of the current run so far (stored scenarios per second)."
    )
    eta_seconds: float | None = strawberry.field(
        description="Estimated seconds to completion at the current rate (running only)."
    )
    error: str | None = strawberry.field(description="Why the study failed, if it did.")
    sequence: int | None = strawberry.field(
        description="Project event sequence of this update (null: the state at subscribe time)."
    )

    @classmethod
    def from_payload(cls, p: Mapping[str, Any], sequence: int | None) -> TradeStudyProgress:
        return cls(
            trade_study_id=relay.GlobalID("TradeStudy", str(p["id"])),
            status=TradeStudyStatus(p["status"]),
            done=int(p.get("done") or 0),
            total=int(p.get("total") or 0),
            scenarios_per_second=_finite(p.get("scenarios_per_second")),
            eta_seconds=_finite(p.get("eta_seconds")),
            error=p.get("error"),
            sequence=sequence,
        )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@strawberry.type(description="A named value of a scenario (null when not finite).")
class ScenarioValue:
    symbol: str = strawberry.field(description="Parameter symbol.")
    value: float | None = strawberry.field(description="Value in `unit`; null for nan/inf.")
    unit: str = strawberry.field(description="Unit (the parameter's, as frozen by the run).")


@dataclass(frozen=True)
class _Names:
    """Symbols and units of a study's inputs and outputs (from its snapshot)."""

    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    def output_position(self, symbol: str) -> int | None:
        return next((i + 1 for i, (s, _) in enumerate(self.outputs) if s == symbol), None)

    def input_position(self, symbol: str) -> int | None:
        return next((i + 1 for i, (s, _) in enumerate(self.inputs) if s == symbol), None)


def study_names(snapshot: Mapping[str, Any] | None, definition: Mapping[str, Any]) -> _Names:
    snap = snapshot or {}
    variables = snap.get("variables") or definition.get("variables") or []
    outputs = snap.get("outputs") or [{"symbol": s, "unit": ""} for s in definition["outputs"]]
    return _Names(
        inputs=tuple((v["symbol"], v.get("unit") or "") for v in variables),
        outputs=tuple((o["symbol"], o.get("unit") or "") for o in outputs),
    )


@strawberry.type(description="One evaluated design point of a trade study.")
class Scenario(relay.Node):
    id: relay.NodeID[str]
    index: int = strawberry.field(
        description="Position in the study (0-based): the rank of the input hash; LIST "
        "studies: the row number."
    )
    input_hash: str = strawberry.field(description="Hash of the inputs (unique per study).")
    feasible: bool = strawberry.field(
        description="Every output finite and every constraint satisfied."
    )
    on_pareto_front: bool = strawberry.field(
        description="Non-dominated among feasible scenarios (set when the study completes)."
    )
    infeasible_reason: str | None = strawberry.field(
        description="Why not feasible: the first formula that gave nan/inf, the keys of the "
        "violated rule requirements (spelled out in the summary's infeasibleReasons)."
    )
    input_values: strawberry.Private[list[float]]
    output_values: strawberry.Private[list[float]]
    names: strawberry.Private[_Names]
    study_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The variables' values, in the study's order.")
    def inputs(self) -> list[ScenarioValue]:
        return [
            ScenarioValue(symbol=s, value=_finite(v), unit=u)
            for (s, u), v in zip(self.names.inputs, self.input_values, strict=False)
        ]

    @strawberry.field(description="The outputs' values, in the study's order.")
    def outputs(self) -> list[ScenarioValue]:
        return [
            ScenarioValue(symbol=s, value=_finite(v), unit=u)
            for (s, u), v in zip(self.names.outputs, self.output_values, strict=False)
        ]

    @strawberry.field(description="One input or output by symbol (null if not in the study).")
    def value(
        self, symbol: Annotated[str, strawberry.argument(description="Parameter symbol.")]
    ) -> ScenarioValue | None:
        return next((v for v in [*self.inputs(), *self.outputs()] if v.symbol == symbol), None)

    @strawberry.field(description="The trade study.")
    async def trade_study(self, info: GQLInfo) -> TradeStudy | None:
        row = await info.context.loaders.row(TS, self.study_id)
        return TradeStudy.from_row(row) if row is not None else None

    @classmethod
    def from_row(cls, r: RowMapping, names: _Names, study_id: uuid.UUID) -> Scenario:
        return cls(
            id=str(r["id"]),
            index=r["index"],
            input_hash=r["input_hash"],
            feasible=r["feasible"],
            on_pareto_front=r["on_pareto_front"],
            infeasible_reason=r["infeasible_reason"],
            input_values=list(r["inputs"]),
            output_values=list(r["outputs"]),
            names=names,
            study_id=study_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Scenario | None]:
        wanted: list[int | None] = []
        for raw in node_ids:
            try:
                number = int(raw)
            except ValueError:
                number = None
            wanted.append(number if number is not None and number in INT8 else None)
        ids = [i for i in wanted if i is not None]
        if not ids:
            return [None] * len(wanted)
        visible = await info.context.visible_projects()
        rows = (
            (
                await info.context.session.execute(
                    _scenario_columns()
                    .add_columns(TS.c.snapshot, TS.c.definition, TS.c.project_id)
                    .select_from(_joined().join(TS, TS.c.id == S.c.trade_study_id))
                    .where(S.c.id.in_(ids), TS.c.deleted_at.is_(None))
                )
            )
            .mappings()
            .all()
        )
        found = {
            r["id"]: cls.from_row(
                r, study_names(r["snapshot"], r["definition"]), r["trade_study_id"]
            )
            for r in rows
            if r["project_id"] in visible
        }
        return [found.get(i) if i is not None else None for i in wanted]


def _joined() -> Any:
    return S.join(R, and_(R.c.trade_study_id == S.c.trade_study_id, R.c.scenario_id == S.c.id))


def _scenario_columns() -> Select[Any]:
    return select(
        S.c.id,
        S.c.trade_study_id,
        S.c.index,
        S.c.input_hash,
        S.c.inputs,
        R.c.outputs,
        R.c.feasible,
        R.c.on_pareto_front,
        R.c.infeasible_reason,
    )


@strawberry.input(description="A closed range on one input or output (either bound optional).")
class ScenarioRange:
    symbol: str = strawberry.field(description="A variable or output symbol of the study.")
    min: float | None = strawberry.field(default=None, description="Lower bound (inclusive).")
    max: float | None = strawberry.field(default=None, description="Upper bound (inclusive).")


@strawberry.input(description="Which scenarios to list (all conditions must hold).")
class ScenarioFilter:
    feasible: bool | None = strawberry.field(default=None, description="Feasible or not.")
    pareto: bool | None = strawberry.field(default=None, description="On the Pareto front.")
    outputs: list[ScenarioRange] | None = strawberry.field(
        default=None, description="Ranges on outputs, in each output's unit."
    )
    inputs: list[ScenarioRange] | None = strawberry.field(
        default=None, description="Ranges on variables, in each variable's unit."
    )


@strawberry.input(description="Sort scenarios by a value (default: by index).")
class ScenarioOrder:
    symbol: str | None = strawberry.field(
        default=None, description="An output or variable symbol; null sorts by index."
    )
    direction: SortDirection = strawberry.field(
        default=SortDirection.ASC,
        description="ASC or DESC (nan sorts after every number; ties by index).",
    )


@strawberry.type(description="Statistics of one output over every scenario with a finite value.")
class OutputSummary:
    symbol: str = strawberry.field(description="Output symbol.")
    unit: str = strawberry.field(description="Unit of every number here.")
    count: int = strawberry.field(description="Scenarios with a finite value.")
    non_finite: int = strawberry.field(description="Scenarios where it was nan/inf.")
    min: float | None = strawberry.field(description="Minimum.")
    max: float | None = strawberry.field(description="Maximum.")
    mean: float | None = strawberry.field(description="Mean.")
    std: float | None = strawberry.field(description="Population standard deviation.")
    p5: float | None = strawberry.field(description="5th percentile.")
    p25: float | None = strawberry.field(description="25th percentile.")
    p50: float | None = strawberry.field(description="Median.")
    p75: float | None = strawberry.field(description="75th percentile.")
    p95: float | None = strawberry.field(description="95th percentile.")


@strawberry.type(description="How many infeasible scenarios share one reason.")
class InfeasibleReasonCount:
    reason: str = strawberry.field(
        description="The reason as stored on the scenarios, e.g. `violates REQ-COM-001, "
        "REQ-ORB-001` or `not computable: d_slant is nan`."
    )
    detail: str = strawberry.field(
        description="The same, spelled out: each violated rule, the formula that gave nan/inf."
    )
    count: int = strawberry.field(description="Scenarios with exactly this reason.")


@strawberry.type(description="Summary of a completed study.")
class TradeStudySummary:
    scenarios: int = strawberry.field(description="Scenarios evaluated.")
    feasible: int = strawberry.field(description="Feasible scenarios.")
    infeasible: int = strawberry.field(description="Infeasible scenarios.")
    pareto: int = strawberry.field(description="Scenarios on the Pareto front.")
    outputs: list[OutputSummary] = strawberry.field(description="Per output, study order.")
    infeasible_reasons: list[InfeasibleReasonCount] = strawberry.field(
        description="The most frequent reasons (at most 50), most frequent first."
    )
    percentiles_exact: bool = strawberry.field(
        description="False when percentiles come from an even subsample (very large studies)."
    )
    elapsed_seconds: float | None = strawberry.field(description="Run time, start to end.")
    scenarios_per_second: float | None = strawberry.field(description="Throughput of the run.")

    @classmethod
    def from_json(cls, s: Mapping[str, Any]) -> TradeStudySummary:
        outputs = []
        for o in s.get("outputs", []):
            pct = o.get("percentiles") or {}
            outputs.append(
                OutputSummary(
                    symbol=o["symbol"],
                    unit=o.get("unit") or "",
                    count=o.get("count", 0),
                    non_finite=o.get("non_finite", 0),
                    min=o.get("min"),
                    max=o.get("max"),
                    mean=o.get("mean"),
                    std=o.get("std"),
                    p5=pct.get("p5"),
                    p25=pct.get("p25"),
                    p50=pct.get("p50"),
                    p75=pct.get("p75"),
                    p95=pct.get("p95"),
                )
            )
        return cls(
            scenarios=s.get("scenarios", 0),
            feasible=s.get("feasible", 0),
            infeasible=s.get("infeasible", 0),
            pareto=s.get("pareto", 0),
            outputs=outputs,
            infeasible_reasons=[
                InfeasibleReasonCount(
                    reason=r["reason"], detail=r.get("detail") or r["reason"], count=r["count"]
                )
                for r in s.get("infeasible_reasons", [])
            ],
            percentiles_exact=bool(s.get("percentiles_exact", True)),
            elapsed_seconds=s.get("elapsed_seconds"),
            scenarios_per_second=s.get("scenarios_per_second"),
        )


@strawberry.type(description="Sobol' indices of one output for one variable.")
class SobolIndex:
    variable: str = strawberry.field(description="Variable symbol.")
    first_order: float | None = strawberry.field(description="First-order index S1.")
    first_order_conf: float | None = strawberry.field(
        description="Half-width of S1's bootstrap confidence interval (see confLevel)."
    )
    total: float | None = strawberry.field(description="Total-effect index ST.")
    total_conf: float | None = strawberry.field(description="Half-width of ST's interval.")


@strawberry.type(description="Sensitivity of one output.")
class OutputSensitivity:
    symbol: str = strawberry.field(description="Output symbol.")
    indices: list[SobolIndex] = strawberry.field(description="Per variable, study order.")
    error: str | None = strawberry.field(
        description="Why no indices (e.g. nan outputs, constant output)."
    )


@strawberry.type(description="Variance-based (Sobol') sensitivity of a SOBOL study (SALib).")
class TradeStudySensitivity:
    base_samples: int = strawberry.field(description="Base points N (scenarios = N·(d+2)).")
    conf_level: float = strawberry.field(description="Confidence level of the intervals.")
    outputs: list[OutputSensitivity] = strawberry.field(description="Per output.")

    @classmethod
    def from_json(cls, s: Mapping[str, Any]) -> TradeStudySensitivity:
        variables = s.get("variables", [])
        outputs = []
        for symbol, r in (s.get("outputs") or {}).items():
            indices = []
            if "error" not in r:
                for i, v in enumerate(variables):
                    indices.append(
                        SobolIndex(
                            variable=v,
                            first_order=r["S1"][i],
                            first_order_conf=r["S1_conf"][i],
                            total=r["ST"][i],
                            total_conf=r["ST_conf"][i],
                        )
                    )
            outputs.append(OutputSensitivity(symbol=symbol, indices=indices, error=r.get("error")))
        return cls(
            base_samples=s.get("base_samples", 0),
            conf_level=s.get("conf_level", 0.95),
            outputs=outputs,
        )


@strawberry.type(description="A design-of-experiments sweep over independent parameters.")
class TradeStudy(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Free text.")
    method: TradeStudyMethod = strawberry.field(description="Sampling method.")
    status: TradeStudyStatus = strawberry.field(description="Run status.")
    definition: JSON = strawberry.field(
        description="Variables, outputs, objectives and constraints, as stored."
    )
    sample_count: int | None = strawberry.field(
        description="Requested samples (LATIN_HYPERCUBE, RANDOM; SOBOL: base points)."
    )
    seed: int | None = strawberry.field(description="Random seed: same seed → same scenarios.")
    total: int = strawberry.field(description="Scenarios to evaluate (0 until planned).")
    done: int = strawberry.field(description="Scenarios evaluated and stored.")
    error: str | None = strawberry.field(description="Why the study failed, if it did.")
    snapshot_sequence: int | None = strawberry.field(
        description="Project event sequence whose parameter values the run froze."
    )
    started_at: datetime | None = strawberry.field(description="Start of the run (UTC).")
    completed_at: datetime | None = strawberry.field(description="End of the run (UTC).")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    uuid_: strawberry.Private[uuid.UUID]
    project_id: strawberry.Private[uuid.UUID]
    spec: strawberry.Private[dict[str, Any]]
    snapshot: strawberry.Private[dict[str, Any] | None]
    summary_: strawberry.Private[dict[str, Any] | None]
    updated_at: strawberry.Private[datetime | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> TradeStudy:
        return cls(
            id=str(r["id"]),
            uuid_=r["id"],
            project_id=r["project_id"],
            name=r["name"],
            description=r["description"],
            method=TradeStudyMethod(r["method"]),
            status=TradeStudyStatus(r["status"]),
            definition=r["definition"],
            spec=r["definition"] or {},
            sample_count=r["sample_count"],
            seed=r["seed"],
            total=r["total"],
            done=r["done"],
            error=r["error"],
            snapshot_sequence=r["snapshot_sequence"],
            started_at=r["started_at"],
            completed_at=r["completed_at"],
            created_at=r["created_at"],
            snapshot=r["snapshot"],
            summary_=r["summary"],
            updated_at=r["updated_at"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[TradeStudy | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(TS, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    # -- definition ------------------------------------------------------------

    @strawberry.field(description="The project.")
    async def project(
        self, info: GQLInfo
    ) -> Annotated[Project, strawberry.lazy("app.projects.schema")] | None:
        from app.projects.models import Project as ProjectModel
        from app.projects.schema import Project

        row = await info.context.loaders.row(ProjectModel.__table__, self.project_id)
        return Project.from_row(row) if row is not None else None

    @strawberry.field(description="The design variables (units as the user gave them).")
    def variables(self) -> list[TradeStudyVariable]:
        return [TradeStudyVariable.from_json(v) for v in self.spec.get("variables", [])]

    @strawberry.field(description="Symbols of the outputs, in the order scenarios list them.")
    def outputs(self) -> list[str]:
        return [str(s) for s in self.spec.get("outputs", [])]

    @strawberry.field(description="Objectives for the Pareto front.")
    def objectives(self) -> list[TradeStudyObjective]:
        return [
            TradeStudyObjective(symbol=o["symbol"], sense=ObjectiveSense(o["sense"]))
            for o in self.spec.get("objectives", [])
        ]

    @strawberry.field(description="Keys of the rule requirements a feasible scenario passes.")
    def constraints(self) -> list[str]:
        return [str(k) for k in self.spec.get("constraints", [])]

    @strawberry.field(description="Latest revision of the project when the run froze it.")
    def revision(self) -> str | None:
        return (self.snapshot or {}).get("revision")

    # -- run -------------------------------------------------------------------

    @strawberry.field(description="Progress of the run (as `tradeStudyProgress` reports it).")
    def progress(self) -> TradeStudyProgress:
        return TradeStudyProgress.from_payload(self.progress_payload(), None)

    def progress_payload(self) -> dict[str, Any]:
        from app.trade_studies.service import progress_payload

        return progress_payload(
            {
                "id": self.uuid_,
                "status": self.status.value,
                "done": self.done,
                "total": self.total,
                "started_at": self.started_at,
                "completed_at": self.completed_at,
                "snapshot": self.snapshot,
                "error": self.error,
            },
            self.updated_at,
        )

    @strawberry.field(description="Statistics, Pareto size and infeasibility reasons (COMPLETED).")
    def summary(self) -> TradeStudySummary | None:
        if self.status != TradeStudyStatus.COMPLETED or not self.summary_:
            return None
        return TradeStudySummary.from_json(self.summary_)

    @strawberry.field(description="Sobol' indices of every output (COMPLETED SOBOL studies).")
    def sensitivity(self) -> TradeStudySensitivity | None:
        if self.status != TradeStudyStatus.COMPLETED or not self.summary_:
            return None
        data = self.summary_.get("sensitivity")
        return TradeStudySensitivity.from_json(data) if data else None

    # -- scenarios -------------------------------------------------------------

    def names(self) -> _Names:
        return study_names(self.snapshot, self.spec)

    @strawberry.field(
        description="Evaluated scenarios, keyset-paginated, filtered and sorted "
        "(default: by index). Page size: see `first`."
    )
    async def scenarios(
        self,
        info: GQLInfo,
        first: Annotated[
            int | None, strawberry.argument(description="Page size from the start (max 500).")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DOC)] = None,
        last: Annotated[
            int | None, strawberry.argument(description="Page size from the end (max 500).")
        ] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE_DOC)] = None,
        filter: Annotated[
            ScenarioFilter | None, strawberry.argument(description="Conditions.")
        ] = None,
        order_by: Annotated[
            ScenarioOrder | None, strawberry.argument(description="Sort order.")
        ] = None,
    ) -> Connection[Scenario]:
        return await scenario_connection(
            info, self, filter, order_by, args(info, first, after, last, before)
        )

    @strawberry.field(
        description="The Pareto front (feasible, non-dominated), sorted by the first objective."
    )
    async def pareto_front(
        self,
        info: GQLInfo,
        first: Annotated[
            int | None, strawberry.argument(description="Page size (max 500).")
        ] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER_DOC)] = None,
    ) -> Connection[Scenario]:
        objectives = self.spec.get("objectives") or []
        order = None
        if objectives:
            sense = objectives[0]["sense"]
            order = ScenarioOrder(
                symbol=objectives[0]["symbol"],
                direction=SortDirection.DESC if sense == "maximize" else SortDirection.ASC,
            )
        return await scenario_connection(
            info, self, ScenarioFilter(pareto=True), order, args(info, first, after, None, None)
        )

    @strawberry.field(description="A scenario by its index, or null.")
    async def scenario(
        self, info: GQLInfo, index: Annotated[int, strawberry.argument(description="Index.")]
    ) -> Scenario | None:
        row = (
            (
                await info.context.session.execute(
                    _scenario_columns()
                    .select_from(_joined())
                    .where(S.c.trade_study_id == self.uuid_, S.c.index == index)
                )
            )
            .mappings()
            .first()
        )
        return Scenario.from_row(row, self.names(), self.uuid_) if row is not None else None

    @strawberry.field(
        description=f"The scenarios as CSV text (at most {MAX_CSV_ROWS:,} rows; larger studies: "
        "`csvUrl`). Columns: index, feasible, on_pareto_front, infeasible_reason, then each "
        "input and output as `symbol [unit]`."
    )
    async def csv(self, info: GQLInfo) -> str | None:
        if self.done > MAX_CSV_ROWS:
            raise GraphQLError(
                f"{self.done:,} scenarios: more than {MAX_CSV_ROWS:,}; download `csvUrl`",
                extensions={"code": "TOO_LARGE"},
            )
        rows = (
            await info.context.session.execute(
                _scenario_columns()
                .select_from(_joined())
                .where(S.c.trade_study_id == self.uuid_)
                .order_by(S.c.index)
            )
        ).mappings()
        return scenarios_csv(self.names(), rows)

    @strawberry.field(
        description="Path of the CSV download of every scenario (GET with the same "
        "`Authorization: Bearer` header), relative to the API's base URL."
    )
    def csv_url(self) -> str:
        return f"/trade-studies/{self.uuid_}.csv"


def csv_header(names: _Names) -> list[str]:
    def label(symbol: str, unit: str) -> str:
        return f"{symbol} [{unit}]" if unit else symbol

    return [
        "index",
        "feasible",
        "on_pareto_front",
        "infeasible_reason",
        *(label(s, u) for s, u in names.inputs),
        *(label(s, u) for s, u in names.outputs),
    ]


def _csv_float(value: float) -> str:
    """Like PostgreSQL's float8 output for the non-finite values (NaN, Infinity)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def scenarios_csv(names: _Names, rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(names))
    for r in rows:
        writer.writerow(
            [
                r["index"],
                str(r["feasible"]).lower(),
                str(r["on_pareto_front"]).lower(),
                r["infeasible_reason"] or "",
                *(_csv_float(v) for v in r["inputs"]),
                *(_csv_float(v) for v in r["outputs"]),
            ]
        )
    return out.getvalue()


# --------------------------------------------------------------------------- scenario pages


def _position(names: _Names, symbol: str, what: str) -> tuple[Any, int]:
    """The array column and 1-based position of an output (preferred) or input symbol."""
    k = names.output_position(symbol)
    if k is not None:
        return R.c.outputs, k
    k = names.input_position(symbol)
    if k is not None:
        return S.c.inputs, k
    raise GraphQLError(
        f"{symbol!r} is neither an output nor a variable of this study ({what})",
        extensions={"code": "BAD_USER_INPUT"},
    )


def _filters(names: _Names, f: ScenarioFilter | None) -> list[ColumnElement[bool]]:
    if f is None:
        return []
    conds: list[ColumnElement[bool]] = []
    if f.feasible is not None:
        conds.append(R.c.feasible.is_(f.feasible))
    if f.pareto is not None:
        conds.append(R.c.on_pareto_front.is_(f.pareto))
    for group, ranges in (("outputs", f.outputs), ("inputs", f.inputs)):
        for rng in ranges or []:
            if group == "outputs":
                k = names.output_position(rng.symbol)
                column = R.c.outputs
            else:
                k = names.input_position(rng.symbol)
                column = S.c.inputs
            if k is None:
                raise GraphQLError(
                    f"{rng.symbol!r} is not one of the study's {group}",
                    extensions={"code": "BAD_USER_INPUT"},
                )
            if rng.min is not None:
                conds.append(column[k] >= rng.min)
            if rng.max is not None:
                conds.append(column[k] <= rng.max)
    return conds


def _encode(key: Any, index: int) -> str:
    raw = orjson.dumps([repr(float(key)) if isinstance(key, float) else key, index])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


INT4 = range(-(2**31), 2**31)
INT8 = range(-(2**63), 2**63)


def _decode(cursor: str, by_value: bool) -> tuple[Any, int]:
    try:
        key, index = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key, index = (float(key) if by_value else int(key)), int(index)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise PaginationError("invalid cursor") from exc
    if index not in INT4 or (not by_value and key not in INT4):
        raise PaginationError("invalid cursor")
    return key, index


async def scenario_connection(
    info: GQLInfo,
    study: TradeStudy,
    f: ScenarioFilter | None,
    order: ScenarioOrder | None,
    page: PageArgs,
) -> Connection[Scenario]:
    names = study.names()
    conds = [S.c.trade_study_id == study.uuid_, R.c.trade_study_id == study.uuid_]
    conds += _filters(names, f)
    by_value = order is not None and order.symbol is not None
    if by_value:
        assert order is not None and order.symbol is not None
        column, k = _position(names, order.symbol, "orderBy")
        key: Any = column[k]
    else:
        key = S.c.index
    descending = order is not None and order.direction == SortDirection.DESC
    reverse = page.backward
    desc = descending != reverse
    stmt = _scenario_columns().add_columns(key.label("_key")).select_from(_joined()).where(*conds)

    def bound(cursor: str, forward: bool) -> ColumnElement[bool]:
        value, index = _decode(cursor, by_value)
        lhs = tuple_(key, S.c.index) if by_value else S.c.index
        rhs = tuple_(value, index) if by_value else index
        later = forward != descending
        return lhs > rhs if later else lhs < rhs

    if page.after is not None:
        stmt = stmt.where(bound(page.after, True))
    if page.before is not None:
        stmt = stmt.where(bound(page.before, False))
    ordering = [key.desc(), S.c.index.desc()] if desc else [key.asc(), S.c.index.asc()]
    if not by_value:
        ordering = ordering[1:]
    rows = list(
        (await info.context.session.execute(stmt.order_by(*ordering).limit(page.limit + 1)))
        .mappings()
        .all()
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    if reverse:
        rows.reverse()
        has_next, has_previous = page.before is not None, more
    else:
        has_next, has_previous = more, page.after is not None

    async def count() -> int:
        n = await info.context.session.scalar(
            select(func.count()).select_from(_joined()).where(*conds)
        )
        return int(n or 0)

    return to_connection(
        Page(rows, has_next=has_next, has_previous=has_previous),
        lambda r: Scenario.from_row(r, names, study.uuid_),
        lambda r: _encode(r["_key"], r["index"]),
        count,
    )


async def trade_study_connection(
    info: GQLInfo, project_id: uuid.UUID, page_args: PageArgs
) -> Connection[TradeStudy]:
    stmt: Select[Any] = select(TS).where(TS.c.project_id == project_id, TS.c.deleted_at.is_(None))
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=TS.c.created_at,
        id_col=TS.c.id,
        args=page_args,
        descending=True,
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, TradeStudy.from_row, lambda r: encode_cursor(r["created_at"], r["id"]), count
    )


async def trade_study_by_id(info: GQLInfo, gid: relay.GlobalID) -> TradeStudy | None:
    study_id = decode_id(gid, "TradeStudy")
    if study_id is None:
        return None
    row = await info.context.loaders.row(TS, study_id)
    return TradeStudy.from_row(row) if row is not None else None


@strawberry.type
class TradeStudyQuery:
    @strawberry.field(description="A trade study by global id, or null if missing or hidden.")
    async def trade_study(
        self,
        info: GQLInfo,
        id: Annotated[relay.GlobalID, strawberry.argument(description="Global id.")],
    ) -> TradeStudy | None:
        return await trade_study_by_id(info, id)


# --------------------------------------------------------------------------- progress stream

StreamFactory = Callable[[GQLInfo, uuid.UUID, int | None], AsyncGenerator[dict[str, Any], None]]
PROGRESS_KINDS = ("trade_study.progress", "trade_study.status")


async def progress_stream(
    info: GQLInfo,
    gid: relay.GlobalID,
    stream: StreamFactory,
    current_sequence: Callable[[uuid.UUID], Awaitable[int]],
) -> AsyncGenerator[TradeStudyProgress, None]:
    """The study's state now, then every progress/status event, until a terminal status."""
    study_id = decode_id(gid, "TradeStudy")
    ctx = info.context
    row = None
    project_id: uuid.UUID | None = None
    if study_id is not None:
        from app.auth.access import visible_projects

        async with ctx.sessionmaker() as session:
            visible = await visible_projects(session, principal=ctx.principal)
            found = (
                (await session.execute(select(TS).where(TS.c.id == study_id)))
                .mappings()
                .one_or_none()
            )
        if found is not None and found["deleted_at"] is None and found["project_id"] in visible:
            row, project_id = found, found["project_id"]
    if row is None or project_id is None or study_id is None:
        raise GraphQLError("trade study not found", extensions={"code": "NOT_FOUND"})
    if ctx.hub is None:
        raise GraphQLError("subscriptions are not available", extensions={"code": "UNAVAILABLE"})
    # The sequence first, then the state: events after it may repeat what the state shows.
    sequence = await current_sequence(project_id)
    async with ctx.sessionmaker() as session:
        row = (await session.execute(select(TS).where(TS.c.id == study_id))).mappings().one()
    first = TradeStudy.from_row(row).progress()
    yield first
    if first.status.name in TERMINAL:
        return
    last_done, last_status = first.done, first.status
    events = stream(info, project_id, sequence)
    try:
        async for event in events:
            if event["kind"] not in PROGRESS_KINDS:
                continue
            payload = event["payload"]
            if str(payload.get("id")) != str(study_id):
                continue
            update = TradeStudyProgress.from_payload(payload, event["sequence"])
            if update.status == last_status and update.done <= last_done:
                continue  # already reflected in what was sent
            last_done, last_status = update.done, update.status
            yield update
            if update.status.name in TERMINAL:
                return
    finally:
        await events.aclose()  # unsubscribe now, not when the generator is collected
