"""The ``UserError`` interface and the error types shared by every domain.

Expected failures are values in a mutation's result union; only unexpected
exceptions travel in ``errors`` — and those are masked.
"""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An expected failure of a mutation. Nothing was changed.")
class UserError:
    message: str = strawberry.field(description="Human-readable explanation.")
    code: str = strawberry.field(description="Stable machine-readable code, e.g. NOT_FOUND.")
    field: str | None = strawberry.field(
        default=None, description="The input field at fault (dotted path), if one is."
    )


@strawberry.type(description="Email or password is wrong, or the account is disabled.")
class InvalidCredentialsError(UserError):
    pass


@strawberry.type(description="The caller may not do this.")
class ForbiddenError(UserError):
    pass


@strawberry.type(description="The object does not exist or the caller may not see it.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="The input is invalid; `field` names the culprit.")
class ValidationError(UserError):
    pass
