"""Helpers for service tests: principals, one-transaction calls, demo copies, fingerprints.

``call`` mirrors what the GraphQL layer does around a mutation: one session, the
service, commit (then after-commit hooks) on success, rollback on a DomainError.
``fingerprint`` hashes every row a project owns, so "nothing changed" is checked on
all of them (values, versions, timestamps, history, audit, events), not on a few.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.auth.service import resolve_token
from app.db import discard_after_commit, run_after_commit
from app.demo.load import DemoResult, load_demo
from app.errors import DomainError
from app.parameters.models import Parameter
from app.requirements.models import Requirement
from tests.conftest import SECRET, Account

T = TypeVar("T")
META = RequestMeta(request_id="test-req", ip="127.0.0.1", user_agent="pytest")
Maker = async_sessionmaker[AsyncSession]


async def principal(sessionmaker: Maker, account: Account) -> Principal:
    async with sessionmaker() as s:
        return await resolve_token(s, token=account.token, secret_key=SECRET)


async def call(
    sessionmaker: Maker,
    service: Callable[..., Awaitable[T]],
    /,
    *,
    info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> T | DomainError:
    """Run ``service(session, meta=META, **kwargs)`` in its own transaction."""
    async with sessionmaker() as s:
        s.info.update(info or {})
        try:
            result = await service(s, meta=META, **kwargs)
        except DomainError as exc:
            discard_after_commit(s)
            await s.rollback()
            return exc
        await s.commit()
        await run_after_commit(s)
        return result


async def ok(sessionmaker: Maker, service: Callable[..., Awaitable[T]], /, **kwargs: Any) -> T:
    result = await call(sessionmaker, service, **kwargs)
    assert not isinstance(result, DomainError), result.details()
    return result


async def fails(
    sessionmaker: Maker, service: Callable[..., Awaitable[Any]], /, **kwargs: Any
) -> DomainError:
    result = await call(sessionmaker, service, **kwargs)
    assert isinstance(result, DomainError), f"expected a DomainError, got {result!r}"
    return result


_PROJECT_TABLES = (
    "components",
    "component_types",
    "connectors",
    "parameters",
    "requirements",
    "trace_links",
    "comments",
    "revisions",
    "project_members",
    "project_events",
    "audit_log",
)


async def fingerprint(sessionmaker: Maker, project_id: uuid.UUID) -> dict[str, str]:
    """md5 of every row of each table that belongs to the project (whole rows)."""
    queries = {t: f"SELECT t::text FROM {t} t WHERE project_id = :p" for t in _PROJECT_TABLES}
    queries["projects"] = "SELECT t::text FROM projects t WHERE id = :p"
    owned = "(SELECT id FROM parameters WHERE project_id = :p)"
    queries["parameter_versions"] = (
        f"SELECT t::text FROM parameter_versions t WHERE parameter_id IN {owned}"
    )
    queries["parameter_dependencies"] = (
        f"SELECT t::text FROM parameter_dependencies t WHERE parameter_id IN {owned}"
    )
    out: dict[str, str] = {}
    async with sessionmaker() as s:
        for table, query in queries.items():
            digest = await s.scalar(
                text(
                    f"SELECT md5(coalesce(string_agg(r, '|' ORDER BY r), '')) FROM ({query}) x(r)"
                ),
                {"p": project_id},
            )
            out[table] = str(digest)
    return out


@dataclass
class Demo:
    """A private copy of the demo (own user and organization)."""

    result: DemoResult
    actor: Principal
    account_email: str

    @property
    def project_id(self) -> uuid.UUID:
        return self.result.project_id


async def load_demo_copy(sessionmaker: Maker) -> Demo:
    tag = uuid.uuid4().hex[:10]
    email = f"demo-{tag}@example.test"
    async with sessionmaker() as s:
        result = await load_demo(s, secret_key=SECRET, email=email, organization=f"Demo Org {tag}")
        await s.commit()
    async with sessionmaker() as s:
        actor = await resolve_token(s, token=result.token, secret_key=SECRET)
    return Demo(result=result, actor=actor, account_email=email)


async def param(sessionmaker: Maker, project_id: uuid.UUID, symbol: str) -> Parameter:
    async with sessionmaker() as s:
        row = await s.scalar(
            select(Parameter).where(
                Parameter.project_id == project_id,
                Parameter.symbol == symbol,
                Parameter.deleted_at.is_(None),
            )
        )
        assert row is not None, symbol
        return row


async def requirement(sessionmaker: Maker, project_id: uuid.UUID, key: str) -> Requirement:
    async with sessionmaker() as s:
        row = await s.scalar(
            select(Requirement).where(Requirement.project_id == project_id, Requirement.key == key)
        )
        assert row is not None, key
        return row
