"""The GraphQL schema: merges each domain's Query/Mutation parts, adds the limits."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import (
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.types import ExecutionContext, Info

from app.auth.schema import AuthMutation, AuthQuery, User
from app.comments.mutations import CommentMutation
from app.components.mutations import ComponentMutation
from app.graphql.context import Context
from app.graphql.extensions import FastExecutionContext, UnitOfWork, limit_rules, should_mask
from app.graphql.limits import DocumentSizeLimit, OperationLimits
from app.graphql.subscriptions import Subscription
from app.parameters.mutations import ParameterMutation
from app.projects.mutations import ProjectMutation
from app.projects.schema import Project, ProjectQuery
from app.requirements.mutations import RequirementMutation
from app.revisions.mutations import RevisionMutation, RevisionQuery
from app.settings import Settings, get_settings
from app.trade_studies.mutations import TradeStudyMutation
from app.trade_studies.schema import TradeStudyQuery

log = logging.getLogger("threadline.graphql")


@strawberry.type(description="Entry points for reading the digital thread.")
class Query(AuthQuery, ProjectQuery, RevisionQuery, TradeStudyQuery):
    @strawberry.field(
        description="Any object by global id; null if it does not exist or is not visible."
    )
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[relay.GlobalID, strawberry.argument(description="Global id.")],
    ) -> relay.Node | None:
        return (await resolve_global_ids(info, [id]))[0]

    @strawberry.field(
        description="Objects by global ids, batched per type, in order; null where missing or "
        "not visible. At most 500 ids."
    )
    async def nodes(
        self,
        info: Info[Context, None],
        ids: Annotated[list[relay.GlobalID], strawberry.argument(description="Global ids.")],
    ) -> list[relay.Node | None]:
        if len(ids) > MAX_NODES:
            raise GraphQLError(
                f"at most {MAX_NODES} ids per `nodes` call", extensions={"code": "TOO_MANY_IDS"}
            )
        return await resolve_global_ids(info, ids)


@strawberry.type(description="Every change to the thread; each takes one `input`.")
class Mutation(
    AuthMutation,
    ParameterMutation,
    ProjectMutation,
    ComponentMutation,
    RequirementMutation,
    CommentMutation,
    RevisionMutation,
    TradeStudyMutation,
):
    pass


MAX_NODES = 500


async def resolve_global_ids(
    info: Info[Context, None], ids: list[relay.GlobalID]
) -> list[relay.Node | None]:
    """Resolve ids grouped by type (one batch per type); unknown types read as absent."""
    types = {t.__name__: t for t in _node_types()}
    by_type: dict[str, list[int]] = {}
    for i, gid in enumerate(ids):
        by_type.setdefault(gid.type_name, []).append(i)
    out: list[relay.Node | None] = [None] * len(ids)
    for type_name, positions in by_type.items():
        cls = types.get(type_name)
        if cls is None:
            continue
        found = await cls.resolve_nodes(  # type: ignore[attr-defined]
            info=info, node_ids=[ids[i].node_id for i in positions], required=False
        )
        for i, obj in zip(positions, found, strict=True):
            out[i] = obj
    return out


class ThreadlineSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Full detail goes to the log (with the request id); clients get masked errors.
        request_id = None
        if execution_context is not None:
            request_id = getattr(execution_context.context, "request_id", None)
        for error in errors:
            if error.original_error is not None and not isinstance(
                error.original_error, GraphQLError
            ):
                log.error(
                    "unexpected error in %s (request_id=%s)",
                    ".".join(str(p) for p in error.path or []),
                    request_id,
                    exc_info=error.original_error,
                )
            else:
                log.info("graphql error (request_id=%s): %s", request_id, error.message)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or get_settings()
    limits = settings.model_copy()
    # Factories: a fresh extension per request (the parse/validation LRU caches are
    # module-level in strawberry, so they survive and stay bounded).
    extensions: list[Any] = [
        limit_rules(max_depth=limits.max_query_depth, max_aliases=limits.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=limits.max_query_tokens),
        lambda: ParserCache(maxsize=512),
        DocumentSizeLimit,
        lambda: ValidationCache(maxsize=512),
        OperationLimits,
        UnitOfWork,
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal server error."),
    ]
    return ThreadlineSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=_node_types(),
        execution_context_class=FastExecutionContext,
    )


def _node_types() -> list[type]:
    # Types reachable only through `node`/`nodes` must still be in the schema.
    from app.auth.schema import ApiToken
    from app.comments.schema import Comment
    from app.components.schema import Component, ComponentType, Connector
    from app.parameters.schema import Parameter
    from app.requirements.schema import Requirement, TraceLink
    from app.revisions.schema import Revision
    from app.trade_studies.schema import Scenario, TradeStudy

    return [
        ApiToken,
        Scenario,
        Project,
        User,
        Comment,
        Component,
        ComponentType,
        Connector,
        Parameter,
        Requirement,
        TraceLink,
        Revision,
        TradeStudy,
    ]


def export_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"
