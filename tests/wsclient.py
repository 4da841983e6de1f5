"""A minimal graphql-transport-ws client for tests (the protocol of `graphql-ws`)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection


class GqlWs:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._control: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self.closed: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future()
        )

    @classmethod
    async def connect(
        cls, http_url: str, token: str | None = None, *, payload: Any = None
    ) -> GqlWs:
        url = http_url.replace("http://", "ws://") + "/graphql"
        conn = await websockets.connect(url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        elif token is not None:
            init["payload"] = {"Authorization": f"Bearer {token}"}
        await conn.send(orjson.dumps(init).decode())
        client = cls(conn)
        return client

    async def acked(self, wait: float = 5) -> bool:
        msg = await asyncio.wait_for(self._control.get(), wait)
        return msg.get("type") == "connection_ack"

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                msg = orjson.loads(raw)
                op_id = msg.get("id")
                if op_id is not None and op_id in self.queues:
                    await self.queues[op_id].put(msg)
                elif msg.get("type") == "ping":
                    await self.conn.send(orjson.dumps({"type": "pong"}).decode())
                else:
                    await self._control.put(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.conn.close_code, self.conn.close_reason or ""))

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = str(next(self._ids))
        self.queues[op_id] = asyncio.Queue()
        await self.conn.send(
            orjson.dumps(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            ).decode()
        )
        return op_id

    async def next(self, op_id: str, wait: float = 10) -> dict[str, Any]:
        """The next message of the operation (type next, error or complete)."""
        return await asyncio.wait_for(self.queues[op_id].get(), wait)

    async def data(self, op_id: str, wait: float = 10) -> Any:
        msg = await self.next(op_id, wait)
        assert msg["type"] == "next", msg
        assert not msg["payload"].get("errors"), msg
        return msg["payload"]["data"]

    async def complete(self, op_id: str) -> None:
        await self.conn.send(orjson.dumps({"id": op_id, "type": "complete"}).decode())

    async def close(self) -> None:
        await self.conn.close()
        self._reader.cancel()
