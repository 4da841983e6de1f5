"""Component types, components (a tree) and the connectors between their ports."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, SoftDelete, Timestamps, UUIDPk, one_of

CONNECTOR_KINDS = ("power", "data", "fluid", "mechanical", "thermal", "signal", "rf", "other")
PORT_DIRECTIONS = ("in", "out", "inout")


class ComponentType(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "component_types"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # JSON Schema that every component of this type's `properties` must satisfy.
    property_schema: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # [{"name": "pwr_out", "kind": "power", "direction": "out"}, ...]
    ports: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )

    __table_args__ = (
        CheckConstraint("code ~ '^[A-Z][A-Z0-9_]*$'", name="code_format"),
        CheckConstraint("jsonb_typeof(property_schema) = 'object'", name="schema_is_object"),
        CheckConstraint("jsonb_typeof(ports) = 'array'", name="ports_is_array"),
        Index(
            "uq_component_types_project_code_live",
            "project_id",
            "code",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )


class Component(UUIDPk, Timestamps, SoftDelete, Base):
    __tablename__ = "components"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # RESTRICT: a subtree is moved or deleted deliberately, never by accident.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("components.id", ondelete="RESTRICT"), index=True
    )
    type_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("component_types.id", ondelete="RESTRICT"), index=True
    )
    tag: Mapped[str] = mapped_column(String(100), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # Diagram placement: {"x": .., "y": .., "rotation": ..}.
    graphics: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))

    __table_args__ = (
        CheckConstraint("tag ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'", name="tag_format"),
        CheckConstraint("length(name) > 0", name="name_not_empty"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint("jsonb_typeof(properties) = 'object'", name="properties_is_object"),
        CheckConstraint("jsonb_typeof(graphics) = 'object'", name="graphics_is_object"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "uq_components_project_tag_live",
            "project_id",
            "tag",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # Keyset pagination of a project's components by tag.
        Index("ix_components_project_tag_id", "project_id", "tag", "id"),
    )


class Connector(UUIDPk, Timestamps, SoftDelete, Base):
    """source component + port → target component + port."""

    __tablename__ = "connectors"

    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    source_component_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("components.id", ondelete="CASCADE"), index=True
    )
    source_port: Mapped[str] = mapped_column(String(100), nullable=False)
    target_component_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("components.id", ondelete="CASCADE"), index=True
    )
    target_port: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))

    __table_args__ = (
        one_of("kind", CONNECTOR_KINDS, "kind"),
        CheckConstraint(
            "source_component_id <> target_component_id OR source_port <> target_port",
            name="not_self_loop",
        ),
        CheckConstraint("length(source_port) > 0 AND length(target_port) > 0", name="ports_named"),
        CheckConstraint("jsonb_typeof(properties) = 'object'", name="properties_is_object"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
