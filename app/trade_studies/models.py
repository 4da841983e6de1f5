"""Trade studies, their scenarios and the scenario results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, SoftDelete, Timestamps, UUIDPk, one_of

METHODS = ("GRID", "LATIN_HYPERCUBE", "SOBOL", "RANDOM", "LIST")
STUDY_STATUSES = ("DRAFT", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")


class TradeStudy(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "trade_studies"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="DRAFT")
    # Variables, outputs, objectives and constraints; the shape evolves with the engine.
    definition: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    sample_count: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    # Frozen parameter values and the project sequence the run was computed against.
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    snapshot_sequence: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    done: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (
        one_of("method", METHODS, "method"),
        one_of("status", STUDY_STATUSES, "status"),
        CheckConstraint("length(name) > 0", name="name_not_empty"),
        CheckConstraint("sample_count IS NULL OR sample_count > 0", name="sample_count_positive"),
        CheckConstraint("total >= 0 AND done >= 0 AND done <= total", name="progress_range"),
    )


class Scenario(Base):
    __tablename__ = "scenarios"

    # Workers take ids in blocks of 2^17 from the scenario_id_blocks sequence (one
    # nextval per chunk, ids from 2^40 on); the column's own sequence stays for others.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    trade_study_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("trade_studies.id", ondelete="CASCADE"), nullable=False
    )
    # Position in the study: the rank of input_hash (LIST studies: the row number).
    # Numbering by hash makes both unique indexes below append-only, which is what
    # keeps bulk inserts of a million scenarios fast.
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    # Hash of the canonical inputs (128 bits, hex): a scenario is evaluated once per study.
    input_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # Values of the study's variables, in definition order, each in its parameter's
    # unit as frozen in the study's snapshot.
    inputs: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )

    __table_args__ = (
        UniqueConstraint("trade_study_id", "input_hash"),
        UniqueConstraint("trade_study_id", "index"),
        CheckConstraint("index >= 0", name="index_nonnegative"),
    )


class ScenarioResult(Base):
    """The evaluated outputs of one scenario (1:1, written in the scenario's transaction).

    Keyed by ``(trade_study_id, scenario_id)``: results are only ever read per study,
    and that key doubles as the index of the study foreign key. ``scenario_id``
    deliberately has no foreign key: the per-row referential check locks the
    just-inserted scenario row (one WAL record each) and made bulk ingest three
    times slower. Both rows are written by the same transaction and both cascade
    from the trade study.
    """

    __tablename__ = "scenario_results"

    trade_study_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("trade_studies.id", ondelete="CASCADE"), primary_key=True
    )
    scenario_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Values of the study's outputs, in definition order, each in its parameter's unit
    # (nan/inf where the model could not be evaluated).
    outputs: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION), nullable=False)
    feasible: Mapped[bool] = mapped_column(Boolean, nullable=False)
    on_pareto_front: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    infeasible_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("now()")
    )

    __table_args__ = (
        CheckConstraint("feasible OR NOT on_pareto_front", name="pareto_is_feasible"),
        Index(
            "ix_scenario_results_pareto",
            "trade_study_id",
            postgresql_where=text("on_pareto_front"),
        ),
    )
