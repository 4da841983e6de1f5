"""GraphQL: trade studies (definition and progress; results arrive with the sweep work)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from strawberry import relay
from strawberry.scalars import JSON

from app.graphql.common import GQLInfo, parse_uuid
from app.graphql.pagination import Connection, PageArgs, encode_cursor, fetch_page, to_connection
from app.trade_studies.models import TradeStudy as TradeStudyModel

TS = TradeStudyModel.__table__


@strawberry.enum(description="How a trade study samples its design space.")
class TradeStudyMethod(Enum):
    GRID = strawberry.enum_value("GRID", description="Full factorial over the levels.")
    LATIN_HYPERCUBE = strawberry.enum_value("LATIN_HYPERCUBE", description="Latin hypercube.")
    SOBOL = strawberry.enum_value("SOBOL", description="Scrambled Sobol sequence.")
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


@strawberry.type(description="A design-of-experiments sweep over independent parameters.")
class TradeStudy(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Free text.")
    method: TradeStudyMethod = strawberry.field(description="Sampling method.")
    status: TradeStudyStatus = strawberry.field(description="Run status.")
    definition: JSON = strawberry.field(
        description="Variables, outputs, objectives and constraints."
    )
    sample_count: int | None = strawberry.field(description="Requested samples (not GRID/LIST).")
    seed: int | None = strawberry.field(description="Random seed: same seed → same scenarios.")
    total: int = strawberry.field(description="Scenarios to evaluate.")
    done: int = strawberry.field(description="Scenarios evaluated and stored.")
    error: str | None = strawberry.field(description="Why the study failed, if it did.")
    started_at: datetime | None = strawberry.field(description="Start of the run (UTC).")
    completed_at: datetime | None = strawberry.field(description="End of the run (UTC).")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")

    @classmethod
    def from_row(cls, r: RowMapping) -> TradeStudy:
        return cls(
            id=str(r["id"]),
            name=r["name"],
            description=r["description"],
            method=TradeStudyMethod(r["method"]),
            status=TradeStudyStatus(r["status"]),
            definition=r["definition"],
            sample_count=r["sample_count"],
            seed=r["seed"],
            total=r["total"],
            done=r["done"],
            error=r["error"],
            started_at=r["started_at"],
            completed_at=r["completed_at"],
            created_at=r["created_at"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[TradeStudy | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(TS, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]


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

    async def count() -> int:
        n = await info.context.session.scalar(select(func.count()).select_from(stmt.subquery()))
        return int(n or 0)

    return to_connection(
        page, TradeStudy.from_row, lambda r: encode_cursor(r["created_at"], r["id"]), count
    )
