"""Accounts and tokens over GraphQL: tokens shown once, revocation, throttled logins, audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.audit.models import AuditEntry
from tests.conftest import Factory, GraphQLCall

CREATE = """mutation($input: ApiTokenCreateInput!) { apiTokenCreate(input: $input) { __typename
  ... on ApiTokenCreateSuccess { token apiToken { id name scopes kind prefix expiresAt } }
  ... on UserError { code field message } } }"""
LIST = "{ viewer { apiTokens { name scopes kind revokedAt } } }"
LOGIN = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
  __typename ... on LoginSuccess { token } ... on RateLimitedError { code retryAfterSeconds }
  ... on UserError { code } } }"""


async def test_api_token_lifecycle(graphql: GraphQLCall, factory: Factory) -> None:
    acct = await factory.account()
    r = (
        await graphql(
            CREATE,
            {"input": {"name": "CAD sync", "scopes": ["READ"], "expiresInDays": 30}},
            token=acct.token,
        )
    ).ok()
    created = r["apiTokenCreate"]
    assert created["__typename"] == "ApiTokenCreateSuccess"
    secret = created["token"]
    assert secret.startswith("tla_") and created["apiToken"]["prefix"] == secret[:10]
    assert created["apiToken"]["scopes"] == ["READ"] and created["apiToken"]["kind"] == "API"
    assert created["apiToken"]["expiresAt"] is not None
    # Listed without the secret; usable; read-only means no writes.
    listed = (await graphql(LIST, token=acct.token)).ok()["viewer"]["apiTokens"]
    assert {"name": "CAD sync", "scopes": ["READ"], "kind": "API", "revokedAt": None} in listed
    assert secret not in str(listed)
    r = (await graphql(CREATE, {"input": {"name": "x"}}, token=secret)).ok()["apiTokenCreate"]
    assert (r["__typename"], r["code"]) == ("ForbiddenError", "FORBIDDEN")
    # Revoke it: refused from then on.
    revoke = """mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { __typename
      ... on ApiTokenRevokeSuccess { apiToken { revokedAt } } ... on UserError { code } } }"""
    r = (await graphql(revoke, {"id": created["apiToken"]["id"]}, token=acct.token)).ok()
    assert r["apiTokenRevoke"]["apiToken"]["revokedAt"] is not None
    assert (await graphql(LIST, token=secret)).status == 401
    # Someone else's token id reads as not found.
    other = await factory.account()
    r = (await graphql(revoke, {"id": created["apiToken"]["id"]}, token=other.token)).ok()
    assert r["apiTokenRevoke"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


async def test_bad_token_inputs_are_typed_errors(graphql: GraphQLCall, factory: Factory) -> None:
    acct = await factory.account()
    for inp, field in [
        ({"name": ""}, "name"),
        ({"name": "x", "expiresInDays": 0}, "expiresInDays"),
        ({"name": "x", "scopes": ["WRITE"]}, "scopes"),
    ]:
        r = (await graphql(CREATE, {"input": inp}, token=acct.token)).ok()["apiTokenCreate"]
        assert (r["__typename"], r["code"], r["field"]) == (
            "ValidationError",
            "VALIDATION_ERROR",
            field,
        )
    r = (await graphql(CREATE, {"input": {"name": "x"}})).ok()["apiTokenCreate"]
    assert r["__typename"] == "UnauthenticatedError"


async def test_logout_revokes_the_session(graphql: GraphQLCall, factory: Factory) -> None:
    acct = await factory.account()
    token = (await graphql(LOGIN, {"e": acct.user.email, "p": acct.password})).ok()["login"][
        "token"
    ]
    r = (
        await graphql(
            "mutation { logout { __typename ... on LogoutSuccess { revoked } } }", token=token
        )
    ).ok()
    assert r["logout"] == {"__typename": "LogoutSuccess", "revoked": True}
    assert (await graphql("{ viewer { email } }", token=token)).status == 401


async def test_failed_logins_are_throttled_and_audited(
    graphql: GraphQLCall, factory: Factory, db: Any
) -> None:
    acct = await factory.account()
    for _ in range(10):
        r = (await graphql(LOGIN, {"e": acct.user.email, "p": "wrong-password"})).ok()["login"]
        assert r == {"__typename": "InvalidCredentialsError", "code": "INVALID_CREDENTIALS"}
    # The 11th attempt is refused before the password is even checked — the right one too.
    r = (await graphql(LOGIN, {"e": acct.user.email, "p": acct.password})).ok()["login"]
    assert r["__typename"] == "RateLimitedError" and r["code"] == "RATE_LIMITED"
    assert 0 < r["retryAfterSeconds"] <= 900
    failed = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor_label == acct.user.email, AuditEntry.action == "auth.login_failed")
    )
    throttled = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(
            AuditEntry.actor_label == acct.user.email, AuditEntry.action == "auth.login_throttled"
        )
    )
    assert (failed, throttled) == (10, 1)
    row = (
        await db.execute(
            select(AuditEntry.ip, AuditEntry.user_agent, AuditEntry.request_id)
            .where(AuditEntry.actor_label == acct.user.email)
            .limit(1)
        )
    ).one()
    assert str(row.ip) == "127.0.0.1" and row.user_agent and row.request_id


async def test_denied_mutation_is_audited(
    graphql: GraphQLCall, factory: Factory, db: Any, demo: Any
) -> None:
    from tests.test_read_api import gid

    stranger = await factory.account()
    q = """mutation($id: ID!) { parameterUpdate(input: {id: $id, expectedVersion: 1, number: 1})
      { __typename } }"""
    pid = gid("Parameter", __import__("uuid").uuid4())
    r = (await graphql(q, {"id": pid}, token=stranger.token)).ok()
    assert r["parameterUpdate"]["__typename"] == "NotFoundError"
    n = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.actor_id == stranger.user.id, AuditEntry.action == "authz.denied")
    )
    assert n == 1
