"""Parameters, their formula dependency edges and their full history."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, SoftDelete, Timestamps, UUIDPk, one_of

VALUE_KINDS = ("number", "boolean", "text")
VERSION_CAUSES = ("create", "edit", "recompute", "scenario_applied", "import", "revert")


class Parameter(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "parameters"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # NULL: a project-level parameter (not owned by a component).
    component_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("components.id", ondelete="CASCADE"), index=True
    )
    symbol: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    value_kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="number")
    value_number: Mapped[float | None] = mapped_column(Float)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    value_text: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(64), nullable=False, server_default="")
    uncertainty: Mapped[float | None] = mapped_column(Float)
    formula: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))

    __table_args__ = (
        one_of("value_kind", VALUE_KINDS, "value_kind"),
        CheckConstraint("symbol ~ '^[A-Za-z_][A-Za-z0-9_]*$'", name="symbol_identifier"),
        CheckConstraint("length(name) > 0", name="name_not_empty"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("uncertainty IS NULL OR uncertainty >= 0", name="uncertainty_nonnegative"),
        CheckConstraint("formula IS NULL OR value_kind = 'number'", name="formula_is_numeric"),
        CheckConstraint(
            "formula IS NULL OR length(formula) BETWEEN 1 AND 2000", name="formula_length"
        ),
        # Only the column of the parameter's kind may hold a value.
        CheckConstraint(
            "(value_kind = 'number' AND value_bool IS NULL AND value_text IS NULL)"
            " OR (value_kind = 'boolean' AND value_number IS NULL AND value_text IS NULL)"
            " OR (value_kind = 'text' AND value_number IS NULL AND value_bool IS NULL)",
            name="value_matches_kind",
        ),
        CheckConstraint(
            "value_number IS NULL OR value_number NOT IN ('NaN'::float8, 'Infinity'::float8,"
            " '-Infinity'::float8)",
            name="value_finite",
        ),
        Index(
            "uq_parameters_project_symbol_live",
            "project_id",
            "symbol",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_parameters_project_symbol_id", "project_id", "symbol", "id"),
    )


class ParameterDependency(Base):
    """Edge of the formula graph: ``parameter_id``'s formula reads ``depends_on_id``."""

    __tablename__ = "parameter_dependencies"

    parameter_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("parameters.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("parameters.id", ondelete="RESTRICT"),
        primary_key=True,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (CheckConstraint("parameter_id <> depends_on_id", name="no_self_edge"),)


class ParameterVersion(UUIDPk, Base):
    """One row per version of a parameter; never updated."""

    __tablename__ = "parameter_versions"

    parameter_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("parameters.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    value_number: Mapped[float | None] = mapped_column(Float)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    value_text: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(64), nullable=False)
    formula: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Sequence of the project change event that produced this version.
    event_sequence: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        # Also the index for "history of a parameter, newest first".
        UniqueConstraint("parameter_id", "version"),
        one_of("cause", VERSION_CAUSES, "cause"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
