"""Schema extensions: the per-operation transaction and error masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.db import discard_after_commit, run_after_commit
from app.graphql.context import Context

log = logging.getLogger("threadline.graphql")


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
                await session.rollback()
        finally:
            await session.close()
            # A WebSocket connection runs many operations on one context.
            context.reset_operation()


def should_mask(error: GraphQLError) -> bool:
    """Mask everything that is not a deliberate GraphQL error (validation, limits, auth)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)
