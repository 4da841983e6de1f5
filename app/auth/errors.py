"""Authentication and authorization errors (domain level, no GraphQL)."""

from __future__ import annotations


class AuthError(Exception):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCredentials(AuthError):
    code = "INVALID_CREDENTIALS"


class InvalidToken(AuthError):
    code = "INVALID_TOKEN"


class Forbidden(AuthError):
    code = "FORBIDDEN"


class AccountExists(AuthError):
    code = "ALREADY_EXISTS"
