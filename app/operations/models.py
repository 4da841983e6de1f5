"""Persisted (allow-listed) GraphQL operations, registered ahead of time by clients' builds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class PersistedOperation(Base):
    __tablename__ = "persisted_operations"

    # sha256 of the document text, lower-case hex (the Apollo APQ / documentId form).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    client: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("id ~ '^[0-9a-f]{64}$'", name="id_is_sha256"),
        CheckConstraint("length(document) BETWEEN 1 AND 100000", name="document_length"),
    )
