"""Per-request DataLoaders: every relation is fetched in one statement per level.

Built lazily on first use and cached on the request's context, so two resolvers
asking for the same relation in one operation share a batch. Every row is
filtered by the caller's visible projects: a hidden object loads as ``None``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import RowMapping
from strawberry.dataloader import DataLoader

if TYPE_CHECKING:
    from app.graphql.context import Context

BatchFn = Callable[[list[Any]], Awaitable[Sequence[Any]]]


def any_of(column: Any, values: Iterable[Any]) -> Any:
    """``column = ANY($1::type[])``: one array parameter instead of an IN list.

    An ``IN`` list renders one placeholder per value, so its SQL text changes with
    the batch size: SQLAlchemy re-renders it on every execution and every distinct
    size is a new prepared statement for asyncpg and PostgreSQL (parsed and planned
    again, and evicting others from the per-connection cache). The array form is
    one statement text for every batch.
    """
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


async def rows_of(session: Any, statement: Any) -> Sequence[Any]:
    """A read statement's rows (``row["column"]``), by the fastest path the session has."""
    fetch_rows = getattr(session, "fetch_rows", None)
    if fetch_rows is not None:
        return await fetch_rows(statement)  # type: ignore[no-any-return]
    return (await session.execute(statement)).mappings().all()  # type: ignore[no-any-return]


class Loaders:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}
        self._memo: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A value built once per operation (e.g. a statement shared by 200 sibling fields)."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = build()
            return value

    def get(self, key: Hashable, batch: BatchFn) -> DataLoader[Any, Any]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(load_fn=batch)
            self._loaders[key] = loader
        return loader

    async def row(self, table: Any, id_: uuid.UUID | None) -> RowMapping | None:
        """A live, visible row of ``table`` by id (None if missing, deleted or hidden)."""
        if id_ is None:
            return None
        return await self.get(("row", table.name), self._row_batch(table)).load(id_)  # type: ignore[no-any-return]

    async def rows(self, table: Any, ids: Sequence[uuid.UUID]) -> list[RowMapping | None]:
        loader = self.get(("row", table.name), self._row_batch(table))
        return list(await loader.load_many(list(ids)))

    def _row_batch(self, table: Any) -> BatchFn:
        ctx = self._context

        async def batch(ids: list[uuid.UUID]) -> list[RowMapping | None]:
            visible = await ctx.visible_projects()
            stmt = select(table).where(any_of(table.c.id, ids))
            if "deleted_at" in table.c:
                stmt = stmt.where(table.c.deleted_at.is_(None))
            found = {}
            for r in await rows_of(ctx.session, stmt):
                project_id = r["id"] if table.name == "projects" else r.get("project_id")
                if project_id in visible:
                    found[r["id"]] = r
            return [found.get(i) for i in ids]

        return batch

    async def children(
        self,
        key: Hashable,
        parent_id: Any,
        query: Callable[[list[Any]], Awaitable[Sequence[RowMapping]]],
        parent_key: str,
    ) -> list[RowMapping]:
        """All rows whose ``parent_key`` is ``parent_id``, batched across parents."""

        async def batch(parents: list[Any]) -> list[list[RowMapping]]:
            grouped: dict[Any, list[RowMapping]] = defaultdict(list)
            for r in await query(parents):
                grouped[r[parent_key]].append(r)
            return [grouped.get(p, []) for p in parents]

        return await self.get(key, batch).load(parent_id)  # type: ignore[no-any-return]


async def nested_page(
    context: Context,
    key: Hashable,
    parent: Any,
    *,
    stmt: Any,
    partition: Any,
    key_col: Any,
    id_col: Any,
    page_args: Any,
    descending: bool = False,
) -> Any:
    """One page of children of ``parent``; pages of all parents in one statement.

    ``key`` must identify the statement and the page arguments: parents sharing a key
    share the batch.
    """
    from app.graphql.pagination import fetch_grouped_pages

    async def batch(parents: list[Any]) -> list[Any]:
        pages = await fetch_grouped_pages(
            context.session,
            stmt,
            partition=partition,
            parents=parents,
            key_col=key_col,
            id_col=id_col,
            args=page_args,
            descending=descending,
        )
        return [pages[p] for p in parents]

    return await context.loaders.get(("page", key, page_args), batch).load(parent)


async def nested_count(
    context: Context, key: Hashable, parent: Any, *, stmt: Any, partition: Any
) -> int:
    """Number of children of ``parent``; counts of all parents in one statement."""
    from sqlalchemy import func

    async def batch(parents: list[Any]) -> list[int]:
        sub = stmt.where(any_of(partition, parents)).subquery()
        rows = await context.session.execute(
            select(sub.c[partition.name], func.count()).group_by(sub.c[partition.name])
        )
        counts = {p: int(n) for p, n in rows}
        return [counts.get(p, 0) for p in parents]

    return await context.loaders.get(("count", key), batch).load(parent)  # type: ignore[no-any-return]
