"""``GET /trade-studies/{id}.csv``: every scenario of a study as CSV, streamed.

Authorised like ``/graphql`` (``Authorization: Bearer <token>``; a study the caller
may not see is a 404, like a missing one). PostgreSQL renders the rows
(``COPY (SELECT …) TO STDOUT WITH CSV``), so a million scenarios stream at the
speed of the database, in index order. Columns as in ``TradeStudy.csv``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app.auth import service as auth_service
from app.auth.access import visible_projects
from app.auth.errors import InvalidToken
from app.graphql.common import parse_uuid
from app.trade_studies.schema import TS, csv_header, study_names

PATH = "/trade-studies/{study_id}.csv"


def _error(status: int, code: str, message: str) -> Response:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    headers = {"WWW-Authenticate": 'Bearer realm="threadline"'} if status == 401 else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _query(inputs: int, outputs: int) -> str:
    columns = [
        "s.index",
        "CASE WHEN r.feasible THEN 'true' ELSE 'false' END",
        "CASE WHEN r.on_pareto_front THEN 'true' ELSE 'false' END",
        "r.infeasible_reason",
        *(f"s.inputs[{k}]" for k in range(1, inputs + 1)),
        *(f"r.outputs[{k}]" for k in range(1, outputs + 1)),
    ]
    return (
        f"SELECT {', '.join(columns)} FROM scenarios s JOIN scenario_results r"
        " ON r.trade_study_id = s.trade_study_id AND r.scenario_id = s.id"
        " WHERE s.trade_study_id = $1 ORDER BY s.index"
    )


async def trade_study_csv(request: Request) -> Response:
    state = request.app.state
    try:
        token = auth_service.parse_bearer(request.headers.get("authorization"))
        if token is None:
            return _error(401, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        async with state.sessionmaker() as session:
            principal = await auth_service.resolve_token(
                session, token=token, secret_key=state.settings.secret_key
            )
    except InvalidToken as exc:
        return _error(401, "UNAUTHENTICATED", exc.message)
    study_id = parse_uuid(request.path_params["study_id"])
    row = None
    if study_id is not None:
        async with state.sessionmaker() as session:
            visible = await visible_projects(session, principal=principal)
            found = (
                (await session.execute(select(TS).where(TS.c.id == study_id)))
                .mappings()
                .one_or_none()
            )
        if found is not None and found["deleted_at"] is None and found["project_id"] in visible:
            row = found
    if row is None or study_id is None:
        return _error(404, "NOT_FOUND", "trade study not found")
    names = study_names(row["snapshot"], row["definition"] or {})
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(csv_header(names))
    filename = f"trade-study-{study_id}.csv"
    return StreamingResponse(
        _stream(state, study_id, header.getvalue().encode(), len(names.inputs), len(names.outputs)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _stream(
    state: Any, study_id: uuid.UUID, header: bytes, inputs: int, outputs: int
) -> AsyncIterator[bytes]:
    yield header
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def put(data: Any) -> None:
        await chunks.put(bytes(data))  # asyncpg may reuse its buffer

    async def produce() -> None:
        try:
            async with state.sessionmaker() as session:
                conn = await session.connection()
                raw = (await conn.get_raw_connection()).driver_connection
                await raw.copy_from_query(
                    _query(inputs, outputs), study_id, output=put, format="csv"
                )
        finally:
            await chunks.put(None)

    task = asyncio.create_task(produce())
    try:
        while (chunk := await chunks.get()) is not None:
            yield chunk
        await task  # surface a database error
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


routes = [Route(PATH, trade_study_csv, methods=["GET"])]
