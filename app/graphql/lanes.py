"""Direct lanes: the hub writes a live event straight to a subscriber's WebSocket.

Delivering an event through a subscriber's own task costs a task wake-up, a chain of
async generators, strawberry's per-result extension hooks and five ASGI ``send``
wrappers — per subscriber, per event. A subscriber that is in step (its task idle,
nothing queued) does not need any of that: the hub renders the event once per group of
identical subscriptions (:mod:`app.graphql.sharing`) and writes the same ``next`` frame,
only the operation id differing, to each connection (:meth:`app.live.Hub.fan_out`).
Results with errors, replays, catch-ups, revocations and slow clients still go through
the subscriber's task, exactly as before.

The lane writes with uvicorn's own ``send`` (captured by the outermost middleware) and
only while the transport is not paused, so a write never waits; with another server
(no such ``send``) there is no lane and every event takes the task path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any

import orjson
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from websockets.protocol import State

from app.graphql.context import Context, OperationState, current_operation
from app.live import FILTERED, Lane

RAW_SEND = "threadline.raw_send"  # scope key: the server's own ASGI send (websockets)

# The subscription executor of the running operation task (set by the executor when it
# executes an event) and the graphql-transport-ws operation id (set by the WS handler).
current_subscription: ContextVar[Any] = ContextVar("current_subscription", default=None)
current_ws_operation: ContextVar[Operation[Context, None] | None] = ContextVar(
    "current_ws_operation", default=None
)


class DirectLane:
    __slots__ = (
        "_plain",
        "_prefix",
        "context",
        "executor",
        "group",
        "make_root",
        "operation",
        "protocol",
        "send",
    )

    def __init__(
        self,
        *,
        group: Hashable,
        executor: Any,
        make_root: Callable[[dict[str, Any]], Any],
        context: Context,
        operation: Operation[Context, None],
        send: Callable[[dict[str, Any]], Any],
        protocol: Any,
    ) -> None:
        self.group = group
        self.operation = operation
        self.executor = executor
        self.make_root = make_root
        self.context = context
        self.send = send
        self.protocol = protocol
        self._prefix = b'{"id":' + orjson.dumps(operation.id) + b',"type":"next","payload":'
        # No extension negotiated (no permessage-deflate): a text frame is a two- to
        # ten-byte header and the bytes, written to the transport as is.
        self._plain = not protocol.conn.extensions

    async def payload(self, event: dict[str, Any]) -> bytes | object | None:
        root = self.make_root(event)
        if root is None:
            return FILTERED
        state = OperationState(factory=self.context.new_session)
        token = current_operation.set(state)
        try:
            executor = self.executor.build_per_event_executor(root)
            result = executor.execute_operation(False)
            if executor.is_awaitable(result):
                result = await result
        finally:
            current_operation.reset(token)
            await state.close()
        if result.errors:
            return None  # the subscriber's task formats (and masks) errors
        from app.graphql.http import dumps  # the encoder of every other frame

        return b'{"data":' + dumps(result.data) + b"}"

    def writable(self) -> bool:
        protocol = self.protocol
        operation = self.operation
        return bool(
            # Not completed by the client (strawberry forgets the id, then cancels the
            # task): no `next` may follow a `complete`.
            operation.handler.operations.get(operation.id) is operation
            and protocol.writable.is_set()
            and not protocol.close_sent
            and protocol.conn.state is State.OPEN
            and not protocol.transport.is_closing()
        )

    async def write(self, payload: bytes) -> bool:
        message = self._prefix + payload + b"}"
        if self._plain:
            # Server frames are unmasked: FIN + text opcode, then the length.
            n = len(message)
            if n < 126:
                header = bytes((0x81, n))
            elif n < 65536:
                header = b"\x81\x7e" + n.to_bytes(2, "big")
            else:
                header = b"\x81\x7f" + n.to_bytes(8, "big")
            self.protocol.transport.write(header + message)
            return True
        try:
            await self.send({"type": "websocket.send", "text": message.decode()})
        except Exception:
            return False
        return True


def lane_factory(
    context: Context, make_root: Callable[[dict[str, Any]], Any]
) -> Callable[[], Lane | None]:
    """For :func:`app.live.event_stream`: the subscriber's lane, once it can have one."""

    def build() -> Lane | None:
        executor = current_subscription.get()
        operation = current_ws_operation.get()
        if executor is None or operation is None:
            return None
        send = context.request.scope.get(RAW_SEND)
        protocol = getattr(send, "__self__", None)
        conn = getattr(protocol, "conn", None)
        if send is None or not (
            isinstance(getattr(protocol, "writable", None), asyncio.Event)
            and hasattr(protocol, "close_sent")
            and hasattr(protocol, "transport")
            and isinstance(getattr(conn, "state", None), State)
            and isinstance(getattr(conn, "extensions", None), list)
        ):
            return None
        prefix = executor._share_prefix
        group: Hashable = prefix if isinstance(prefix, tuple) else object()
        return DirectLane(
            group=group,
            executor=executor,
            make_root=make_root,
            context=context,
            operation=operation,
            send=send,
            protocol=protocol,
        )

    return build


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """strawberry's graphql-transport-ws handler; each operation task knows its id."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        current_ws_operation.set(operation)
        await super().run_operation(operation)
