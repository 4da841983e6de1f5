"""Requirements (a tree, optionally with a rule on one parameter) and trace links."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy import (
    text as sql,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, SoftDelete, Timestamps, UUIDPk, one_of

PRIORITIES = ("low", "medium", "high", "critical")
STATUSES = ("draft", "proposed", "approved", "rejected", "obsolete")
VERIFICATION_METHODS = ("analysis", "inspection", "test", "review", "rule")
RULE_OPERATORS = ("<=", "<", ">=", ">", "==", "between")
COMPLIANCE = ("PASS", "FAIL", "UNKNOWN")
LINK_KINDS = ("satisfied_by", "verified_by", "derived_from", "refines", "allocated_to")


class Requirement(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "requirements"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("requirements.id", ondelete="RESTRICT"), index=True
    )
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    priority: Mapped[str] = mapped_column(String(16), nullable=False, server_default="medium")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="draft")
    verification_method: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="analysis"
    )
    # The rule (only for verification_method = 'rule'): parameter OP threshold [unit].
    rule_parameter_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("parameters.id", ondelete="RESTRICT"), index=True
    )
    rule_operator: Mapped[str | None] = mapped_column(String(8))
    rule_threshold: Mapped[float | None] = mapped_column(Float)
    rule_threshold_high: Mapped[float | None] = mapped_column(Float)
    rule_unit: Mapped[str | None] = mapped_column(String(64))
    compliance: Mapped[str] = mapped_column(String(8), nullable=False, server_default="UNKNOWN")
    # Distance to the threshold in rule_unit; positive = compliant.
    margin: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql("1"))

    __table_args__ = (
        one_of("priority", PRIORITIES, "priority"),
        one_of("status", STATUSES, "status"),
        one_of("verification_method", VERIFICATION_METHODS, "verification_method"),
        one_of("compliance", COMPLIANCE, "compliance"),
        CheckConstraint(
            "rule_operator IS NULL OR rule_operator IN ('<=', '<', '>=', '>', '==', 'between')",
            name="rule_operator",
        ),
        CheckConstraint("key ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'", name="key_format"),
        CheckConstraint("length(title) > 0", name="title_not_empty"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint("version >= 1", name="version_positive"),
        # A rule is all-or-nothing, and only rule requirements have one.
        CheckConstraint(
            "(rule_parameter_id IS NULL AND rule_operator IS NULL AND rule_threshold IS NULL"
            " AND rule_threshold_high IS NULL)"
            " OR (verification_method = 'rule' AND rule_parameter_id IS NOT NULL"
            " AND rule_operator IS NOT NULL AND rule_threshold IS NOT NULL)",
            name="rule_complete",
        ),
        CheckConstraint(
            "(rule_operator = 'between') = (rule_threshold_high IS NOT NULL)"
            " OR rule_operator IS NULL",
            name="between_has_high",
        ),
        CheckConstraint(
            "rule_threshold_high IS NULL OR rule_threshold_high >= rule_threshold",
            name="between_ordered",
        ),
        Index(
            "uq_requirements_project_key_live",
            "project_id",
            "key",
            unique=True,
            postgresql_where=sql("deleted_at IS NULL"),
        ),
        Index("ix_requirements_project_key_id", "project_id", "key", "id"),
    )


class TraceLink(UUIDPk, Timestamps, Base):
    """requirement --kind--> exactly one of component / parameter / requirement."""

    __tablename__ = "trace_links"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    requirement_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("requirements.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    target_component_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("components.id", ondelete="CASCADE"), index=True
    )
    target_parameter_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("parameters.id", ondelete="CASCADE"), index=True
    )
    target_requirement_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("requirements.id", ondelete="CASCADE"), index=True
    )
    # Set when either end changes; stays until someone reviews and clears it.
    suspect: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sql("false"))
    suspect_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (
        one_of("kind", LINK_KINDS, "kind"),
        CheckConstraint(
            "num_nonnulls(target_component_id, target_parameter_id, target_requirement_id) = 1",
            name="one_target",
        ),
        CheckConstraint(
            "target_requirement_id IS NULL OR target_requirement_id <> requirement_id",
            name="not_self_link",
        ),
        Index(
            "uq_trace_links_unique_target",
            "requirement_id",
            "kind",
            sql("coalesce(target_component_id, target_parameter_id, target_requirement_id)"),
            unique=True,
        ),
    )
