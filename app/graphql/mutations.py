"""Mutation machinery: typed errors, one savepoint per mutation field, request metadata.

Every mutation field runs its service inside a SAVEPOINT of the operation's
transaction: an expected failure (a ``DomainError``) rolls back exactly that field's
writes and the after-commit hooks (event publishing) they registered, and comes back
as a typed member of the field's result union. The operation commits once at the end
(``UnitOfWork``). Unexpected exceptions propagate and are masked.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, Union

import strawberry
from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from strawberry.scalars import JSON
from strawberry.types import Info

from app.audit.service import RequestMeta
from app.auth.errors import AuthError
from app.auth.principal import Principal
from app.errors import DomainError
from app.graphql.context import Context
from app.graphql.errors import ForbiddenError, NotFoundError, UserError, ValidationError
from app.service_support import UNSET as SERVICE_UNSET

T = TypeVar("T")
GQLInfo = Info[Context, None]


@strawberry.type(description="Not signed in: send `Authorization: Bearer <token>`.")
class UnauthenticatedError(UserError):
    pass


@strawberry.type(description="A name, tag, key or symbol is already taken in its scope.")
class DuplicateError(UserError):
    pass


@strawberry.type(
    description="`expectedVersion` is stale: someone changed the object first. "
    "Nothing was changed; reload and retry."
)
class VersionConflictError(UserError):
    current_version: int = strawberry.field(description="The object's version now.")
    current_value: JSON | None = strawberry.field(
        description="The current value (parameters), for a merge."
    )


@strawberry.type(description="The change would create a loop; `path` names it.")
class CycleDetectedError(UserError):
    path: list[str] = strawberry.field(
        description="The loop, closing on its first element: a → b → a."
    )


@strawberry.type(description="Other objects depend on this one; they are listed.")
class HasDependentsError(UserError):
    dependents: list[str] = strawberry.field(description="Dependent symbols/tags/keys.")
    requirements: list[str] = strawberry.field(description="Requirement keys that use it.")


@strawberry.type(description="A unit is not known.")
class UnknownUnitInputError(UserError):
    pass


@strawberry.type(description="Units or dimensions do not match (e.g. `m_dry + dv`).")
class DimensionError(UserError):
    reason: str | None = strawberry.field(description="Which dimensions clashed.")
    position: int | None = strawberry.field(description="0-based offset in the formula.")


@strawberry.type(description="A formula does not parse or cannot be evaluated.")
class FormulaError(UserError):
    reason: str | None = strawberry.field(description="What is wrong.")
    position: int | None = strawberry.field(description="0-based offset in the formula.")
    symbols: list[str] = strawberry.field(description="Unknown symbols, if that is the problem.")


@strawberry.type(description="A connector names a port its component's type does not offer.")
class PortNotFoundError(UserError):
    pass


@strawberry.type(description="The project would be left without an owner.")
class LastOwnerError(UserError):
    pass


ALL_ERRORS: tuple[type, ...] = (
    UnauthenticatedError,
    NotFoundError,
    ForbiddenError,
    ValidationError,
    DuplicateError,
    VersionConflictError,
    CycleDetectedError,
    HasDependentsError,
    UnknownUnitInputError,
    DimensionError,
    FormulaError,
    PortNotFoundError,
    LastOwnerError,
)


def result_union(name: str, success: type, description: str) -> Any:
    """``success | every UserError type`` as a named union."""
    members = (success, *ALL_ERRORS)
    return Annotated[Union[members], strawberry.union(name, description=description)]  # noqa: UP007


MAX_MESSAGE = 300


def _short(message: str) -> str:
    """Messages quote inputs; a 100 kB input must not come back as a 100 kB message."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def user_error(exc: DomainError | AuthError) -> Any:
    """The typed GraphQL error for an expected failure."""
    code, message = exc.code, _short(exc.message)
    field = getattr(exc, "field", None)
    base: dict[str, Any] = {"message": message, "code": code, "field": field}
    details = exc.details() if isinstance(exc, DomainError) else {}
    if code == "NOT_FOUND":
        return NotFoundError(**base)
    if code == "FORBIDDEN":
        return ForbiddenError(**base)
    if code == "DUPLICATE" or code == "ALREADY_EXISTS":
        return DuplicateError(**base)
    if code == "VERSION_CONFLICT":
        return VersionConflictError(
            **base,
            current_version=details.get("current_version", 0),
            current_value=details.get("current_value"),
        )
    if code == "CYCLE_DETECTED":
        return CycleDetectedError(**base, path=[str(p) for p in details.get("path", [])])
    if code == "HAS_DEPENDENTS":
        return HasDependentsError(
            **base,
            dependents=[str(d) for d in details.get("dependents", [])],
            requirements=[str(r) for r in details.get("requirements", [])],
        )
    if code == "UNKNOWN_UNIT":
        return UnknownUnitInputError(**base)
    if code in ("UNIT_MISMATCH", "DIMENSION_MISMATCH", "OFFSET_UNIT"):
        return DimensionError(
            **base, reason=details.get("reason"), position=details.get("position")
        )
    if code in (
        "FORMULA_ERROR",
        "FORMULA_SYNTAX",
        "FORMULA_TOO_LONG",
        "FORMULA_TOO_DEEP",
        "UNKNOWN_SYMBOL",
        "EVALUATION_ERROR",
    ):
        return FormulaError(
            **base,
            reason=details.get("reason"),
            position=details.get("position"),
            symbols=[str(s) for s in details.get("symbols", [])],
        )
    if code == "PORT_NOT_FOUND":
        return PortNotFoundError(**base)
    if code == "LAST_OWNER":
        return LastOwnerError(**base)
    return ValidationError(**base)


