"""GraphQL types for the viewer and login."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.types import Info

from app.auth import service
from app.auth.errors import InvalidCredentials
from app.auth.models import Organization as OrganizationModel
from app.auth.models import User as UserModel
from app.graphql.common import parse_uuid
from app.graphql.context import Context
from app.graphql.errors import InvalidCredentialsError


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

    @classmethod
    def from_model(cls, user: UserModel) -> User:
        return cls(
            id=str(user.id),
            email=user.email,
            name=user.name,
            is_admin=user.is_admin,
            organization_id=str(user.organization_id),
        )


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


LoginResult = Annotated[
    LoginSuccess | InvalidCredentialsError,
    strawberry.union("LoginResult", description="The token, or why there is none."),
]


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
    @strawberry.mutation(description="Exchange email and password for a session token.")
    async def login(
        self,
        info: Info[Context, None],
        input: Annotated[LoginInput, strawberry.argument(description="Credentials.")],
    ) -> LoginResult:
        ctx = info.context
        ttl = timedelta(hours=ctx.settings.session_ttl_hours)
        try:
            issued, user = await service.login(
                ctx.session,
                email=input.email,
                password=input.password,
                secret_key=ctx.settings.secret_key,
                ttl=ttl,
            )
        except InvalidCredentials as exc:
            ctx.rollback_only = True
            return InvalidCredentialsError(message=exc.message, code=exc.code, field="password")
        return LoginSuccess(
            token=issued.token,
            expires_in_seconds=int(ttl.total_seconds()),
            user=User.from_model(user),
        )
