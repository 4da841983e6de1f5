"""The GraphQL schema: merges each domain's Query/Mutation parts, adds the limits."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from app.auth.schema import AuthMutation, AuthQuery
from app.graphql.extensions import UnitOfWork, should_mask
from app.settings import Settings, get_settings

log = logging.getLogger("threadline.graphql")


@strawberry.type(description="Entry points for reading the digital thread.")
class Query(AuthQuery):
    pass


@strawberry.type(description="Every change to the thread; each takes one `input`.")
class Mutation(AuthMutation):
    pass


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
        lambda: QueryDepthLimiter(max_depth=limits.max_query_depth),
        lambda: MaxAliasesLimiter(max_alias_count=limits.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=limits.max_query_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        UnitOfWork,
        lambda: MaskErrors(should_mask_error=should_mask, error_message="Internal server error."),
    ]
    return ThreadlineSchema(query=Query, mutation=Mutation, extensions=extensions)


def export_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"
