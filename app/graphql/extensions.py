"""Schema extensions: the per-operation transaction, error masking, validation limits."""

from __future__ import annotations

import logging
import operator
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from graphql import (
    ASTValidationRule,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Undefined,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.graphql import OperationType

from app.db import discard_after_commit, run_after_commit
from app.graphql.context import Context

log = logging.getLogger("threadline.graphql")


def limit_rules(*, max_depth: int, max_aliases: int) -> Callable[[], AddValidationRules]:
    """A factory of the depth and alias limits whose validation rules are built once.

    ``QueryDepthLimiter``/``MaxAliasesLimiter`` make a new rule class per instance; as
    per-request factories they gave every request new rules, so the ``ValidationCache``
    key ``(schema, document, rules)`` never repeated and every request was validated
    anew (45% of a small query's time). Shared rule classes keep the cache hitting.
    """
    rules: list[type[ASTValidationRule]] = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    return lambda: AddValidationRules(rules)


class UnitOfWork(SchemaExtension):
    """Commit a mutation's session once, after every resolver ran; roll back otherwise.

    Queries roll back (they wrote nothing). A mutation commits unless a resolver
    returned a typed error (``rollback_only``) or an unexpected error occurred —
    then nothing it wrote survives. After-commit hooks (event publishing) run only
    after a successful commit.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        if not isinstance(context, Context) or not context.has_session:
            return
        if self.execution_context.operation_type == OperationType.SUBSCRIPTION:
            # Subscriptions use a fresh session per event (see app.graphql.subscriptions).
            return
        session = context.session
        result = self.execution_context.result
        is_mutation = self.execution_context.operation_type == OperationType.MUTATION
        failed = bool(result is None or getattr(result, "errors", None))
        try:
            if is_mutation and not failed and not context.rollback_only:
                await session.commit()
                await run_after_commit(session)
            else:
                discard_after_commit(session)
                try:
                    await session.rollback()
                except Exception:
                    # A resolver cancelled mid-query (a sibling field failed) leaves a
                    # dead connection: nothing to roll back, and the pool replaces it.
                    log.warning("rollback failed; the connection is discarded", exc_info=True)
                    await session.invalidate()
        finally:
            try:
                await session.close()
            except Exception:
                log.warning("closing the session failed", exc_info=True)
            # A WebSocket connection runs many operations on one context.
            context.reset_operation()


def should_mask(error: GraphQLError) -> bool:
    """Mask everything that is not a deliberate GraphQL error (validation, limits, auth)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


# --- execution fast path ------------------------------------------------------------


class _Plan:
    """How to resolve one field without graphql-core's per-field machinery (or not)."""

    __slots__ = ("kind", "leaf", "nullable", "resolve")

    def __init__(
        self, kind: str, leaf: Any = None, resolve: Any = None, *, nullable: bool = False
    ) -> None:
        self.kind = kind  # "slow" | "attr" | "node_id"
        self.leaf = leaf
        self.resolve = resolve
        self.nullable = nullable  # a null is a legal value of the field


_SLOW = _Plan("slow")
# Returned by the fast path when the field must take graphql-core's normal path.
_FALLBACK: Any = object()


def _is_default_node_class(cls: type) -> bool:
    return (
        getattr(cls.resolve_id, "__func__", None) is relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
        and getattr(cls.resolve_typename, "__func__", None) is relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
    )


def _plan(field_def: GraphQLField) -> _Plan:
    field_type: Any = field_def.type
    nullable = not isinstance(field_type, GraphQLNonNull)
    leaf = field_type if nullable else field_type.of_type
    if field_def.args or not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        return _SLOW
    resolve: Any = field_def.resolve
    definition = field_def.extensions.get("strawberry-definition")
    if getattr(resolve, "__name__", "") == "_get_basic_result":
        # A strawberry field without a resolver: the value is an attribute, read with
        # the schema's default resolver (``getattr`` unless configured otherwise).
        if definition is not None and definition.default_resolver is getattr:
            getter = operator.attrgetter(definition.python_name)
            return _Plan("attr", leaf, getter, nullable=nullable)
        return _Plan("attr", leaf, lambda source: resolve(source, None), nullable=nullable)
    if (
        definition is not None
        and getattr(definition, "base_resolver", None) is not None
        and getattr(definition.base_resolver.wrapped_func, "__func__", None) is _NODE_ID_FUNC
        and not definition.extensions
        and not definition.permission_classes
    ):
        return _Plan("node_id", leaf)
    return _SLOW


_NODE_ID_FUNC: Any = relay.Node.__dict__["_id"].__func__
_DEFAULT_NODE_CLASSES: dict[type, bool] = {}


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with a fast path for plain leaf fields.

    Most fields of a large read are scalars or enums already held by the object
    (``symbol``, ``number``, ``unit``…) and relay ``id``s. graphql-core builds a
    resolve-info object, looks up arguments and goes through the generic completion
    for each; here such a field is read and serialized directly. Anything unusual —
    arguments, a resolver of our own, a null, a value the scalar refuses, field
    middleware — takes the normal path, so results and errors are unchanged.
    """

    _plans: ClassVar[dict[int, tuple[GraphQLField, _Plan]]] = {}
    # Subscriptions: what, besides the event, identifies this subscription's result
    # (see app.graphql.sharing); None until the first event, False if not shareable.
    _share_prefix: tuple[Any, ...] | bool | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._share_prefix is None:
            from app.graphql.lanes import current_subscription

            self._share_prefix = self._subscription_share_prefix()
            # The operation's task may now give its subscriber a direct lane.
            current_subscription.set(self)
        executor = super().build_per_event_executor(payload)
        # graphql-core 3.3.2 copies the executor shallowly, so every event of a
        # long-lived subscription added its collected subfields to one shared memo
        # (keyed by per-event lists): memory grew with every event. Each event gets its own.
        executor._relevant_sub_fields = {}
        return executor

    def _subscription_share_prefix(self) -> tuple[Any, ...] | bool:
        from app.graphql.sharing import reads_only_payload, variables_key

        try:
            fragments = {name: f.definition for name, f in self.fragments.items()}
            pure = reads_only_payload(self.schema, self.operation, fragments)
            variables = variables_key(self.variable_values.coerced)
        except (TypeError, ValueError):
            return False
        principal_key: Any = None
        if not pure:
            principal = getattr(self.context_value, "principal", None)
            if principal is None:
                return False
            principal_key = (
                principal.organization_id,
                principal.user_id,
                principal.is_admin,
                principal.scopes,
            )
        return (id(self.operation), variables, principal_key)

    def execute_operation(self, serially: bool | None = None) -> Any:
        prefix = self._share_prefix
        share_key = getattr(self.root_value, "share_key", None)
        if not isinstance(prefix, tuple) or share_key is None:
            return super().execute_operation(serially)
        from app.graphql.sharing import shared_results

        return shared_results.run(
            (*prefix, share_key),
            self.operation,
            lambda: super(FastExecutionContext, self).execute_operation(serially),
            self.is_awaitable,
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        field_def = parent_type.fields.get(node.name.value)
        manager = self.middleware_manager
        plain = manager is None or manager._middleware_resolvers is None
        if field_def is not None and plain and not node.arguments:
            cached = self._plans.get(id(field_def))
            if cached is None or cached[0] is not field_def:
                cached = (field_def, _plan(field_def))
                self._plans[id(field_def)] = cached
            plan = cached[1]
            if plan.kind != "slow":
                value = self._fast_value(plan, parent_type, source)
                if value is not _FALLBACK:
                    return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Any,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's ``execute_fields``, with plain leaf fields read in the loop.

        A fast field needs neither a response ``Path`` nor a call through
        ``execute_field``; every other field (or a fast one whose value is null or
        refused) goes through ``execute_field`` exactly as upstream does.
        """
        entries = self._entries(parent_type, grouped_field_set)
        fast_value = self._fast_value
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, plan, field_details_list in entries:
                if plan is not None:
                    value = fast_value(plan, parent_type, source_value)
                    if value is not _FALLBACK:
                        results[response_name] = value
                        continue
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[f] for f in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def complete_list_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of objects whose selected fields are all plain leaves, in one loop.

        E.g. ``nodes { id symbol name number unit }`` over 4,000 parameters: no
        per-item completion, type check dispatch or sub-field collection. Lists with
        anything else (nested objects, directives, @defer/@stream, a null, a value the
        fast path refuses) are completed by graphql-core as usual, from scratch.
        """
        fast = self._complete_plain_objects(return_type, field_details_list, info, result)
        if fast is not None:
            return fast
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_plain_objects(
        self, return_type: Any, field_details_list: Any, info: Any, result: Any
    ) -> list[dict[str, Any]] | None:
        item_type = return_type.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if not isinstance(item_type, GraphQLObjectType) or type(result) is not list:
            return None
        if any(details.node.directives for details in field_details_list):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            item_type, field_details_list
        )
        if new_defer_usages:
            return None
        entries = self._entries(item_type, grouped_field_set)
        if any(plan is None for _, plan, _ in entries):
            return None
        is_type_of = item_type.is_type_of
        fast_value = self._fast_value
        out: list[dict[str, Any]] = []
        for item in result:
            if item is None:
                return None
            if is_type_of is not None:
                matches = is_type_of(item, info)
                if matches is not True:
                    return None
            values: dict[str, Any] = {}
            for response_name, plan, _ in entries:
                value = fast_value(plan, item_type, item)  # type: ignore[arg-type]
                if value is _FALLBACK:
                    return None
                values[response_name] = value
            out.append(values)
        return out

    def _entries(
        self, parent_type: GraphQLObjectType, grouped_field_set: Any
    ) -> list[tuple[str, _Plan | None, Any]]:
        """Per selection set (memoized by graphql-core): each field and its fast plan."""
        cache: dict[int, tuple[Any, Any, list[tuple[str, _Plan | None, Any]]]]
        cache = self.__dict__.setdefault("_entry_cache", {})
        cached = cache.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set and cached[1] is parent_type:
            return cached[2]
        manager = self.middleware_manager
        plain = manager is None or manager._middleware_resolvers is None
        entries: list[tuple[str, _Plan | None, Any]] = []
        for response_name, field_details_list in grouped_field_set.items():
            plan = None
            node = field_details_list[0].node
            field_def = parent_type.fields.get(node.name.value)
            if plain and field_def is not None and not node.arguments:
                found = _plan(field_def)
                plan = None if found.kind == "slow" else found
            entries.append((response_name, plan, field_details_list))
        cache[id(grouped_field_set)] = (grouped_field_set, parent_type, entries)
        return entries

    @staticmethod
    def _fast_value(plan: _Plan, parent_type: GraphQLObjectType, source: Any) -> Any:
        """The field's serialized value, or ``_FALLBACK`` for the normal path."""
        try:
            if plan.kind == "attr":
                raw = plan.resolve(source)
            else:
                cls = type(source)
                default = _DEFAULT_NODE_CLASSES.get(cls)
                if default is None:
                    default = isinstance(source, relay.Node) and _is_default_node_class(cls)
                    _DEFAULT_NODE_CLASSES[cls] = default
                if not default:
                    return _FALLBACK
                node_id = getattr(source, cls.resolve_id_attr())
                if node_id is None:
                    return _FALLBACK
                raw = relay.GlobalID(type_name=parent_type.name, node_id=str(node_id))
            if raw is None:
                # A legal null; a null in a non-null field is the normal path's error.
                return None if plan.nullable else _FALLBACK
            value = plan.leaf.coerce_output_value(raw)
        except Exception:  # the normal path raises (and reports) it properly
            return _FALLBACK
        return _FALLBACK if value is Undefined or value is None else value
