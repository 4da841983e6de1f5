"""Per-operation limits applied after validation: estimated cost and introspection access.

The cost estimate counts one per field and multiplies a connection's selection by its
page size (``first``/``last``, or the default page size), so
``components(first: 500) { nodes { parameters(first: 500) { … } } }`` is priced as the
250,000 rows it could touch — and refused before any resolver runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from app import bounded
from app.graphql.context import Context


class _Pricer:
    def __init__(
        self,
        schema: Any,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        default_page: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_page = default_page
        self.introspection = False
        self.memo: dict[str, int] = {}

    def page_size(self, node: FieldNode) -> int | None:
        size = None
        for arg in node.arguments or ():
            if arg.name.value not in ("first", "last"):
                continue
            value = arg.value
            if isinstance(value, IntValueNode):
                size = int(value.value)
            elif isinstance(value, VariableNode):
                raw = self.variables.get(value.name.value)
                size = raw if isinstance(raw, int) else None
        return size

    def cost(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        seen: frozenset[str] = frozenset(),
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name in ("__schema", "__type"):
                    self.introspection = True
                field_type = None
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
                    field_def = parent.fields.get(name)
                    field_type = get_named_type(field_def.type) if field_def else None
                multiplier = 1
                if field_type is not None and field_type.name.endswith("Connection"):
                    multiplier = max(self.page_size(sel) or self.default_page, 1)
                total += 1 + multiplier * self.cost(sel.selection_set, field_type, seen)
            elif isinstance(sel, InlineFragmentNode):
                target = parent
                if sel.type_condition is not None:
                    target = self.schema.get_type(sel.type_condition.name.value)
                total += self.cost(sel.selection_set, target, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:
                    continue
                if name not in self.memo:
                    target = self.schema.get_type(frag.type_condition.name.value)
                    self.memo[name] = self.cost(frag.selection_set, target, seen | {name})
                total += self.memo[name]
        return total


MAX_REPEATS = 50


def expanded_size(document: Any, limit: int) -> int:
    """Field selections after expanding fragments (memoised: linear in the document).

    Stops counting past ``limit``: a fragment that spreads the previous one twice,
    forty times over, expands to 2^40 fields — validators and estimators that walk
    every path never finish on it.
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, int] = {}

    def size(selection_set: SelectionSetNode | None, stack: frozenset[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        seen_keys: dict[str, int] = {}
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                key = (sel.alias or sel.name).value
                seen_keys[key] = seen_keys.get(key, 0) + 1
                if seen_keys[key] > MAX_REPEATS:
                    # Merging repeated selections is quadratic in validation.
                    raise GraphQLError(
                        f"`{key}` is selected more than {MAX_REPEATS} times in one selection set",
                        extensions={"code": "TOO_MANY_FIELDS"},
                    )
                total += 1 + size(sel.selection_set, stack)
            elif isinstance(sel, InlineFragmentNode):
                total += size(sel.selection_set, stack)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in stack or name not in fragments:
                    continue  # cycles and unknown fragments are validation errors
                if name not in memo:
                    memo[name] = size(fragments[name].selection_set, stack | {name})
                total += memo[name]
            if total > limit:
                return total
        return total

    worst = 0
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode):
            worst = max(worst, size(d.selection_set, frozenset()))
    return worst


# Verdicts per document text (the parser cache hands out the same document for the
# same text): a dashboard repeating one query pays for the walks once. Bounded.
_SIZES: dict[Any, int] = {}
_COSTS: dict[Any, tuple[int, bool]] = {}
_CACHE_SIZE = 1024


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    bounded.put(cache, key, value, _CACHE_SIZE)


def _cost_key(
    query: str | None, operation_name: str | None, variables: dict[str, Any], default_page_size: int
) -> tuple[Any, ...]:
    # Only integer variables (page sizes) can change the price of a document.
    ints = tuple(sorted((k, v) for k, v in variables.items() if type(v) is int))
    return (query, operation_name, ints, default_page_size)


def known_cost(
    query: str, operation_name: str | None, variables: dict[str, Any], default_page_size: int
) -> tuple[int, bool] | None:
    """The cost verdict :class:`OperationLimits` reached for this document and these page
    sizes, if it priced them already (compiled reads reuse it instead of re-pricing)."""
    return _COSTS.get(_cost_key(query, operation_name, variables, default_page_size))


class DocumentSizeLimit(SchemaExtension):
    """Refuse documents that expand to too many fields, before validation runs."""

    def on_parse(self) -> Iterator[None]:
        yield
        ec = self.execution_context
        document = ec.graphql_document
        context = ec.context
        if document is None or not isinstance(context, Context):
            return
        limit = context.settings.max_query_fields
        key = (ec.query, limit)
        n = _SIZES.get(key)
        if n is None:
            n = expanded_size(document, limit)
            _remember(_SIZES, key, n)
        if n > limit:
            raise GraphQLError(
                f"the operation expands to more than {limit} field selections "
                "(fragments included); split it",
                extensions={"code": "TOO_MANY_FIELDS", "limit": limit},
            )


class OperationLimits(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        context = ec.context
        document = ec.graphql_document
        if document is None or not isinstance(context, Context):
            yield
            return
        settings = context.settings
        variables = ec.variables or {}
        key = _cost_key(ec.query, ec.operation_name, variables, settings.default_page_size)
        priced = _COSTS.get(key)
        if priced is None:
            schema = ec.schema._schema
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            pricer = _Pricer(schema, fragments, variables, settings.default_page_size)
            cost = 0
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                name = ec.operation_name
                if name and definition.name and definition.name.value != name:
                    continue
                root = schema.get_root_type(definition.operation)
                cost = max(cost, pricer.cost(definition.selection_set, root))
            priced = (cost, pricer.introspection)
            _remember(_COSTS, key, priced)
        cost, introspection = priced
        error = None
        if cost > settings.max_query_cost:
            error = GraphQLError(
                f"operation cost {cost} exceeds the limit of {settings.max_query_cost}; "
                "request smaller pages (first/last) or fewer nested connections",
                extensions={"code": "COST_LIMIT", "cost": cost, "limit": settings.max_query_cost},
            )
        elif introspection and context.principal is None and (not settings.introspection_anonymous):
            error = GraphQLError(
                "introspection requires authentication",
                extensions={"code": "UNAUTHENTICATED"},
            )
        if error is not None:
            # Setting the result short-circuits execution: no resolver runs.
            ec.result = ExecutionResult(data=None, errors=[error])
        yield
