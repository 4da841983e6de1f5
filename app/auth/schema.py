"""GraphQL: the viewer, login/logout and API token management."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy import func, select
from strawberry import relay
from strawberry.types import Info

from app.audit.service import RequestMeta, record
from app.auth import service
from app.auth.audit_trail import record_now
from app.auth.errors import InvalidCredentials
from app.auth.models import ApiToken as ApiTokenModel
from app.auth.models import Organization as OrganizationModel
from app.auth.models import User as UserModel
from app.auth.principal import Principal
from app.auth.ratelimit import LoginLimiter
from app.graphql.common import decode_id, parse_uuid
from app.graphql.context import Context
from app.graphql.errors import (
    ForbiddenError,
    InvalidCredentialsError,
    NotFoundError,
    UserError,
    ValidationError,
)
from app.graphql.mutations import UnauthenticatedError


@strawberry.type(description="A company or institution; the tenant boundary.")
class Organization:
    id: strawberry.ID = strawberry.field(description="Opaque identifier.")
    name: str = strawberry.field(description="Display name.")
    slug: str = strawberry.field(description="URL-safe unique name.")

    @classmethod
    def from_model(cls, org: OrganizationModel) -> Organization:
        return cls(id=strawberry.ID(str(org.id)), name=org.name, slug=org.slug)


@strawberry.type(description="A person who signs in to Threadline.")
class User(relay.Node):
    id: relay.NodeID[str]
    email: str = strawberry.field(description="Sign-in email address.")
    name: str = strawberry.field(description="Display name (may be empty).")
    is_admin: bool = strawberry.field(
        description="Organization administrator: owner of every project of the organization."
    )
    organization_id: strawberry.Private[str]

    @strawberry.field(description="The organization the user belongs to.")
    async def organization(self, info: Info[Context, None]) -> Organization:
        org = await info.context.session.get(OrganizationModel, self.organization_id)
        assert org is not None  # FK guarantees it
        return Organization.from_model(org)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        # Users are visible within the caller's organization only.
        principal = info.context.principal
        ids = [parse_uuid(i) for i in node_ids]
        if principal is None:
            return [None for _ in ids]
        rows = await info.context.session.scalars(
            select(UserModel).where(
                UserModel.id.in_([i for i in ids if i is not None]),
                UserModel.organization_id == principal.organization_id,
                UserModel.deleted_at.is_(None),
            )
        )
        found = {u.id: u for u in rows}
        return [User.from_model(found[i]) if i in found else None for i in ids]

    @strawberry.field(
        description="API tokens and login sessions of this user (only for yourself; "
        "empty for anyone else). Secrets are never shown again."
    )
    async def api_tokens(
        self,
        info: Info[Context, None],
        include_revoked: Annotated[
            bool, strawberry.argument(description="Also list revoked and expired tokens.")
        ] = False,
    ) -> list[ApiToken]:
        principal = info.context.principal
        if principal is None or str(principal.user_id) != str(self.id):
            return []
        stmt = select(ApiTokenModel).where(ApiTokenModel.user_id == principal.user_id)
        if not include_revoked:
            stmt = stmt.where(ApiTokenModel.revoked_at.is_(None)).where(
                (ApiTokenModel.expires_at.is_(None)) | (ApiTokenModel.expires_at > func.now())
            )
        rows = await info.context.session.scalars(stmt.order_by(ApiTokenModel.created_at.desc()))
        return [ApiToken.from_model(t) for t in rows]

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(
            id=str(user.id),
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            organization_id=str(user.organization_id),
        )


@strawberry.enum(description="What a token may do.")
class TokenScope(Enum):
    READ = strawberry.enum_value("read", description="Queries and subscriptions.")
    WRITE = strawberry.enum_value("write", description="Mutations (needs READ too).")


@strawberry.enum(description="How a token was issued.")
class TokenKind(Enum):
    SESSION = strawberry.enum_value("session", description="From `login`; expires.")
    API = strawberry.enum_value("api", description="Created for an integration.")


@strawberry.type(description="A bearer token's metadata (the secret itself is never stored).")
class ApiToken(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Label.")
    kind: TokenKind = strawberry.field(description="session or api.")
    prefix: str = strawberry.field(description="First characters, to tell tokens apart.")
    scopes: list[TokenScope] = strawberry.field(description="What it may do.")
    created_at: datetime = strawberry.field(description="Issued (UTC).")
    expires_at: datetime | None = strawberry.field(description="Expiry (UTC); null = never.")
    revoked_at: datetime | None = strawberry.field(description="Revocation time, if revoked.")
    last_used_at: datetime | None = strawberry.field(description="Last use (UTC), if recorded.")

    @classmethod
    def from_model(cls, t: ApiTokenModel) -> ApiToken:
        return cls(
            id=str(t.id),
            name=t.name,
            kind=TokenKind(t.kind),
            prefix=t.prefix,
            scopes=[TokenScope(s) for s in t.scopes],
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
            last_used_at=t.last_used_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[ApiToken | None]:
        principal = info.context.principal
        ids = [parse_uuid(i) for i in node_ids]
        if principal is None:
            return [None for _ in ids]
        rows = await info.context.session.scalars(
            select(ApiTokenModel).where(
                ApiTokenModel.id.in_([i for i in ids if i is not None]),
                ApiTokenModel.user_id == principal.user_id,
            )
        )
        found = {t.id: t for t in rows}
        return [ApiToken.from_model(found[i]) if i in found else None for i in ids]


@strawberry.input(description="Email and password of an account.")
class LoginInput:
    email: str = strawberry.field(description="Account email (case-insensitive).")
    password: str = strawberry.field(description="Account password.")


@strawberry.type(description="A new session token for the account.")
class LoginSuccess:
    token: str = strawberry.field(
        description="Bearer token for `Authorization: Bearer <token>`; shown once."
    )
    expires_in_seconds: int = strawberry.field(description="Token lifetime in seconds.")
    user: User = strawberry.field(description="The signed-in user.")


@strawberry.type(description="Too many failed logins for this account or address; wait.")
class RateLimitedError(UserError):
    retry_after_seconds: int = strawberry.field(description="Seconds until the next attempt.")


LoginResult = Annotated[
    LoginSuccess | InvalidCredentialsError | RateLimitedError,
    strawberry.union("LoginResult", description="The token, or why there is none."),
]


@strawberry.type(description="The session token used for this request is revoked.")
class LogoutSuccess:
    revoked: bool = strawberry.field(description="False if it was already revoked.")


@strawberry.input(description="A new API token for an integration.")
class ApiTokenCreateInput:
    name: str = strawberry.field(description="Label shown in token lists (1 to 200 characters).")
    scopes: list[TokenScope] = strawberry.field(
        default_factory=lambda: [TokenScope.READ, TokenScope.WRITE],
        description="What it may do; default read and write.",
    )
    expires_in_days: int | None = strawberry.field(
        default=None, description="Lifetime in days (1 to 3650); null = until revoked."
    )


@strawberry.type(description="The new token. Copy it now: it is never shown again.")
class ApiTokenCreateSuccess:
    token: str = strawberry.field(description="The secret bearer token (shown once).")
    api_token: ApiToken = strawberry.field(description="Its metadata.")


@strawberry.input(description="Which token to revoke.")
class ApiTokenRevokeInput:
    id: relay.GlobalID = strawberry.field(description="Global id of one of your tokens.")


@strawberry.type(description="The revoked token.")
class ApiTokenRevokeSuccess:
    api_token: ApiToken = strawberry.field(description="Its metadata, now revoked.")


LogoutResult = Annotated[
    LogoutSuccess | UnauthenticatedError,
    strawberry.union("LogoutResult", description="Revoked, or not signed in."),
]
ApiTokenCreateResult = Annotated[
    ApiTokenCreateSuccess | UnauthenticatedError | ValidationError | ForbiddenError,
    strawberry.union("ApiTokenCreateResult", description="The token, or why not."),
]
ApiTokenRevokeResult = Annotated[
    ApiTokenRevokeSuccess | UnauthenticatedError | NotFoundError,
    strawberry.union("ApiTokenRevokeResult", description="The revoked token, or why not."),
]


def _meta(ctx: Context) -> RequestMeta:
    return RequestMeta(request_id=ctx.request_id, ip=ctx.client_ip, user_agent=ctx.user_agent)


def _signed_out() -> UnauthenticatedError:
    return UnauthenticatedError(
        message="sign in first: send Authorization: Bearer <token>", code="UNAUTHENTICATED"
    )


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The signed-in user, or null without a valid token.")
    async def viewer(self, info: Info[Context, None]) -> User | None:
        principal = info.context.principal
        if principal is None:
            return None
        user = await info.context.session.get(UserModel, principal.user_id)
        return User.from_model(user) if user is not None else None


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Exchange email and password for a session token. Failures are audited "
        "and throttled per account and per client address."
    )
    async def login(
        self,
        info: Info[Context, None],
        input: Annotated[LoginInput, strawberry.argument(description="Credentials.")],
    ) -> LoginResult:
        ctx = info.context
        ttl = timedelta(hours=ctx.settings.session_ttl_hours)
        limiter = LoginLimiter(ctx.redis)
        meta = _meta(ctx)
        wait = await limiter.retry_after(input.email, ctx.client_ip)
        if wait is not None:
            await record_now(
                ctx.sessionmaker,
                actor=None,
                actor_label=input.email[:320],
                meta=meta,
                action="auth.login_throttled",
            )
            return RateLimitedError(
                message=f"too many failed logins; retry in {wait} s",
                code="RATE_LIMITED",
                field=None,
                retry_after_seconds=wait,
            )
        # Login runs as the system (row-level security would hide the account before
        # anyone is signed in), in its own committed transaction.
        async with ctx.sessionmaker() as session:
            try:
                issued, user = await service.login(
                    session,
                    email=input.email,
                    password=input.password,
                    secret_key=ctx.settings.secret_key,
                    ttl=ttl,
                )
            except InvalidCredentials as exc:
                await limiter.failed(input.email, ctx.client_ip)
                await record_now(
                    ctx.sessionmaker,
                    actor=None,
                    actor_label=input.email[:320],
                    meta=meta,
                    action="auth.login_failed",
                )
                return InvalidCredentialsError(message=exc.message, code=exc.code, field="password")
            principal = Principal(
                user_id=user.id,
                organization_id=user.organization_id,
                email=user.email,
                is_admin=user.is_admin,
                token_id=issued.row.id,
            )
            record(
                session,
                actor=principal,
                meta=meta,
                action="auth.login",
                project_id=None,
                object_type="api_token",
                object_id=issued.row.id,
                diff={},
            )
            await session.commit()
        await limiter.succeeded(input.email)
        if not ctx.has_session:
            # The rest of this response resolves as the user who just signed in.
            ctx.principal = principal
        return LoginSuccess(
            token=issued.token,
            expires_in_seconds=int(ttl.total_seconds()),
            user=User.from_model(user),
        )

    @strawberry.mutation(description="Revoke the token this request was made with.")
    async def logout(self, info: Info[Context, None]) -> LogoutResult:
        ctx = info.context
        principal = ctx.principal
        if principal is None:
            return _signed_out()
        revoked = await service.revoke_token(
            ctx.session, token_id=principal.token_id, user_id=principal.user_id
        )
        record(
            ctx.session,
            actor=principal,
            meta=_meta(ctx),
            action="auth.logout",
            project_id=None,
            object_type="api_token",
            object_id=principal.token_id,
            diff={},
        )
        return LogoutSuccess(revoked=revoked)

    @strawberry.mutation(description="Create an API token for yourself; the secret is shown once.")
    async def api_token_create(
        self,
        info: Info[Context, None],
        input: Annotated[ApiTokenCreateInput, strawberry.argument(description="The token.")],
    ) -> ApiTokenCreateResult:
        ctx = info.context
        principal = ctx.principal
        if principal is None:
            return _signed_out()
        if not principal.can_write:
            return ForbiddenError(
                message="a read-only token cannot create tokens", code="FORBIDDEN", field=None
            )
        name = input.name.strip()
        if not 1 <= len(name) <= 200:
            return ValidationError(
                message="name must have 1 to 200 characters", code="VALIDATION_ERROR", field="name"
            )
        if input.expires_in_days is not None and not 1 <= input.expires_in_days <= 3650:
            return ValidationError(
                message="expiresInDays must be between 1 and 3650",
                code="VALIDATION_ERROR",
                field="expiresInDays",
            )
        scopes = tuple(sorted({str(s.value) for s in input.scopes}))
        if "read" not in scopes:
            return ValidationError(
                message="scopes must include READ", code="VALIDATION_ERROR", field="scopes"
            )
        user = await ctx.session.get(UserModel, principal.user_id)
        assert user is not None
        issued = await service.issue_token(
            ctx.session,
            user=user,
            secret_key=ctx.settings.secret_key,
            kind="api",
            name=name,
            expires_in=timedelta(days=input.expires_in_days) if input.expires_in_days else None,
            scopes=scopes,
        )
        await ctx.session.refresh(issued.row)
        record(
            ctx.session,
            actor=principal,
            meta=_meta(ctx),
            action="auth.token_create",
            project_id=None,
            object_type="api_token",
            object_id=issued.row.id,
            diff={"name": [None, name], "scopes": [None, list(scopes)]},
        )
        return ApiTokenCreateSuccess(token=issued.token, api_token=ApiToken.from_model(issued.row))

    @strawberry.mutation(
        description="Revoke one of your tokens (takes effect immediately; "
        "open subscriptions using it are closed within seconds)."
    )
    async def api_token_revoke(
        self,
        info: Info[Context, None],
        input: Annotated[ApiTokenRevokeInput, strawberry.argument(description="Which token.")],
    ) -> ApiTokenRevokeResult:
        ctx = info.context
        principal = ctx.principal
        if principal is None:
            return _signed_out()
        token_id = decode_id(input.id, "ApiToken")
        revoked = token_id is not None and await service.revoke_token(
            ctx.session, token_id=token_id, user_id=principal.user_id
        )
        if not revoked or token_id is None:
            return NotFoundError(message="token not found", code="NOT_FOUND", field="id")
        row = await ctx.session.get(ApiTokenModel, token_id, populate_existing=True)
        assert row is not None
        record(
            ctx.session,
            actor=principal,
            meta=_meta(ctx),
            action="auth.token_revoke",
            project_id=None,
            object_type="api_token",
            object_id=token_id,
            diff={},
        )
        return ApiTokenRevokeSuccess(api_token=ApiToken.from_model(row))
