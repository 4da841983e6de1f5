"""Relay cursor connections over keyset pagination (never OFFSET).

A cursor encodes the sort key and the id of an edge, so a page is
``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n+1``: stable under inserts
and as fast on page 1,000 as on page 1. Nested connections (a list of parents each
with their own page) are fetched in one statement per level with
``row_number() OVER (PARTITION BY parent ...)``.
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import orjson
import strawberry
from graphql import GraphQLError
from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement as SAColumn

from app.graphql.loaders import any_of, rows_of

T = TypeVar("T")


class PaginationError(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_PAGINATION"})


@strawberry.enum(description="Sort direction.")
class SortDirection(Enum):
    ASC = strawberry.enum_value("ASC", description="Ascending (A→Z, small→large, old→new).")
    DESC = strawberry.enum_value("DESC", description="Descending.")


@strawberry.type(description="Relay page metadata.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More edges follow this page.")
    has_previous_page: bool = strawberry.field(description="Edges precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge.")


def _edge_cursor(root: Any) -> str:
    # Encoded only when asked for: a 4,000-node page rarely wants its cursors.
    return root._cursor_of(root._row)  # type: ignore[no-any-return]


@strawberry.type(description="An edge: a node and the cursor to resume after it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        resolver=_edge_cursor, description="Opaque cursor for `after`/`before`."
    )
    node: T = strawberry.field(description="The item.")
    _row: strawberry.Private[Any] = None
    _cursor_of: strawberry.Private[Callable[[Any], str] | None] = None


def _connection_edges(root: Any) -> list[Any]:
    # Built on first request only: `nodes { … }` reads never allocate edges.
    if root._edges is None:
        cursor_of = root._cursor_of
        root._edges = [
            Edge(node=node, _row=row, _cursor_of=cursor_of)
            for node, row in zip(root._nodes, root._rows, strict=True)
        ]
    return root._edges  # type: ignore[no-any-return]


@strawberry.type(description="A page of items (Relay cursor connection, keyset-paginated).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(
        resolver=_connection_edges, description="The page's edges."
    )
    page_info: PageInfo = strawberry.field(description="Paging metadata.")
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None
    _nodes: strawberry.Private[list[T]] = dataclasses.field(default_factory=list)
    _rows: strawberry.Private[Sequence[Any]] = ()
    _cursor_of: strawberry.Private[Callable[[Any], str] | None] = None
    _edges: strawberry.Private[list[Edge[T]] | None] = None

    @strawberry.field(description="The page's nodes (same order as `edges`).")
    def nodes(self) -> list[T]:
        return self._nodes

    @strawberry.field(description="Number of items matching the filter, across all pages.")
    async def total_count(self) -> int:
        return await self._count() if self._count is not None else len(self._nodes)


@dataclass(frozen=True, slots=True)
class PageArgs:
    first: int | None
    after: str | None
    last: int | None
    before: str | None

    @property
    def backward(self) -> bool:
        return self.last is not None or (self.before is not None and self.first is None)

    @property
    def limit(self) -> int:
        n = self.last if self.backward else self.first
        assert n is not None
        return n


def page_args(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    *,
    default: int,
    maximum: int,
) -> PageArgs:
    if first is not None and last is not None:
        raise PaginationError("pass `first` or `last`, not both")
    for name, n in (("first", first), ("last", last)):
        if n is not None and not 0 <= n <= maximum:
            raise PaginationError(f"`{name}` must be between 0 and {maximum}")
    if first is None and last is None:
        if before is not None:
            last = default
        else:
            first = default
    return PageArgs(first, after, last, before)


def encode_cursor(key: Any, id_: uuid.UUID | int) -> str:
    if isinstance(key, datetime):
        key = {"t": key.isoformat()}
    elif isinstance(key, Enum):
        key = key.value
    raw = orjson.dumps([key, str(id_)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, id_ = orjson.loads(raw)
        if isinstance(key, dict):
            key = datetime.fromisoformat(key["t"])
        if not isinstance(id_, str):
            raise ValueError
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
        raise PaginationError("invalid cursor") from exc
    return key, id_


def _id_value(id_col: SAColumn[Any], raw: str) -> Any:
    if id_col.type.python_type is int:
        try:
            return int(raw)
        except ValueError as exc:
            raise PaginationError("invalid cursor") from exc
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise PaginationError("invalid cursor") from exc


def _after(key_col: SAColumn[Any], id_col: SAColumn[Any], cursor: str, desc: bool) -> Any:
    # Sort keys are NOT NULL columns, so a row-value comparison is exact.
    key, raw_id = decode_cursor(cursor)
    bound = tuple_(key, _id_value(id_col, raw_id))
    return tuple_(key_col, id_col) < bound if desc else tuple_(key_col, id_col) > bound


@dataclass
class Page:
    rows: list[RowMapping]
    has_next: bool
    has_previous: bool


def _order(key_col: SAColumn[Any], id_col: SAColumn[Any], desc: bool) -> list[Any]:
    if desc:
        return [key_col.desc(), id_col.desc()]
    return [key_col.asc(), id_col.asc()]


def _window_query(
    stmt: Select[Any],
    *,
    key_col: SAColumn[Any],
    id_col: SAColumn[Any],
    partition: SAColumn[Any] | None,
    args: PageArgs,
    descending: bool,
) -> tuple[Select[Any], bool]:
    # Backward pages run in the reverse order, then get flipped back.
    reverse = args.backward
    desc = descending != reverse
    conds: list[ColumnElement[bool]] = []
    if args.after is not None:
        conds.append(_after(key_col, id_col, args.after, descending))
    if args.before is not None:
        conds.append(_after(key_col, id_col, args.before, not descending))
    if conds:
        stmt = stmt.where(*conds)
    if partition is None:
        return stmt.order_by(*_order(key_col, id_col, desc)).limit(args.limit + 1), reverse
    rn = func.row_number().over(partition_by=partition, order_by=_order(key_col, id_col, desc))
    inner = stmt.add_columns(rn.label("_rn")).subquery()
    outer = (
        select(inner)
        .where(inner.c._rn <= args.limit + 1)
        .order_by(inner.c[partition.name], inner.c._rn)
    )
    return outer, reverse


def _page(rows: Sequence[RowMapping], args: PageArgs, reverse: bool) -> Page:
    more = len(rows) > args.limit
    rows = list(rows[: args.limit])
    if reverse:
        rows.reverse()
        return Page(rows, has_next=args.before is not None, has_previous=more)
    return Page(rows, has_next=more, has_previous=args.after is not None)


async def fetch_page(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    key_col: SAColumn[Any],
    id_col: SAColumn[Any],
    args: PageArgs,
    descending: bool = False,
) -> Page:
    query, reverse = _window_query(
        stmt, key_col=key_col, id_col=id_col, partition=None, args=args, descending=descending
    )
    rows = await rows_of(session, query)
    return _page(rows, args, reverse)


async def fetch_grouped_pages(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    partition: SAColumn[Any],
    parents: Sequence[Any],
    key_col: SAColumn[Any],
    id_col: SAColumn[Any],
    args: PageArgs,
    descending: bool = False,
) -> dict[Any, Page]:
    """One statement for a page per parent (nested connections without N+1)."""
    stmt = stmt.where(any_of(partition, parents))
    query, reverse = _window_query(
        stmt, key_col=key_col, id_col=id_col, partition=partition, args=args, descending=descending
    )
    grouped: dict[Any, list[RowMapping]] = {p: [] for p in parents}
    for row in await rows_of(session, query):
        grouped.setdefault(row[partition.name], []).append(row)
    return {p: _page(rows, args, reverse) for p, rows in grouped.items()}


def to_connection(
    page: Page,
    convert: Callable[[RowMapping], T],
    cursor_of: Callable[[RowMapping], str],
    count: Callable[[], Awaitable[int]] | None,
) -> Connection[T]:
    rows = page.rows
    return Connection(
        _nodes=[convert(r) for r in rows],
        _rows=rows,
        _cursor_of=cursor_of,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=cursor_of(rows[0]) if rows else None,
            end_cursor=cursor_of(rows[-1]) if rows else None,
        ),
        _count=count,
    )


def counter(session: AsyncSession, stmt: Select[Any]) -> Callable[[], Awaitable[int]]:
    """A connection's `totalCount`: counts the filtered statement, only if asked for."""

    async def count() -> int:
        n = await session.scalar(select(func.count()).select_from(stmt.subquery()))
        return int(n or 0)

    return count
