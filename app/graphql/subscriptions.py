"""GraphQL subscriptions: project events and parameter changes, live and replayable.

Each subscription checks the caller's access when it starts, then streams from the
process's :class:`app.live.Hub`. Every yielded event is resolved with a fresh
session and fresh loaders (``current_operation``), so nested fields show the state
as of that event's delivery, never a cached one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry import relay
from strawberry.scalars import JSON
from strawberry.types import Info

from app.auth.access import visible_projects
from app.graphql.common import decode_id
from app.graphql.context import Context, OperationState, current_operation
from app.graphql.lanes import lane_factory
from app.live import TokenRevoked, event_stream

if TYPE_CHECKING:
    from app.auth.schema import User
    from app.parameters.schema import Parameter
    from app.requirements.schema import Compliance, Requirement
    from app.trade_studies.schema import TradeStudyProgress

GQLInfo = Info[Context, None]


@strawberry.type(description="A parameter written by a change: old and new value.")
class ParameterValueChange:
    parameter_id: relay.GlobalID = strawberry.field(description="Global id of the parameter.")
    symbol: str = strawberry.field(description="Its symbol.")
    cause: str = strawberry.field(description="`edit` (set by someone) or `recompute`.")
    old_value: JSON | None = strawberry.field(description="Value before (number/bool/text).")
    new_value: JSON | None = strawberry.field(description="Value after.")
    old_unit: str = strawberry.field(description="Unit before.")
    unit: str = strawberry.field(description="Unit after (values are in these units).")
    old_version: int = strawberry.field(description="Version before.")
    version: int = strawberry.field(description="Version after.")
    formula: str | None = strawberry.field(description="Formula after (derived parameters).")
    uuid_: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The parameter as it is now (null if deleted since).")
    async def parameter(
        self, info: GQLInfo
    ) -> Annotated[Parameter, strawberry.lazy("app.parameters.schema")] | None:
        from app.parameters.models import Parameter as ParameterModel
        from app.parameters.schema import Parameter

        row = await info.context.loaders.row(ParameterModel.__table__, self.uuid_)
        return Parameter.from_row(row) if row is not None else None

    @classmethod
    def from_payload(cls, p: dict[str, Any], cause: str) -> ParameterValueChange:
        return cls(
            parameter_id=relay.GlobalID("Parameter", str(p["id"])),
            uuid_=uuid.UUID(str(p["id"])),
            symbol=p["symbol"],
            cause=cause,
            old_value=p.get("old_value"),
            new_value=p.get("new_value"),
            old_unit=p.get("old_unit") or "",
            unit=p.get("unit") or "",
            old_version=p.get("old_version") or 0,
            version=p.get("version") or 0,
            formula=p.get("formula"),
        )


@strawberry.type(description="A rule requirement whose compliance or margin moved.")
class ComplianceChange:
    requirement_id: relay.GlobalID = strawberry.field(description="Global id.")
    key: str = strawberry.field(description="Requirement key.")
    old_compliance: Annotated[Compliance, strawberry.lazy("app.requirements.schema")] = (
        strawberry.field(description="Before.")
    )
    new_compliance: Annotated[Compliance, strawberry.lazy("app.requirements.schema")] = (
        strawberry.field(description="After.")
    )
    old_margin: float | None = strawberry.field(description="Margin before, in `unit`.")
    new_margin: float | None = strawberry.field(description="Margin after, in `unit`.")
    unit: str | None = strawberry.field(description="Unit of the margins.")
    uuid_: strawberry.Private[uuid.UUID]

    @strawberry.field(description="True if PASS/FAIL/UNKNOWN changed (not only the margin).")
    def flipped(self) -> bool:
        return self.old_compliance != self.new_compliance

    @strawberry.field(description="The requirement as it is now.")
    async def requirement(
        self, info: GQLInfo
    ) -> Annotated[Requirement, strawberry.lazy("app.requirements.schema")] | None:
        from app.requirements.models import Requirement as RequirementModel
        from app.requirements.schema import Requirement

        row = await info.context.loaders.row(RequirementModel.__table__, self.uuid_)
        return Requirement.from_row(row) if row is not None else None

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> ComplianceChange:
        from app.requirements.schema import Compliance

        return cls(
            requirement_id=relay.GlobalID("Requirement", str(p["id"])),
            uuid_=uuid.UUID(str(p["id"])),
            key=p["key"],
            old_compliance=Compliance(p["old_compliance"]),
            new_compliance=Compliance(p["new_compliance"]),
            old_margin=p.get("old_margin"),
            new_margin=p.get("new_margin"),
            unit=p.get("unit"),
        )


@strawberry.type(
    description="One parameter operation: what was edited, what it recomputed, "
    "which requirements moved."
)
class ParameterChange:
    sequence: int = strawberry.field(description="Project event sequence.")
    occurred_at: datetime = strawberry.field(description="Commit time (UTC).")
    edited: list[ParameterValueChange] = strawberry.field(description="Parameters set directly.")
    recomputed: list[ParameterValueChange] = strawberry.field(
        description="Derived parameters recomputed, in topological order."
    )
    requirements: list[ComplianceChange] = strawberry.field(
        description="Rule requirements whose compliance or margin changed."
    )
    actor_id: strawberry.Private[uuid.UUID | None]
    # (project, sequence): subscribers with the same document share one execution.
    share_key: strawberry.Private[tuple[str, int] | None] = None

    @strawberry.field(description="Who made the change.")
    async def actor(
        self, info: GQLInfo
    ) -> Annotated[User, strawberry.lazy("app.auth.schema")] | None:
        return await _user(info, self.actor_id)

    @classmethod
    def from_event(cls, e: dict[str, Any]) -> ParameterChange:
        payload = e["payload"]
        return cls(
            sequence=e["sequence"],
            occurred_at=datetime.fromisoformat(e["created_at"]),
            edited=[
                ParameterValueChange.from_payload(p, "edit") for p in payload.get("edited", [])
            ],
            recomputed=[
                ParameterValueChange.from_payload(p, "recompute")
                for p in payload.get("recomputed", [])
            ],
            requirements=[
                ComplianceChange.from_payload(p) for p in payload.get("requirements", [])
            ],
            actor_id=uuid.UUID(e["actor_id"]) if e.get("actor_id") else None,
            share_key=(str(e["project_id"]), int(e["sequence"])),
        )

    def touches(self, symbols: set[str]) -> bool:
        return any(c.symbol in symbols for c in [*self.edited, *self.recomputed])


@strawberry.type(description="A change event of a project (durable, numbered per project).")
class ProjectEvent:
    sequence: int = strawberry.field(
        description="Per-project sequence number; resume with `after: sequence`."
    )
    kind: str = strawberry.field(
        description="What happened, e.g. `parameter.changed`, `component.updated`."
    )
    occurred_at: datetime = strawberry.field(description="Commit time (UTC).")
    payload: JSON = strawberry.field(description="Kind-specific details.")
    project_id: relay.GlobalID = strawberry.field(description="Global id of the project.")
    actor_id: strawberry.Private[uuid.UUID | None]
    raw: strawberry.Private[dict[str, Any]]
    share_key: strawberry.Private[tuple[str, int] | None] = None

    @strawberry.field(description="Who made the change (null for system changes).")
    async def actor(
        self, info: GQLInfo
    ) -> Annotated[User, strawberry.lazy("app.auth.schema")] | None:
        return await _user(info, self.actor_id)

    @strawberry.field(description="Typed details of a `parameter.changed` event, else null.")
    def parameter_change(self) -> ParameterChange | None:
        if self.kind != "parameter.changed":
            return None
        return ParameterChange.from_event(self.raw)

    @classmethod
    def from_event(cls, e: dict[str, Any]) -> ProjectEvent:
        return cls(
            sequence=e["sequence"],
            kind=e["kind"],
            occurred_at=datetime.fromisoformat(e["created_at"]),
            payload=e["payload"],
            project_id=relay.GlobalID("Project", e["project_id"]),
            actor_id=uuid.UUID(e["actor_id"]) if e.get("actor_id") else None,
            raw=e,
            share_key=(str(e["project_id"]), int(e["sequence"])),
        )


async def _user(info: GQLInfo, user_id: uuid.UUID | None) -> User | None:
    from app.auth.models import User as UserModel
    from app.auth.schema import User

    if user_id is None:
        return None
    row = await info.context.session.get(UserModel, user_id)
    if row is None or info.context.principal is None:
        return None
    if row.organization_id != info.context.principal.organization_id:
        return None
    return User.from_model(row)


async def _authorize(info: GQLInfo, project_gid: relay.GlobalID) -> uuid.UUID:
    ctx = info.context
    project_id = decode_id(project_gid, "Project")
    async with ctx.new_session() as session:
        visible = await visible_projects(session, principal=ctx.principal)
    if project_id is None or project_id not in visible:
        # Same answer for hidden and missing projects.
        raise GraphQLError("project not found", extensions={"code": "NOT_FOUND"})
    if ctx.hub is None:
        raise GraphQLError("subscriptions are not available", extensions={"code": "UNAVAILABLE"})
    return project_id


async def _stream(
    info: GQLInfo,
    project_id: uuid.UUID,
    after: int | None,
    make_root: Callable[[dict[str, Any]], Any] | None = None,
) -> AsyncGenerator[Any, None]:
    """The project's events — as ``make_root(event)`` if given (None skips an event);
    with ``make_root`` the hub may also deliver events directly (app.graphql.lanes)."""
    ctx = info.context
    cap = ctx.settings.max_subscriptions_per_connection
    if ctx.subscriptions >= cap:
        raise GraphQLError(
            f"at most {cap} subscriptions per connection",
            extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
        )
    ctx.subscriptions += 1
    state: OperationState | None = None

    async def close_socket() -> None:
        socket = ctx.request
        if isinstance(socket, WebSocket):
            with contextlib.suppress(Exception):
                await socket.close(code=4403, reason="token revoked")

    try:
        principal = ctx.principal
        async for event in event_stream(
            ctx.hub,
            project_id,
            after=after,
            token_id=principal.token_id if principal else None,
            on_revoked=close_socket,
            lane=lane_factory(ctx, make_root) if make_root is not None else None,
        ):
            root = make_root(event) if make_root is not None else event
            if root is None:
                continue
            state = OperationState(factory=ctx.new_session)
            current_operation.set(state)
            yield root
            # The consumer has resolved this event: release its connection now, not when
            # the next event arrives (idle subscribers would otherwise hold the pool).
            await state.close()
            current_operation.set(None)
            state = None
    except TokenRevoked:
        return
    finally:
        ctx.subscriptions -= 1
        if state is not None:
            await state.close()
        current_operation.set(None)


AFTER_DOC = (
    "Replay every event with a sequence greater than this first, then continue live. "
    "Omit to start from now."
)


@strawberry.type(
    description="Live streams. Authenticate in `connection_init`: "
    '`{"Authorization": "Bearer <token>"}`.'
)
class Subscription:
    @strawberry.subscription(
        description="Every change event of a project, in sequence order, at least once and "
        "without gaps (replayed from the durable log after a reconnect)."
    )
    async def project_events(
        self,
        info: GQLInfo,
        project_id: Annotated[relay.GlobalID, strawberry.argument(description="Project id.")],
        after: Annotated[int | None, strawberry.argument(description=AFTER_DOC)] = None,
    ) -> AsyncGenerator[ProjectEvent, None]:
        pid = await _authorize(info, project_id)
        async for event in _stream(info, pid, after, ProjectEvent.from_event):
            yield event

    @strawberry.subscription(
        description="Parameter edits with every derived parameter they recomputed and the "
        "requirements whose compliance moved."
    )
    async def parameter_changed(
        self,
        info: GQLInfo,
        project_id: Annotated[relay.GlobalID, strawberry.argument(description="Project id.")],
        after: Annotated[int | None, strawberry.argument(description=AFTER_DOC)] = None,
        symbols: Annotated[
            list[str] | None,
            strawberry.argument(
                description="Only changes that edited or recomputed one of these symbols."
            ),
        ] = None,
    ) -> AsyncGenerator[ParameterChange, None]:
        pid = await _authorize(info, project_id)
        wanted = set(symbols) if symbols else None

        def change(event: dict[str, Any]) -> ParameterChange | None:
            if event["kind"] != "parameter.changed":
                return None
            change = ParameterChange.from_event(event)
            return change if wanted is None or change.touches(wanted) else None

        async for event in _stream(info, pid, after, change):
            yield event

    @strawberry.subscription(
        description="A trade study's progress: its state at once, then every progress and "
        "status change (done/total, scenarios per second, ETA) until it is COMPLETED, FAILED "
        "or CANCELLED."
    )
    async def trade_study_progress(
        self,
        info: GQLInfo,
        id: Annotated[relay.GlobalID, strawberry.argument(description="Trade study id.")],
    ) -> AsyncGenerator[
        Annotated[TradeStudyProgress, strawberry.lazy("app.trade_studies.schema")], None
    ]:
        from app.live import current_sequence
        from app.trade_studies.schema import progress_stream

        async def sequence(project_id: uuid.UUID) -> int:
            return await current_sequence(info.context.sessionmaker, project_id)

        async for update in progress_stream(info, id, _stream, sequence):
            yield update


async def authenticate_connection(context: Context) -> None:
    """`connection_init`: resolve `{"Authorization": "Bearer …"}`; a bad token is refused
    (the view turns ``PermissionError`` into close code 4403)."""
    from app.auth import service as auth_service
    from app.auth.errors import InvalidToken

    params = context.connection_params if isinstance(context.connection_params, dict) else {}
    header = params.get("Authorization") or params.get("authorization")
    if not header:
        context.principal = None  # anonymous: can subscribe to nothing
        return
    if not isinstance(header, str):
        raise PermissionError("Authorization must be a string")
    try:
        token = auth_service.parse_bearer(header)
        assert token is not None
        async with context.sessionmaker() as session:
            context.principal = await auth_service.resolve_token(
                session, token=token, secret_key=context.settings.secret_key
            )
    except InvalidToken as exc:
        raise PermissionError(exc.message) from exc