def request_meta(ctx: Context) -> RequestMeta:
    return RequestMeta(request_id=ctx.request_id, ip=ctx.client_ip, user_agent=ctx.user_agent)


async def mutate(
    info: GQLInfo,
    call: Callable[[Principal, RequestMeta], Awaitable[T]],
    success: Callable[[T], Awaitable[Any]],
) -> Any:
    """Run one mutation field atomically (savepoint) and map expected failures."""
    ctx = info.context
    principal = ctx.principal
    if principal is None:
        return UnauthenticatedError(
            message="sign in first: send Authorization: Bearer <token>", code="UNAUTHENTICATED"
        )
    session = ctx.session
    hooks: list[Any] = session.info.setdefault("after_commit", [])
    mark = len(hooks)
    savepoint = await session.begin_nested()
    try:
        value = await call(principal, request_meta(ctx))
    except (DomainError, AuthError) as exc:
        await savepoint.rollback()
        # Events of the rolled-back writes must never be published.
        del session.info.setdefault("after_commit", [])[mark:]
        if exc.code in ("FORBIDDEN", "NOT_FOUND"):
            # Refused attempts are audited too, outside the (rolled back) operation.
            from app.auth.audit_trail import record_now

            await record_now(
                ctx.sessionmaker,
                actor=principal,
                meta=request_meta(ctx),
                action="authz.denied",
                diff={"mutation": info.field_name, "code": exc.code, "message": exc.message},
            )
        return user_error(exc)
    await savepoint.commit()
    # Memberships or projects may have changed: recompute visibility on next read.
    ctx.forget_visibility()
    return await success(value)


def given(value: Any) -> Any:
    """strawberry.UNSET (field omitted) → the services' UNSET; anything else as is."""
    return SERVICE_UNSET if value is strawberry.UNSET else value


async def fetch_row(ctx: Context, table: Any, id_: uuid.UUID) -> RowMapping:
    """The committed-in-this-transaction row of a just-written object (no loader cache)."""
    row = (await ctx.session.execute(select(table).where(table.c.id == id_))).mappings().one()
    return row
