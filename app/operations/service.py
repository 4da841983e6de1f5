"""Register and look up persisted operations (allow-listed documents).

With ``THREADLINE_PERSISTED_ONLY=true`` the API executes only registered documents:
by hash (``extensions.persistedQuery.sha256Hash`` or ``documentId``) or by full
text whose hash is registered. Documents are validated against the schema when
registered, so a typo fails at build time, not in production.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from graphql import GraphQLSchema, OperationDefinitionNode, parse, validate
from graphql.error import GraphQLError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.operations.models import PersistedOperation


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class InvalidDocument(ValueError):
    pass


@dataclass(frozen=True)
class Registered:
    id: str
    name: str
    created: bool


def check_document(schema: GraphQLSchema, document: str) -> list[str]:
    """Operation names in the document; InvalidDocument if it does not validate."""
    try:
        ast = parse(document)
    except GraphQLError as exc:
        raise InvalidDocument(exc.message) from exc
    errors = validate(schema, ast)
    if errors:
        raise InvalidDocument("; ".join(e.message for e in errors))
    return [
        d.name.value
        for d in ast.definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    ]


async def register(
    session: AsyncSession, *, schema: GraphQLSchema, documents: Iterable[str], client: str = ""
) -> list[Registered]:
    """Validate and store documents (idempotent by hash). Flushes, never commits."""
    out = []
    for document in documents:
        names = check_document(schema, document)
        digest = document_hash(document)
        result = await session.execute(
            insert(PersistedOperation)
            .values(id=digest, document=document, name=",".join(names)[:200], client=client)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PersistedOperation.id)
        )
        out.append(Registered(digest, ",".join(names), result.first() is not None))
    await session.flush()
    return out


class OperationStore:
    """Per-process read-through cache of registered documents (they never change)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], maxsize: int = 2048):
        self._sessionmaker = sessionmaker
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._maxsize = maxsize

    async def get(self, digest: str) -> str | None:
        digest = digest.lower()
        hit = self._cache.get(digest)
        if hit is not None:
            self._cache.move_to_end(digest)
            return hit
        if len(digest) != 64:
            return None
        async with self._sessionmaker() as session:
            document = await session.scalar(
                select(PersistedOperation.document).where(PersistedOperation.id == digest)
            )
        if document is not None:
            self._cache[digest] = document
            if len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return document
