"""Login, bearer tokens, revocation and expiry — over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service
from app.auth.models import ApiToken
from tests.conftest import SECRET, Factory, GraphQLCall

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    __typename
    ... on LoginSuccess { token expiresInSeconds user { email organization { name } } }
    ... on UserError { message code field }
  }
}
"""
VIEWER = "{ viewer { email isAdmin organization { slug } } }"


async def test_login_with_right_password_gives_working_token(
    graphql: GraphQLCall, factory: Factory, db: AsyncSession
) -> None:
    acct = await factory.account(org="Login Works Inc")
    before = await db.scalar(select(func.count()).select_from(ApiToken))
    data = (
        await graphql(LOGIN, {"email": acct.user.email.upper(), "password": acct.password})
    ).ok()
    assert data["login"]["__typename"] == "LoginSuccess"
    assert data["login"]["user"]["email"] == acct.user.email
    assert data["login"]["expiresInSeconds"] == 14 * 24 * 3600
    token = data["login"]["token"]
    assert token.startswith("tls_")
    assert await db.scalar(select(func.count()).select_from(ApiToken)) == before + 1
    viewer = (await graphql(VIEWER, token=token)).ok()["viewer"]
    assert viewer == {
        "email": acct.user.email,
        "isAdmin": False,
        "organization": {"slug": "login-works-inc"},
    }
    # Only the keyed hash is stored, never the token.
    stored = await db.scalar(select(ApiToken.token_hash).where(ApiToken.prefix == token[:10]))
    assert stored == service.hash_token(SECRET, token)
    assert token.encode() not in (stored or b"")


async def test_login_with_wrong_password_is_typed_error_and_creates_nothing(
    graphql: GraphQLCall, factory: Factory, db: AsyncSession
) -> None:
    acct = await factory.account()
    before = await db.scalar(select(func.count()).select_from(ApiToken))
    for email, password in [(acct.user.email, "wrong password!"), ("nobody@x.test", "whatever1")]:
        resp = await graphql(LOGIN, {"email": email, "password": password})
        assert resp.status == 200
        assert resp.data["login"] == {
            "__typename": "InvalidCredentialsError",
            "message": "invalid email or password",
            "code": "INVALID_CREDENTIALS",
            "field": "password",
        }
    assert await db.scalar(select(func.count()).select_from(ApiToken)) == before


async def test_viewer_is_null_without_token(graphql: GraphQLCall) -> None:
    assert (await graphql(VIEWER)).ok() == {"viewer": None}


async def test_revoked_token_is_refused(
    graphql: GraphQLCall, factory: Factory, db: AsyncSession
) -> None:
    acct = await factory.account()
    assert (await graphql(VIEWER, token=acct.token)).ok()["viewer"]["email"] == acct.user.email
    token_id = await db.scalar(
        select(ApiToken.id).where(ApiToken.token_hash == service.hash_token(SECRET, acct.token))
    )
    assert token_id is not None
    assert await service.revoke_token(db, token_id=token_id, user_id=acct.user.id) is True
    await db.commit()
    resp = await graphql(VIEWER, token=acct.token)
    assert resp.status == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert resp.data is None
    # Revoking twice reports that nothing changed.
    assert await service.revoke_token(db, token_id=token_id, user_id=acct.user.id) is False


async def test_expired_token_is_refused(
    graphql: GraphQLCall, factory: Factory, db: AsyncSession
) -> None:
    acct = await factory.account()
    issued = await service.issue_token(
        db, user=acct.user, secret_key=SECRET, kind="api", expires_in=timedelta(hours=1)
    )
    await db.commit()
    assert (await graphql(VIEWER, token=issued.token)).status == 200
    await db.execute(
        update(ApiToken)
        .where(ApiToken.id == issued.row.id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    resp = await graphql(VIEWER, token=issued.token)
    assert resp.status == 401
    assert resp.errors[0]["message"] == "invalid or expired token"


async def test_unknown_and_malformed_tokens_are_refused(graphql: GraphQLCall) -> None:
    assert (await graphql(VIEWER, token="tla_not-a-real-token")).status == 401
    assert (await graphql(VIEWER, token="x" * 5000)).status == 401
    resp = await graphql(VIEWER, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status == 401
    assert "Bearer" in resp.errors[0]["message"]


async def test_project_role_resolution(factory: Factory, db: AsyncSession) -> None:
    owner = await factory.account()
    project = await factory.project(owner)
    stranger = await factory.account()
    admin = await factory.account(admin=True)
    same_org_admin = await factory.account(admin=True, org=None)

    p_owner = await service.resolve_token(db, token=owner.token, secret_key=SECRET)
    p_stranger = await service.resolve_token(db, token=stranger.token, secret_key=SECRET)
    p_admin = await service.resolve_token(db, token=admin.token, secret_key=SECRET)
    p_other_admin = await service.resolve_token(db, token=same_org_admin.token, secret_key=SECRET)
    assert await service.project_role(db, principal=p_owner, project_id=project.id) == "owner"
    assert await service.project_role(db, principal=p_stranger, project_id=project.id) is None
    # An admin of another organization sees nothing of this one.
    assert await service.project_role(db, principal=p_admin, project_id=project.id) is None
    assert await service.project_role(db, principal=p_other_admin, project_id=project.id) is None
