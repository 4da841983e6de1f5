"""Threaded comments on any object of the thread."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy import Text as TextType
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, SoftDelete, Timestamps, UUIDPk, one_of

TARGET_TYPES = (
    "project",
    "component",
    "connector",
    "parameter",
    "requirement",
    "trade_study",
    "revision",
)


class Comment(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "comments"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("comments.id", ondelete="CASCADE"), index=True
    )
    # Polymorphic target: the object type and id (validated by the service).
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    body: Mapped[str] = mapped_column(TextType, nullable=False)

    __table_args__ = (
        one_of("target_type", TARGET_TYPES, "target_type"),
        CheckConstraint("length(body) BETWEEN 1 AND 20000", name="body_length"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        Index("ix_comments_target", "target_type", "target_id", "created_at"),
    )
