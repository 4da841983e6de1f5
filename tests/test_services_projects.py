"""Projects, members and roles, comments, and event publishing after commit."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.auth.service import issue_token, resolve_token
from app.comments.service import comment_add, comment_delete, comment_edit
from app.components.service import component_create
from app.db import run_after_commit
from app.events import channel
from app.parameters.models import Parameter
from app.parameters.service import parameter_create, parameter_update
from app.projects.models import Project, ProjectEvent, ProjectMember
from app.projects.service import (
    member_add,
    member_remove,
    member_update,
    project_create,
    project_delete,
    project_update,
)
from tests.conftest import SECRET, Account, Factory
from tests.services_kit import Maker, call, fails, fingerprint, ok, principal

META = RequestMeta(request_id="pubsub", ip="::1", user_agent="pytest")


@dataclass
class Team:
    project_id: uuid.UUID
    owner: Principal
    editor: Principal
    viewer: Principal
    outsider: Principal  # same organization, not a member
    stranger: Principal  # another organization
    owner_account: Account
    param: Parameter


@pytest.fixture
async def team(factory: Factory, sessionmaker: Maker) -> Team:
    org = f"Team Org {uuid.uuid4().hex[:8]}"
    accounts = [await factory.account(org=org) for _ in range(4)]
    owner, editor, viewer, outsider = [await principal(sessionmaker, a) for a in accounts]
    stranger = await principal(sessionmaker, await factory.account())
    project = await ok(sessionmaker, project_create, actor=owner, name="Shared")
    for who, role in ((editor, "editor"), (viewer, "viewer")):
        await ok(
            sessionmaker,
            member_add,
            actor=owner,
            project_id=project.id,
            user_id=who.user_id,
            role=role,
        )
    param = await ok(
        sessionmaker,
        parameter_create,
        actor=editor,
        project_id=project.id,
        symbol="m",
        name="Mass",
        value=1.0,
        unit="kg",
    )
    return Team(project.id, owner, editor, viewer, outsider, stranger, accounts[0], param)


async def test_project_create_makes_owner_and_names_are_unique_per_org(
    factory: Factory, sessionmaker: Maker
) -> None:
    org = f"Uniq Org {uuid.uuid4().hex[:8]}"
    alice = await principal(sessionmaker, await factory.account(org=org))
    bob = await principal(sessionmaker, await factory.account(org=org))
    carol = await principal(sessionmaker, await factory.account())
    project = await ok(sessionmaker, project_create, actor=alice, name=" Orbiter ")
    assert project.name == "Orbiter" and project.event_sequence == 1
    async with sessionmaker() as s:
        member = await s.scalar(select(ProjectMember).where(ProjectMember.project_id == project.id))
        assert member is not None and (member.user_id, member.role) == (alice.user_id, "owner")
        event = await s.scalar(select(ProjectEvent).where(ProjectEvent.project_id == project.id))
        assert event is not None and (event.sequence, event.kind) == (1, "project.created")
        audit = await s.scalar(select(AuditEntry).where(AuditEntry.project_id == project.id))
        assert audit is not None and audit.action == "project.create"
        assert (str(audit.ip), audit.user_agent, audit.actor_id) == (
            "127.0.0.1",
            "pytest",
            alice.user_id,
        )
    dup = await fails(sessionmaker, project_create, actor=bob, name="Orbiter")
    assert (dup.code, dup.field) == ("DUPLICATE", "name")
    await ok(sessionmaker, project_create, actor=carol, name="Orbiter")  # other organization
    error = await fails(sessionmaker, project_create, actor=alice, name="")
    assert (error.code, error.field) == ("VALIDATION_ERROR", "name")
    # Racing creators of one name: one project, the others get DUPLICATE.
    results = await asyncio.gather(
        *(call(sessionmaker, project_create, actor=bob, name="Racer") for _ in range(5))
    )
    codes = sorted(getattr(r, "code", "OK") for r in results)
    assert codes == ["DUPLICATE"] * 4 + ["OK"]


async def test_roles_gate_writes_and_invisible_projects_read_as_missing(
    team: Team, sessionmaker: Maker
) -> None:
    pid, param = team.project_id, team.param
    snapshot = await fingerprint(sessionmaker, pid)
    update = {"parameter_id": param.id, "expected_version": 1, "value": 2.0}
    create = {"project_id": pid, "tag": "X", "name": "X"}
    expectations: list[tuple[Principal, Any, dict[str, Any], str]] = [
        (team.viewer, parameter_update, update, "FORBIDDEN"),
        (team.viewer, component_create, create, "FORBIDDEN"),
        (team.viewer, project_update, {"project_id": pid, "name": "Renamed"}, "FORBIDDEN"),
        (team.editor, project_delete, {"project_id": pid}, "FORBIDDEN"),
        (
            team.editor,
            member_add,
            {"project_id": pid, "user_id": team.outsider.user_id, "role": "viewer"},
            "FORBIDDEN",
        ),
        (team.outsider, parameter_update, update, "NOT_FOUND"),
        (team.stranger, parameter_update, update, "NOT_FOUND"),
        (team.stranger, component_create, create, "NOT_FOUND"),
        (team.stranger, project_delete, {"project_id": pid}, "NOT_FOUND"),
        (
            team.owner,
            member_add,
            {"project_id": pid, "user_id": team.stranger.user_id, "role": "viewer"},
            "NOT_FOUND",
        ),
        (
            team.owner,
            member_add,
            {"project_id": pid, "user_id": team.editor.user_id, "role": "viewer"},
            "DUPLICATE",
        ),
        (
            team.owner,
            member_add,
            {"project_id": pid, "user_id": team.outsider.user_id, "role": "admin"},
            "VALIDATION_ERROR",
        ),
    ]
    for actor, service, kwargs, code in expectations:
        error = await fails(sessionmaker, service, actor=actor, **kwargs)
        assert error.code == code, (service.__name__, actor, error.details())
    # The same message for a missing and an invisible parameter.
    missing = await fails(
        sessionmaker,
        parameter_update,
        actor=team.editor,
        **{**update, "parameter_id": uuid.uuid4()},
    )
    hidden = await fails(sessionmaker, parameter_update, actor=team.stranger, **update)
    assert (missing.code, missing.message) == (hidden.code, hidden.message)

    # A read-only token of an owner cannot write either.
    async with sessionmaker() as s:
        issued = await issue_token(
            s,
            user=team.owner_account.user,
            secret_key=SECRET,
            kind="api",
            scopes=("read",),
        )
        await s.commit()
        read_only = await resolve_token(s, token=issued.token, secret_key=SECRET)
    error = await fails(sessionmaker, parameter_update, actor=read_only, **update)
    assert error.code == "FORBIDDEN"
    assert await fingerprint(sessionmaker, pid) == snapshot

    result = await ok(sessionmaker, parameter_update, actor=team.editor, **update)
    assert result.parameter.version == 2


async def test_members_keep_an_owner_and_owner_deletes_project(
    team: Team, sessionmaker: Maker
) -> None:
    pid, owner = team.project_id, team.owner
    for service, kwargs in (
        (member_update, {"user_id": owner.user_id, "role": "editor"}),
        (member_remove, {"user_id": owner.user_id}),
    ):
        error = await fails(sessionmaker, service, actor=owner, project_id=pid, **kwargs)
        assert error.code == "LAST_OWNER"
    promoted = await ok(
        sessionmaker,
        member_update,
        actor=owner,
        project_id=pid,
        user_id=team.editor.user_id,
        role="owner",
    )
    assert promoted.role == "owner"
    await ok(sessionmaker, member_remove, actor=owner, project_id=pid, user_id=owner.user_id)
    error = await fails(sessionmaker, project_update, actor=owner, project_id=pid, name="Mine")
    assert error.code == "NOT_FOUND"  # no longer a member
    renamed = await ok(
        sessionmaker, project_update, actor=team.editor, project_id=pid, description="new"
    )
    assert renamed.description == "new"
    deleted = await ok(sessionmaker, project_delete, actor=team.editor, project_id=pid)
    assert deleted.deleted_at is not None
    error = await fails(
        sessionmaker,
        parameter_update,
        actor=team.editor,
        parameter_id=team.param.id,
        expected_version=1,
        value=3.0,
    )
    assert error.code == "NOT_FOUND"
    # The name is free again in the organization.
    await ok(sessionmaker, project_create, actor=team.editor, name="Shared")


async def test_comments_threads_and_who_may_edit_or_delete(
    team: Team, sessionmaker: Maker, factory: Factory
) -> None:
    pid = team.project_id
    target = {"target_type": "parameter", "target_id": team.param.id}
    first = await ok(sessionmaker, comment_add, actor=team.editor, body="Check this", **target)
    assert (first.project_id, first.author_id) == (pid, team.editor.user_id)
    reply = await ok(
        sessionmaker, comment_add, actor=team.owner, body="Done", parent_id=first.id, **target
    )
    assert reply.parent_id == first.id
    on_project = await ok(
        sessionmaker,
        comment_add,
        actor=team.editor,
        target_type="project",
        target_id=pid,
        body="Kick-off",
    )
    snapshot = await fingerprint(sessionmaker, pid)
    errors: list[tuple[Principal, Any, dict[str, Any], str, str | None]] = [
        (team.viewer, comment_add, {**target, "body": "hi"}, "FORBIDDEN", None),
        (team.stranger, comment_add, {**target, "body": "hi"}, "NOT_FOUND", "targetId"),
        (
            team.editor,
            comment_add,
            {"target_type": "component", "target_id": team.param.id, "body": "hi"},
            "NOT_FOUND",
            "targetId",
        ),
        (
            team.editor,
            comment_add,
            {"target_type": "project", "target_id": pid, "body": "x", "parent_id": first.id},
            "VALIDATION_ERROR",
            "parentId",
        ),
        (team.editor, comment_add, {**target, "body": "   "}, "VALIDATION_ERROR", "body"),
        (team.editor, comment_add, {**target, "body": "x" * 20_001}, "VALIDATION_ERROR", "body"),
        (team.owner, comment_edit, {"comment_id": first.id, "body": "mine"}, "FORBIDDEN", None),
        (team.owner, comment_edit, {"comment_id": uuid.uuid4(), "body": "?"}, "NOT_FOUND", "id"),
        (team.editor, comment_delete, {"comment_id": reply.id}, "FORBIDDEN", None),
    ]
    for actor, service, kwargs, code, field in errors:
        error = await fails(sessionmaker, service, actor=actor, **kwargs)
        assert (error.code, error.field) == (code, field), (service.__name__, error.details())
    assert await fingerprint(sessionmaker, pid) == snapshot

    edited = await ok(sessionmaker, comment_edit, actor=team.editor, comment_id=first.id, body="Re")
    assert edited.body == "Re"
    # The owner may delete anyone's comment; the author their own.
    assert (
        await ok(sessionmaker, comment_delete, actor=team.owner, comment_id=first.id)
    ).deleted_at
    assert (
        await ok(sessionmaker, comment_delete, actor=team.editor, comment_id=on_project.id)
    ).deleted_at


class _BrokenRedis:
    async def publish(self, channel: str, data: bytes) -> int:
        raise ConnectionError("redis is down")


async def test_events_publish_to_redis_only_after_commit(
    team: Team, sessionmaker: Maker, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel(team.project_id))
        subscribed = await pubsub.get_message(timeout=2)
        assert subscribed is not None and subscribed["type"] == "subscribe"
        async with sessionmaker() as s:
            s.info["redis"] = client
            result = await parameter_update(
                s,
                actor=team.editor,
                meta=META,
                parameter_id=team.param.id,
                expected_version=1,
                value=5.0,
            )
            await asyncio.sleep(0.05)
            assert await pubsub.get_message(timeout=0.2) is None  # not before commit
            await s.commit()
            await run_after_commit(s)
        message = await pubsub.get_message(timeout=2)
        assert message is not None and message["type"] == "message"
        event = orjson.loads(message["data"])
        assert result.event is not None
        assert (event["sequence"], event["kind"]) == (result.event.sequence, "parameter.changed")
        assert event["payload"]["edited"][0]["new_value"] == 5.0

        # A failed operation publishes nothing (its hooks are dropped with the rollback).
        error = await call(
            sessionmaker,
            parameter_update,
            info={"redis": client},
            actor=team.editor,
            parameter_id=team.param.id,
            expected_version=1,
            value=6.0,
        )
        assert getattr(error, "code", None) == "VERSION_CONFLICT"
        assert await pubsub.get_message(timeout=0.3) is None

        # Redis down: the commit stands, the error is logged, nothing raises.
        changed = await call(
            sessionmaker,
            parameter_update,
            info={"redis": _BrokenRedis()},
            actor=team.editor,
            parameter_id=team.param.id,
            expected_version=2,
            value=7.0,
        )
        assert not hasattr(changed, "code")
        assert "publishing event parameter.changed" in caplog.text
        async with sessionmaker() as s:
            value = await s.scalar(
                select(Parameter.value_number).where(Parameter.id == team.param.id)
            )
            assert value == 7.0
            seq = await s.scalar(
                select(Project.event_sequence).where(Project.id == team.project_id)
            )
            replay = (
                await s.scalars(
                    select(ProjectEvent.sequence)
                    .where(ProjectEvent.project_id == team.project_id)
                    .order_by(ProjectEvent.sequence)
                )
            ).all()
        assert replay == list(range(1, (seq or 0) + 1))  # gap-free, durable for replay
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
