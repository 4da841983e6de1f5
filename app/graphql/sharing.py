"""One execution per subscription event for every subscriber that asked the same thing.

A dashboard wall is a thousand clients holding the same subscription document. Each
live event used to be executed once per subscriber — the same work a thousand times,
most of the api's CPU per event. Here the first subscriber to reach an event executes
it in a task of its own; every other subscriber with the same *share key* awaits that
task and sends the same result.

The share key is (the parsed operation, the coerced variables, the event, and — unless
the selection reads nothing beyond the event's own payload — the principal). So:

* Two users never share a result whose fields read the database (``actor``, the
  ``parameter``/``requirement`` "as it is now"): what row-level security and project
  visibility let one see, the other may not. Each subscription was authorized for the
  project when it started, and the event payload is the project's, so selections of
  payload fields only (the common dashboard case) are shared across users.
* An entry lives at most :data:`TTL_SECONDS` and the table holds at most
  :data:`MAX_ENTRIES`: a subscriber replaying old events later executes them afresh
  (nested "as it is now" fields stay current).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)

TTL_SECONDS = 2.0
MAX_ENTRIES = 1024

# Event types whose fields are computed from the event payload alone — except fields
# with an async resolver (they read the database) or returning another object type.
EVENT_TYPES = frozenset(
    {"ProjectEvent", "ParameterChange", "ParameterValueChange", "ComplianceChange"}
)


@dataclass(eq=False)
class _Entry:
    created: float
    # Keeps the operation node alive: its id() is part of the key and must not be reused.
    operation: OperationDefinitionNode
    future: asyncio.Future[Any]


class SharedResults:
    """Bounded, short-lived table of in-flight and finished event executions."""

    def __init__(self, *, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self.executions = 0  # how many events were actually executed (for tests/benches)
        self.shared = 0  # how many results were served from another subscriber's execution

    def clear(self) -> None:
        self._entries.clear()

    def run(
        self,
        key: tuple[Any, ...],
        operation: OperationDefinitionNode,
        execute: Callable[[], Any],
        is_awaitable: Callable[[Any], bool],
    ) -> Any:
        """The result of ``execute()`` for ``key``, executing at most once per TTL."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and now - entry.created <= self.ttl:
            future = entry.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self.shared += 1
                return future.result()
            if not future.done():
                self.shared += 1
                return self._await_shared(future, execute, is_awaitable)
            # The shared execution failed or was cancelled: this subscriber runs its own.
        self.executions += 1
        result = execute()
        loop = asyncio.get_running_loop()
        if is_awaitable(result):
            # A task of its own: the first subscriber leaving must not cancel the others'.
            task: asyncio.Future[Any] = asyncio.ensure_future(result)
            self._store(key, _Entry(now, operation, task))
            return self._await_shared(task, None, is_awaitable)
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(result)
        self._store(key, _Entry(now, operation, done))
        return result

    def _store(self, key: tuple[Any, ...], entry: _Entry) -> None:
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        # Expired entries at the old end go too, so a quiet process holds nothing.
        cutoff = entry.created - self.ttl
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.created >= cutoff:
                break
            entries.popitem(last=False)

    async def _await_shared(
        self,
        future: asyncio.Future[Any],
        fallback: Callable[[], Any] | None,
        is_awaitable: Callable[[Any], bool],
    ) -> Any:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if fallback is None or not future.cancelled() or (task and task.cancelling()):
                raise
        except Exception:
            if fallback is None:
                raise
        # Another subscriber's execution failed: execute this subscriber's own.
        result = fallback()
        if is_awaitable(result):
            return await result
        return result


shared_results = SharedResults()


def variables_key(variables: dict[str, Any] | None) -> bytes:
    return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS, default=str)


def reads_only_payload(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> bool:
    """True if every field the subscription selects below its root field is computed
    from the event alone (no database read, nothing that depends on the principal)."""
    root = schema.subscription_type
    if root is None:
        return False
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            return False  # fragments on the root: not worth the analysis
        field = root.fields.get(selection.name.value)
        if field is None:
            return False
        named = get_named_type(field.type)
        if not isinstance(named, GraphQLObjectType) or named.name not in EVENT_TYPES:
            return False
        if selection.selection_set is None or not _pure(
            named, selection.selection_set, fragments, set()
        ):
            return False
    return True


def _pure_field(field: GraphQLField) -> bool:
    definition = field.extensions.get("strawberry-definition")
    resolver = getattr(definition, "base_resolver", None)
    return resolver is None or not resolver.is_async


def _pure(
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> bool:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name == "__typename":
                continue
            field = parent.fields.get(name)
            if field is None or not _pure_field(field):
                return False
            named = get_named_type(field.type)
            if isinstance(named, GraphQLScalarType | GraphQLEnumType):
                continue
            if not isinstance(named, GraphQLObjectType) or named.name not in EVENT_TYPES:
                return False
            if selection.selection_set is None or not _pure(
                named, selection.selection_set, fragments, seen
            ):
                return False
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != parent.name:
                return False
            if not _pure(parent, selection.selection_set, fragments, seen):
                return False
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen:
                continue
            fragment = fragments.get(name)
            if fragment is None or fragment.type_condition.name.value != parent.name:
                return False
            seen.add(name)
            if not _pure(parent, fragment.selection_set, fragments, seen):
                return False
        else:  # pragma: no cover - no other selection kinds exist
            return False
    return True
