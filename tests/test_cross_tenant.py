"""Tenant isolation over the real API: organization B never reads or changes A's thread.

Organization A owns a copy of the smallsat demo (plus a few objects with names only A
uses). Organization B has its own copy, an owner of it and an organization admin. B's
principals try every Query field, every Mutation and every Subscription of the
*introspected* schema on A's objects — by global id, by symbol/key/tag, through
`node`/`nodes`, through search and id filters, through nested traversal and through
`after` replay — and must get null / empty / `NotFoundError`, exactly what a random id
that never existed gets (never `ForbiddenError`: that would confirm existence). A
checksum of every row of A's organization, table by table, must not move.

The mutation and subscription lists come from the schema: a new field without a
cross-tenant case here fails `test_every_operation_has_a_cross_tenant_case`. New
tables without a tenant scope fail the checksum.

Also: viewers of A cannot write anything, editors cannot manage members, and
revoked or expired tokens are refused on HTTP (401) and on WebSocket (close 4403).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    build_client_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
    is_required_argument,
)
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import service as auth_service
from app.auth.models import ApiToken, User
from app.demo.load import load_demo
from app.projects.models import ProjectMember
from tests.conftest import SECRET, Factory, LiveServer, _asyncpg_dsn
from tests.test_read_api import gid
from tests.wsclient import GqlWs

# --------------------------------------------------------------------------- checksums

# Tables that hold no tenant data.
NOT_TENANT_DATA = {"alembic_version", "persisted_operations"}
_IN_ORG_PROJECTS = "project_id IN (SELECT id FROM projects WHERE organization_id = $1)"
# How a table's rows belong to an organization, by the first column the table has.
_SCOPE_BY_COLUMN = [
    ("organization_id", "organization_id = $1"),
    ("project_id", _IN_ORG_PROJECTS),
    (
        "parameter_id",
        "parameter_id IN (SELECT id FROM parameters WHERE " + _IN_ORG_PROJECTS + ")",
    ),
    (
        "trade_study_id",
        "trade_study_id IN (SELECT id FROM trade_studies WHERE " + _IN_ORG_PROJECTS + ")",
    ),
    ("team_id", "team_id IN (SELECT id FROM teams WHERE organization_id = $1)"),
    ("user_id", "user_id IN (SELECT id FROM users WHERE organization_id = $1)"),
]
_SCOPE_BY_TABLE = {
    "organizations": "id = $1",
    # Audit rows of the organization's actors and of its projects.
    "audit_log": "organization_id = $1 OR " + _IN_ORG_PROJECTS,
}


async def tenant_checksum(db_url: str, org_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    """``{table: (rows, md5)}`` over every row of the organization, in every table."""
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        columns: dict[str, set[str]] = {}
        for r in await conn.fetch(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        ):
            columns.setdefault(r["table_name"], set()).add(r["column_name"])
        parts = []
        for table in sorted(set(columns) - NOT_TENANT_DATA):
            where = _SCOPE_BY_TABLE.get(table) or next(
                (w for col, w in _SCOPE_BY_COLUMN if col in columns[table]), None
            )
            assert where is not None, (
                f"table {table!r} has no tenant scope in test_cross_tenant: add one "
                "(or list it in NOT_TENANT_DATA)"
            )
            parts.append(
                f"SELECT '{table}' AS tbl, count(*) AS n,"
                f" md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h"
                f" FROM {table} t WHERE {where}"
            )
        rows = await conn.fetch(" UNION ALL ".join(parts), org_id)
        return {r["tbl"]: (r["n"], r["h"]) for r in rows}
    finally:
        await conn.close()


def changed_tables(
    before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]
) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))


# --------------------------------------------------------------------------- the world


def _gid(type_name: str, id_: Any) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


def gid_type(global_id: str) -> str:
    return base64.b64decode(global_id).decode().split(":", 1)[0]


def gid_uuid(global_id: str) -> str:
    return base64.b64decode(global_id).decode().split(":", 1)[1]


@dataclass
class Ids:
    """One tenant's objects as the API names them (global ids, symbols, keys, tags)."""

    org_id: uuid.UUID
    project_uuid: uuid.UUID
    project_name: str
    email: str
    # role → global id: project, user, component, leaf_component, root_component,
    # component_type, connector, parameter, leaf_parameter, requirement,
    # leaf_requirement, trace_link, revision, comment, trade_study, api_token
    g: dict[str, str]
    symbol: str  # a parameter symbol, requirement key and component tag of this tenant
    key: str
    tag: str
    parameter_version: int = 1
    every: list[str] = field(default_factory=list)  # global ids of all its objects

    def ghost(self) -> Ids:
        """The same shape with ids, names and symbols that never existed anywhere."""
        fresh = {
            role: _gid(gid_type(v), uuid.uuid4() if gid_type(v) != "Scenario" else 9_000_000_001)
            for role, v in self.g.items()
        }
        tag = uuid.uuid4().hex[:8]
        return replace(
            self,
            org_id=uuid.uuid4(),
            project_uuid=uuid.UUID(gid_uuid(fresh["project"])),
            project_name=f"No such project {tag}",
            email=f"nobody-{tag}@example.test",
            g=fresh,
            symbol=f"nosuch_{tag}",
            key=f"REQ-NOSUCH-{tag}",
            tag=f"NOSUCH-{tag}",
            every=list(fresh.values()),
        )


@dataclass
class Principal:
    label: str
    token: str
    user_uuid: uuid.UUID


@dataclass
class World:
    a: Ids
    b: Ids
    a_owner: Principal
    b_owner: Principal
    b_admin: Principal
    a_viewer: Principal
    a_editor: Principal
    schema: GraphQLSchema
    db_url: str
    sessionmaker: async_sessionmaker[AsyncSession]

    @property
    def strangers(self) -> list[Principal]:
        return [self.b_owner, self.b_admin]


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, token: str | None, query: str, variables: Any = None) -> dict[str, Any]:
        headers = {"Accept": "application/graphql-response+json, application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert r.status_code == 200, (r.status_code, r.text[:2000])
        body: dict[str, Any] = r.json()
        return body

    async def ok(self, token: str | None, query: str, variables: Any = None) -> Any:
        body = await self.post(token, query, variables)
        assert not body.get("errors"), body
        return body["data"]


MUTATE = """mutation($input: {input_type}!) {{ {name}(input: $input) {{ __typename
  ... on UserError {{ code message field }} {extra} }} }}"""


async def _mutate(
    api: Api, token: str, name: str, input_type: str, inp: dict[str, Any], extra: str = ""
) -> dict[str, Any]:
    doc = MUTATE.format(input_type=input_type, name=name, extra=extra)
    result: dict[str, Any] = (await api.ok(token, doc, {"input": inp}))[name]
    return result


async def _prepare_tenant_a(api: Api, token: str, project: str) -> tuple[str, str, str]:
    """Objects only organization A has: a unique project name, tag, symbol and key."""
    tag = uuid.uuid4().hex[:8]
    r = await _mutate(
        api, token, "projectUpdate", "ProjectUpdateInput", {"id": project, "name": f"Secret {tag}"}
    )
    assert r["__typename"] == "ProjectSuccess", r
    comp_tag, symbol, key = f"SECRET-{tag}", f"secret_{tag}", f"REQ-SECRET-{tag}"
    sel = "... on ComponentSuccess { component { id } }"
    r = await _mutate(
        api,
        token,
        "componentCreate",
        "ComponentCreateInput",
        {"projectId": project, "tag": comp_tag, "name": "Secret unit"},
        sel,
    )
    comp = r["component"]["id"]
    r = await _mutate(
        api,
        token,
        "parameterCreate",
        "ParameterCreateInput",
        {
            "projectId": project,
            "symbol": symbol,
            "name": "Secret mass",
            "number": 1.5,
            "unit": "kg",
            "componentId": comp,
        },
    )
    assert r["__typename"] == "ParameterCreateSuccess", r
    r = await _mutate(
        api,
        token,
        "requirementCreate",
        "RequirementCreateInput",
        {
            "projectId": project,
            "key": key,
            "title": "Secret limit",
            "rule": {"parameterSymbol": symbol, "operator": "LE", "threshold": 2},
        },
    )
    assert r["__typename"] == "RequirementSuccess", r
    return comp_tag, symbol, key


async def _trade_study(api: Api, token: str, project: str) -> None:
    """A DRAFT trade study, through the API (inserted directly where it has no mutation)."""
    body = await api.post(
        token,
        MUTATE.format(input_type="TradeStudyCreateInput", name="tradeStudyCreate", extra=""),
        {
            "input": {
                "projectId": project,
                "name": "Secret sweep",
                "method": "LATIN_HYPERCUBE",
                "variables": [{"symbol": "m_payload", "min": 15, "max": 25}],
                "sampleCount": 8,
            }
        },
    )
    if body.get("errors"):  # an older schema without trade study mutations
        assert "tradeStudyCreate" in body["errors"][0]["message"], body
        return
    result = body["data"]["tradeStudyCreate"]
    assert result["__typename"] == "TradeStudyCreateSuccess", result


async def _comment_and_revision(api: Api, token: str, project: str, name: str) -> None:
    r = await _mutate(
        api, token, "commentAdd", "CommentAddInput", {"targetId": project, "body": "Remark"}
    )
    assert r["__typename"] == "CommentSuccess", r
    r = await _mutate(
        api, token, "revisionCreate", "RevisionCreateInput", {"projectId": project, "name": name}
    )
    assert r["__typename"] == "RevisionCreateSuccess", r


_GID_TYPES = {
    "components": "Component",
    "component_types": "ComponentType",
    "connectors": "Connector",
    "parameters": "Parameter",
    "requirements": "Requirement",
    "trace_links": "TraceLink",
    "revisions": "Revision",
    "comments": "Comment",
    "trade_studies": "TradeStudy",
}


async def _collect_ids(
    db_url: str, project_uuid: uuid.UUID, *, tag: str, symbol: str, key: str
) -> Ids:
    conn = await asyncpg.connect(**_asyncpg_dsn(db_url))
    try:
        proj = await conn.fetchrow("SELECT * FROM projects WHERE id = $1", project_uuid)
        owner = await conn.fetchrow(
            "SELECT u.* FROM users u JOIN project_members m ON m.user_id = u.id"
            " WHERE m.project_id = $1 AND m.role = 'owner' ORDER BY u.created_at LIMIT 1",
            project_uuid,
        )
        if not await conn.fetchval(
            "SELECT count(*) FROM trade_studies WHERE project_id = $1", project_uuid
        ):
            await conn.execute(
                "INSERT INTO trade_studies (project_id, name, method, created_by_id)"
                " VALUES ($1, 'Secret sweep', 'LATIN_HYPERCUBE', $2)",
                project_uuid,
                owner["id"],
            )
        # One evaluated scenario, as a worker stores it (no worker runs in the tests).
        study = await conn.fetchval(
            "SELECT id FROM trade_studies WHERE project_id = $1 LIMIT 1", project_uuid
        )
        scenario = await conn.fetchval(
            "INSERT INTO scenarios (trade_study_id, index, input_hash, inputs)"
            " VALUES ($1, 0, 'h0', ARRAY[20.0]::float8[]) RETURNING id",
            study,
        )

        async def one(sql: str, *args: Any) -> uuid.UUID:
            value = await conn.fetchval(sql, project_uuid, *args)
            assert value is not None, sql
            return uuid.UUID(str(value))

        live = "project_id = $1 AND deleted_at IS NULL"
        g = {
            "project": gid("Project", project_uuid),
            "user": gid("User", owner["id"]),
            "root_component": gid(
                "Component", await one(f"SELECT id FROM components WHERE {live} AND tag = 'SAT'")
            ),
            "component": gid(
                "Component", await one(f"SELECT id FROM components WHERE {live} AND tag = $2", tag)
            ),
            "leaf_component": gid(
                "Component",
                await one(
                    f"SELECT c.id FROM components c WHERE {live} AND NOT EXISTS (SELECT 1 FROM"
                    " components k WHERE k.parent_id = c.id) AND NOT EXISTS (SELECT 1 FROM"
                    " parameters p WHERE p.component_id = c.id) ORDER BY tag LIMIT 1"
                ),
            ),
            "component_type": gid(
                "ComponentType",
                await one(f"SELECT id FROM component_types WHERE {live} ORDER BY code LIMIT 1"),
            ),
            "connector": gid(
                "Connector", await one(f"SELECT id FROM connectors WHERE {live} LIMIT 1")
            ),
            "parameter": gid(
                "Parameter",
                await one(f"SELECT id FROM parameters WHERE {live} AND symbol = 'm_payload'"),
            ),
            "leaf_parameter": gid(
                "Parameter",
                await one(f"SELECT id FROM parameters WHERE {live} AND symbol = $2", symbol),
            ),
            "requirement": gid(
                "Requirement",
                await one(f"SELECT id FROM requirements WHERE {live} AND key = 'REQ-MASS-001'"),
            ),
            "leaf_requirement": gid(
                "Requirement",
                await one(f"SELECT id FROM requirements WHERE {live} AND key = $2", key),
            ),
            "trace_link": gid(
                "TraceLink", await one("SELECT id FROM trace_links WHERE project_id = $1 LIMIT 1")
            ),
            "revision": gid(
                "Revision",
                await one(f"SELECT id FROM revisions WHERE {live} ORDER BY created_at LIMIT 1"),
            ),
            "comment": gid("Comment", await one(f"SELECT id FROM comments WHERE {live} LIMIT 1")),
            "trade_study": gid(
                "TradeStudy", await one(f"SELECT id FROM trade_studies WHERE {live} LIMIT 1")
            ),
            "scenario": _gid("Scenario", scenario),
            "api_token": gid(
                "ApiToken",
                await conn.fetchval(
                    "SELECT id FROM api_tokens WHERE user_id = $1 LIMIT 1", owner["id"]
                ),
            ),
        }
        version = await conn.fetchval(
            "SELECT version FROM parameters WHERE id = $1", uuid.UUID(gid_uuid(g["parameter"]))
        )
        every = list(g.values())
        for table, type_name in _GID_TYPES.items():
            for r in await conn.fetch(
                f"SELECT id FROM {table} WHERE project_id = $1", project_uuid
            ):
                every.append(gid(type_name, r["id"]))
        for r in await conn.fetch(
            "SELECT u.id AS uid, t.id AS tid FROM users u LEFT JOIN api_tokens t"
            " ON t.user_id = u.id WHERE u.organization_id = $1",
            proj["organization_id"],
        ):
            every.append(gid("User", r["uid"]))
            if r["tid"] is not None:
                every.append(gid("ApiToken", r["tid"]))
        return Ids(
            org_id=proj["organization_id"],
            project_uuid=project_uuid,
            project_name=proj["name"],
            email=owner["email"],
            g=g,
            symbol=symbol,
            key=key,
            tag=tag,
            parameter_version=int(version),
            every=sorted(set(every)),
        )
    finally:
        await conn.close()


async def _member(
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Factory,
    org: str,
    project: uuid.UUID,
    role: str,
) -> Principal:
    acct = await factory.account(org=org)
    async with sessionmaker() as s:
        s.add(ProjectMember(project_id=project, user_id=acct.user.id, role=role))
        await s.commit()
    return Principal(f"a-{role}", acct.token, acct.user.id)


async def _introspect(api: Api, token: str) -> GraphQLSchema:
    return build_client_schema(await api.ok(token, get_introspection_query(descriptions=False)))


async def _tenant(
    api: Api, sessionmaker: async_sessionmaker[AsyncSession], db_url: str, side: str
) -> tuple[Principal, Ids, str]:
    """A fresh organization with its own demo project; side "a" adds secret objects."""
    tag = uuid.uuid4().hex[:8]
    org = f"Org {side.upper()} {tag}"
    async with sessionmaker() as s:
        demo = await load_demo(
            s, secret_key=SECRET, email=f"{side}-{tag}@example.test", organization=org
        )
        await s.commit()
    project = gid("Project", demo.project_id)
    if side == "a":
        comp_tag, symbol, key = await _prepare_tenant_a(api, demo.token, project)
    else:
        comp_tag, symbol, key = "SAT", "m_payload", "REQ-MASS-001"
    await _comment_and_revision(api, demo.token, project, name=f"R-{side}")
    await _trade_study(api, demo.token, project)
    ids = await _collect_ids(db_url, demo.project_id, tag=comp_tag, symbol=symbol, key=key)
    return Principal(f"{side}-owner", demo.token, demo.user_id), ids, org


@pytest.fixture(scope="module")
async def world(
    http: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_url: str,
    live_server: LiveServer,
) -> World:
    api = Api(http)
    factory = Factory(sessionmaker)
    a_owner, a, a_org = await _tenant(api, sessionmaker, db_url, "a")
    b_owner, b, b_org = await _tenant(api, sessionmaker, db_url, "b")
    admin = await factory.account(org=b_org, admin=True)
    return World(
        a=a,
        b=b,
        a_owner=a_owner,
        b_owner=b_owner,
        b_admin=Principal("b-admin", admin.token, admin.user.id),
        a_viewer=await _member(sessionmaker, factory, a_org, a.project_uuid, "viewer"),
        a_editor=await _member(sessionmaker, factory, a_org, a.project_uuid, "editor"),
        schema=await _introspect(api, b_owner.token),
        db_url=db_url,
        sessionmaker=sessionmaker,
    )


# --------------------------------------------------------------------------- mutations


@dataclass(frozen=True)
class Attempt:
    """One try at another tenant's objects: ``build(theirs, ours)`` makes the input.

    ``direct`` attempts name only the other tenant's objects (viewers and editors of
    that tenant replay them); the others mix them into the caller's own project.
    """

    label: str
    build: Callable[[Ids, Ids], dict[str, Any]]
    expect: str = "NotFoundError"
    direct: bool = True


def _a(label: str, build: Callable[[Ids, Ids], dict[str, Any]], **kw: Any) -> Attempt:
    return Attempt(label, build, **kw)


def _mixed(label: str, build: Callable[[Ids, Ids], dict[str, Any]], **kw: Any) -> Attempt:
    return Attempt(label, build, direct=False, **kw)


_RULE = {"operator": "LE", "threshold": 1}


def _comment_on(role: str) -> Callable[[Ids, Ids], dict[str, Any]]:
    return lambda t, o: {"targetId": t.g[role], "body": "x"}


_STUDY = {
    "name": "Intruder sweep",
    "method": "LATIN_HYPERCUBE",
    "variables": [{"symbol": "m_payload", "min": 15, "max": 25}],
    "sampleCount": 8,
}
_CONNECT = {"sourcePort": "out", "targetPort": "in", "kind": "POWER"}

# Every mutation of the schema: how another tenant tries it on A's objects.
CASES: dict[str, list[Attempt]] = {
    "login": [
        _a(
            "someone else's email",
            lambda t, o: {"email": t.email, "password": "guess-1234"},
            expect="InvalidCredentialsError",
        )
    ],
    "apiTokenRevoke": [_a("their token", lambda t, o: {"id": t.g["api_token"]})],
    "parameterCreate": [
        _a(
            "in their project",
            lambda t, o: {"projectId": t.g["project"], "symbol": "intruder", "name": "x"},
        ),
        _mixed(
            "on their component",
            lambda t, o: {
                "projectId": o.g["project"],
                "symbol": "intruder",
                "name": "x",
                "componentId": t.g["component"],
            },
        ),
    ],
    "parameterUpdate": [
        _a(
            "their parameter",
            lambda t, o: {
                "id": t.g["parameter"],
                "expectedVersion": t.parameter_version,
                "number": 99,
            },
        ),
        _mixed(
            "formula over their symbol",
            lambda t, o: {
                "id": o.g["leaf_parameter"],
                "expectedVersion": o.parameter_version,
                "formula": f"2 * {t.symbol}",
            },
            expect="FormulaError",
        ),
    ],
    "parameterSetValues": [
        _a(
            "their project",
            lambda t, o: {
                "projectId": t.g["project"],
                "items": [{"symbol": "m_payload", "number": 1}],
            },
        ),
        _mixed(
            "their parameter by id",
            lambda t, o: {
                "projectId": o.g["project"],
                "items": [{"id": t.g["parameter"], "number": 1}],
            },
        ),
        _mixed(
            "their symbol",
            lambda t, o: {
                "projectId": o.g["project"],
                "items": [{"symbol": t.symbol, "number": 1}],
            },
        ),
    ],
    "parameterDelete": [_a("their parameter", lambda t, o: {"id": t.g["leaf_parameter"]})],
    "projectUpdate": [_a("their project", lambda t, o: {"id": t.g["project"], "name": "pwned"})],
    "projectDelete": [_a("their project", lambda t, o: {"id": t.g["project"]})],
    "projectMemberAdd": [
        _a(
            "self into their project",
            lambda t, o: {"projectId": t.g["project"], "userId": o.g["user"], "role": "OWNER"},
        ),
        _a(
            "their user into their project",
            lambda t, o: {"projectId": t.g["project"], "userId": t.g["user"], "role": "VIEWER"},
        ),
        _mixed(
            "their user into own project",
            lambda t, o: {"projectId": o.g["project"], "userId": t.g["user"], "role": "VIEWER"},
        ),
    ],
    "projectMemberUpdate": [
        _a(
            "their owner",
            lambda t, o: {"projectId": t.g["project"], "userId": t.g["user"], "role": "VIEWER"},
        ),
        _mixed(
            "their user in own project",
            lambda t, o: {"projectId": o.g["project"], "userId": t.g["user"], "role": "OWNER"},
        ),
    ],
    "projectMemberRemove": [
        _a("their owner", lambda t, o: {"projectId": t.g["project"], "userId": t.g["user"]}),
        _mixed(
            "their user from own project",
            lambda t, o: {"projectId": o.g["project"], "userId": t.g["user"]},
        ),
    ],
    "componentTypeCreate": [
        _a(
            "in their project",
            lambda t, o: {"projectId": t.g["project"], "code": "INTRUDER", "name": "x"},
        )
    ],
    "componentCreate": [
        _a(
            "in their project",
            lambda t, o: {"projectId": t.g["project"], "tag": "INTRUDER", "name": "x"},
        ),
        _mixed(
            "under their component",
            lambda t, o: {
                "projectId": o.g["project"],
                "tag": "INTRUDER",
                "name": "x",
                "parentId": t.g["root_component"],
            },
        ),
        _mixed(
            "of their type",
            lambda t, o: {
                "projectId": o.g["project"],
                "tag": "INTRUDER",
                "name": "x",
                "typeId": t.g["component_type"],
            },
        ),
    ],
    "componentUpdate": [
        _a("their component", lambda t, o: {"id": t.g["component"], "name": "pwned"}),
        _mixed(
            "own component to their type",
            lambda t, o: {"id": o.g["leaf_component"], "typeId": t.g["component_type"]},
        ),
    ],
    "componentMove": [
        _a("their component", lambda t, o: {"id": t.g["component"], "parentId": None}),
        _mixed(
            "own under theirs",
            lambda t, o: {"id": o.g["leaf_component"], "parentId": t.g["root_component"]},
        ),
        _mixed(
            "theirs under own",
            lambda t, o: {"id": t.g["leaf_component"], "parentId": o.g["root_component"]},
        ),
    ],
    "componentDelete": [_a("their component", lambda t, o: {"id": t.g["leaf_component"]})],
    "connectorCreate": [
        _a(
            "in their project",
            lambda t, o: {
                "projectId": t.g["project"],
                "sourceComponentId": t.g["root_component"],
                "targetComponentId": t.g["leaf_component"],
                **_CONNECT,
            },
        ),
        _mixed(
            "from their component",
            lambda t, o: {
                "projectId": o.g["project"],
                "sourceComponentId": t.g["root_component"],
                "targetComponentId": o.g["leaf_component"],
                **_CONNECT,
            },
        ),
        _mixed(
            "to their component",
            lambda t, o: {
                "projectId": o.g["project"],
                "sourceComponentId": o.g["root_component"],
                "targetComponentId": t.g["leaf_component"],
                **_CONNECT,
            },
        ),
    ],
    "connectorUpdate": [_a("their connector", lambda t, o: {"id": t.g["connector"], "name": "x"})],
    "connectorDelete": [_a("their connector", lambda t, o: {"id": t.g["connector"]})],
    "requirementCreate": [
        _a(
            "in their project",
            lambda t, o: {"projectId": t.g["project"], "key": "REQ-INTRUDER", "title": "x"},
        ),
        _mixed(
            "under their requirement",
            lambda t, o: {
                "projectId": o.g["project"],
                "key": "REQ-INTRUDER",
                "title": "x",
                "parentId": t.g["requirement"],
            },
        ),
        _mixed(
            "rule on their parameter",
            lambda t, o: {
                "projectId": o.g["project"],
                "key": "REQ-INTRUDER",
                "title": "x",
                "rule": {"parameterId": t.g["parameter"], **_RULE},
            },
        ),
        _mixed(
            "rule on their symbol",
            lambda t, o: {
                "projectId": o.g["project"],
                "key": "REQ-INTRUDER",
                "title": "x",
                "rule": {"parameterSymbol": t.symbol, **_RULE},
            },
        ),
    ],
    "requirementUpdate": [
        _a("their requirement", lambda t, o: {"id": t.g["requirement"], "title": "pwned"}),
        _mixed(
            "own under theirs",
            lambda t, o: {"id": o.g["leaf_requirement"], "parentId": t.g["requirement"]},
        ),
        _mixed(
            "own rule on their parameter",
            lambda t, o: {
                "id": o.g["leaf_requirement"],
                "rule": {"parameterId": t.g["parameter"], **_RULE},
            },
        ),
    ],
    "requirementDelete": [_a("their requirement", lambda t, o: {"id": t.g["leaf_requirement"]})],
    "traceLinkCreate": [
        _a(
            "between their objects",
            lambda t, o: {
                "requirementId": t.g["requirement"],
                "kind": "SATISFIED_BY",
                "targetId": t.g["component"],
            },
        ),
        _mixed(
            "their requirement to own component",
            lambda t, o: {
                "requirementId": t.g["requirement"],
                "kind": "SATISFIED_BY",
                "targetId": o.g["component"],
            },
        ),
        _mixed(
            "own requirement to their component",
            lambda t, o: {
                "requirementId": o.g["requirement"],
                "kind": "SATISFIED_BY",
                "targetId": t.g["component"],
            },
        ),
        _mixed(
            "own requirement verified by their parameter",
            lambda t, o: {
                "requirementId": o.g["requirement"],
                "kind": "VERIFIED_BY",
                "targetId": t.g["parameter"],
            },
        ),
        _mixed(
            "own requirement derived from theirs",
            lambda t, o: {
                "requirementId": o.g["requirement"],
                "kind": "DERIVED_FROM",
                "targetId": t.g["requirement"],
            },
        ),
    ],
    "traceLinkDelete": [_a("their link", lambda t, o: {"id": t.g["trace_link"]})],
    "traceLinkSuspectClear": [_a("their link", lambda t, o: {"id": t.g["trace_link"]})],
    "commentAdd": [
        *(
            _a(f"on their {role}", _comment_on(role))
            for role in (
                "project",
                "component",
                "connector",
                "parameter",
                "requirement",
                "trade_study",
                "revision",
            )
        ),
        _mixed(
            "replying to their comment",
            lambda t, o: {"targetId": o.g["project"], "body": "x", "parentId": t.g["comment"]},
        ),
    ],
    "commentEdit": [_a("their comment", lambda t, o: {"id": t.g["comment"], "body": "pwned"})],
    "commentDelete": [_a("their comment", lambda t, o: {"id": t.g["comment"]})],
    "revisionCreate": [
        _a("of their project", lambda t, o: {"projectId": t.g["project"], "name": "INTRUDER"})
    ],
    "tradeStudyCreate": [
        _a(
            "in their project",
            lambda t, o: {"projectId": t.g["project"], **_STUDY},
        ),
        _mixed(
            "over their parameter",
            lambda t, o: {
                "projectId": o.g["project"],
                **_STUDY,
                "variables": [{"parameterId": t.g["parameter"], "min": 1, "max": 2}],
            },
        ),
        _mixed(
            "over their symbol",
            lambda t, o: {
                "projectId": o.g["project"],
                **_STUDY,
                "variables": [{"symbol": t.symbol, "min": 1, "max": 2}],
            },
        ),
    ],
    "tradeStudyUpdate": [
        _a("their study", lambda t, o: {"id": t.g["trade_study"], "name": "pwned"}),
        _mixed(
            "own study over their parameter",
            lambda t, o: {
                "id": o.g["trade_study"],
                "variables": [{"parameterId": t.g["parameter"], "min": 1, "max": 2}],
            },
        ),
    ],
    "tradeStudyStart": [_a("their study", lambda t, o: {"id": t.g["trade_study"]})],
    "tradeStudyCancel": [_a("their study", lambda t, o: {"id": t.g["trade_study"]})],
    "scenarioApply": [_a("their scenario", lambda t, o: {"id": t.g["scenario"]})],
}
# Mutations with no object to name: they act on the caller's own account or
# organization. Checked to succeed there and leave the other tenant untouched.
OWN_SCOPE = {"logout", "apiTokenCreate", "projectCreate"}
# Account-level mutations a project viewer may legitimately call.
ACCOUNT_LEVEL = OWN_SCOPE | {"login"}


def _input_type(schema: GraphQLSchema, mutation: str) -> str | None:
    assert schema.mutation_type is not None
    arg = schema.mutation_type.fields[mutation].args.get("input")
    return None if arg is None else str(arg.type).rstrip("!")


async def _attempt(
    api: Api, schema: GraphQLSchema, token: str, mutation: str, inp: dict[str, Any]
) -> dict[str, Any]:
    input_type = _input_type(schema, mutation)
    assert input_type is not None, mutation
    return await _mutate(api, token, mutation, input_type, inp)


def _normalized(result: dict[str, Any], theirs: Ids) -> tuple[Any, ...]:
    """The result with the other tenant's (or the ghost's) identifiers blanked out."""
    message = str(result.get("message"))
    names = {**theirs.g, "symbol": theirs.symbol, "key": theirs.key, "tag": theirs.tag}
    names |= {"email": theirs.email, "project_name": theirs.project_name}
    for role, value in list(names.items()):
        if role in theirs.g and len(gid_uuid(value)) >= 32:  # uuids (not small integer ids)
            names[f"{role} uuid"] = gid_uuid(value)
    for role, value in sorted(names.items(), key=lambda kv: -len(kv[1])):
        message = message.replace(value, f"<{role}>")
    return (result["__typename"], result.get("code"), result.get("field"), message)


def test_every_operation_has_a_cross_tenant_case(world: World) -> None:
    schema = world.schema
    assert schema.mutation_type is not None and schema.subscription_type is not None
    mutations = set(schema.mutation_type.fields)
    missing = sorted(mutations - set(CASES) - OWN_SCOPE)
    assert not missing, f"mutations without a cross-tenant case: {missing}"
    assert not (set(CASES) | OWN_SCOPE) - mutations, "cases for mutations that no longer exist"
    for name, attempts in CASES.items():
        if name not in ACCOUNT_LEVEL:
            assert any(a.direct for a in attempts), f"{name}: no direct attempt"
    missing = sorted(set(schema.subscription_type.fields) - set(SUBSCRIPTION_CASES))
    assert not missing, f"subscriptions without a cross-tenant case: {missing}"
    missing = sorted(set(schema.query_type.fields) - set(QUERY_FIELDS_COVERED))  # type: ignore[union-attr]
    assert not missing, f"Query fields without a cross-tenant case: {missing}"


async def test_other_tenant_mutations_find_nothing_and_change_nothing(
    world: World, http: httpx.AsyncClient
) -> None:
    api, a, b = Api(http), world.a, world.b
    before = await tenant_checksum(world.db_url, a.org_id)
    failures: list[str] = []
    for name in sorted(set(CASES) & set(world.schema.mutation_type.fields)):  # type: ignore[union-attr]
        for attempt in CASES[name]:
            for who in world.strangers:
                real = await _attempt(api, world.schema, who.token, name, attempt.build(a, b))
                ghost_ids = a.ghost()
                ghost = await _attempt(
                    api, world.schema, who.token, name, attempt.build(ghost_ids, b)
                )
                label = f"{name} [{attempt.label}] as {who.label}"
                if real["__typename"] != attempt.expect:
                    failures.append(f"{label}: got {real}")
                elif _normalized(real, a) != _normalized(ghost, ghost_ids):
                    failures.append(f"{label}: distinguishable from a missing id: {real} {ghost}")
        after = await tenant_checksum(world.db_url, a.org_id)
        if after != before:
            failures.append(f"{name} changed tenant A's rows in {changed_tables(before, after)}")
            before = after
    assert not failures, "\n".join(failures)


async def test_own_scope_mutations_stay_in_the_callers_organization(
    world: World, http: httpx.AsyncClient
) -> None:
    api, a = Api(http), world.a
    before = await tenant_checksum(world.db_url, a.org_id)
    for who in world.strangers:
        # A project named exactly like A's secret one: names are unique per organization,
        # so this must not collide (a DuplicateError would reveal A's project name).
        name = a.project_name if who is world.b_owner else f"{a.project_name} ({who.label})"
        data = await api.ok(
            who.token,
            """mutation($input: ProjectCreateInput!) { projectCreate(input: $input) {
              __typename ... on ProjectSuccess { project { id name } } } }""",
            {"input": {"name": name}},
        )
        assert data["projectCreate"]["__typename"] == "ProjectSuccess", data
        created = data["projectCreate"]["project"]["id"]
        assert created != a.g["project"]
        r = await _attempt(api, world.schema, who.token, "projectDelete", {"id": created})
        assert r["__typename"] == "ProjectDeleteSuccess", r
        r = await _attempt(api, world.schema, who.token, "apiTokenCreate", {"name": "own"})
        assert r["__typename"] == "ApiTokenCreateSuccess", r
        async with world.sessionmaker() as s:
            user = await s.get(User, who.user_uuid)
            assert user is not None
            issued = await auth_service.issue_token(
                s, user=user, secret_key=SECRET, kind="session", name="to log out"
            )
            await s.commit()
        data = await api.ok(issued.token, "mutation { logout { __typename } }")
        assert data == {"logout": {"__typename": "LogoutSuccess"}}
    assert await tenant_checksum(world.db_url, a.org_id) == before


# --------------------------------------------------------------------------- reads

# The Query fields the read tests below exercise (a new one must be added there).
QUERY_FIELDS_COVERED = {
    "viewer",
    "projects",
    "project",
    "revisionDiff",
    "tradeStudy",
    "node",
    "nodes",
}


# Values for required arguments of fields the traversal selects.
def _required_args(theirs: Ids) -> dict[tuple[str, str, str], str]:
    return {
        ("Project", "parameter", "symbol"): json.dumps(theirs.symbol),
        ("Project", "requirement", "key"): json.dumps(theirs.key),
        ("Project", "component", "tag"): json.dumps(theirs.tag),
    }


def _selection(
    schema: GraphQLSchema,
    type_: GraphQLNamedType,
    depth: int,
    args: dict[tuple[str, str, str], str],
    keep: Callable[[str, Any], bool] = lambda name, t: True,
) -> str:
    """Every field of ``type_`` (and below, to ``depth`` object levels), generated."""
    type_ = get_named_type(type_)
    if isinstance(type_, GraphQLUnionType):
        members = schema.get_possible_types(type_)

        def same_everywhere(name: str, t: Any) -> bool:
            # Fields of the same name must have the same type across a union's members.
            return all(str(m.fields[name].type) == str(t) for m in members if name in m.fields)

        inner = " ".join(
            f"... on {m.name} {{ {_selection(schema, m, depth, args, same_everywhere)} }}"
            for m in members
        )
        return f"__typename {inner}"
    assert isinstance(type_, GraphQLObjectType), type_
    parts = ["__typename"]
    for name, fdef in type_.fields.items():
        if not keep(name, fdef.type):
            continue
        values = []
        for arg_name, arg in fdef.args.items():
            if (type_.name, name, arg_name) in args:
                values.append(f"{arg_name}: {args[(type_.name, name, arg_name)]}")
            elif arg_name == "first":
                values.append("first: 3")
            elif is_required_argument(arg):
                values.append(f"{arg_name}: {_fallback(arg.type, args)}")
        call = f"{name}({', '.join(values)})" if values else name
        field_type = get_named_type(fdef.type)
        if is_leaf_type(field_type):
            parts.append(call)
        elif depth > 0:
            parts.append(f"{call} {{ {_selection(schema, field_type, depth - 1, args)} }}")
    return " ".join(parts)


def _fallback(type_: Any, args: dict[tuple[str, str, str], str]) -> str:
    """A value for a required argument the traversal has no specific one for: the other
    tenant's symbol for strings (must find nothing), 0 for numbers."""
    named = get_named_type(type_)
    if named.name in ("Int", "Float"):
        return "0"
    if named.name == "Boolean":
        return "false"
    if isinstance(named, GraphQLEnumType):
        return str(next(iter(named.values)))
    return args[("Project", "parameter", "symbol")]


def _token_count(document: str) -> int:
    from graphql.language import Lexer, Source, TokenKind

    lexer, n = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        n += 1
    return n


def _only(name: str) -> Callable[[str, Any], bool]:
    return lambda n, t: n == name


def _project_field_queries(
    schema: GraphQLSchema, args: dict[tuple[str, str, str], str]
) -> Iterator[tuple[str, str]]:
    """One query per Project field, as deep as the token limit allows."""
    project = schema.get_type("Project")
    assert isinstance(project, GraphQLObjectType)
    for name in project.fields:
        for depth in (4, 3, 2, 1, 0):
            body = _selection(schema, project, depth, args, _only(name))
            document = f"query($p: ID!) {{ project(id: $p) {{ {body} }} }}"
            if _token_count(document) < 4500:
                break
        yield name, document


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _leaks(data: Any, theirs: Ids) -> list[str]:
    """Strings of a response that name the other tenant's objects."""
    secrets_ = set(theirs.every) | {gid_uuid(g) for g in theirs.every}
    secrets_ |= {theirs.email, theirs.project_name, theirs.symbol, theirs.key, theirs.tag}
    secrets_ |= {str(theirs.org_id)}
    found = []
    for s in _strings(data):
        if s in secrets_ or any(x in s for x in (theirs.symbol, theirs.key, theirs.email)):
            found.append(s)
    return found


async def test_other_tenant_reads_find_nothing(world: World, http: httpx.AsyncClient) -> None:
    api, a, b, schema = Api(http), world.a, world.b, world.schema
    before = await tenant_checksum(world.db_url, a.org_id)
    project_type = schema.get_type("Project")
    assert project_type is not None
    everything = _selection(schema, project_type, 2, _required_args(a))
    for who in world.strangers:
        # By global id: project, node, nodes (alone and mixed with the caller's own).
        data = await api.ok(
            who.token,
            f"query($p: ID!) {{ project(id: $p) {{ {everything} }} }}",
            {"p": a.g["project"]},
        )
        assert data == {"project": None}
        for role, global_id in a.g.items():
            type_name = gid_type(global_id)
            t = schema.get_type(type_name)
            inner = (
                f"... on {type_name} {{ {_selection(schema, t, 1, _required_args(a))} }}"
                if isinstance(t, GraphQLObjectType)
                else ""
            )
            data = await api.ok(
                who.token,
                f"query($id: ID!) {{ node(id: $id) {{ id {inner} }} }}",
                {"id": global_id},
            )
            assert data == {"node": None}, (who.label, role, data)
        mine = [b.g["project"], b.g["requirement"], b.g["parameter"]]
        ids = [x for pair in itertools.zip_longest(a.every, mine) for x in pair if x]
        data = await api.ok(
            who.token, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}
        )
        got = {i: n for i, n in zip(ids, data["nodes"], strict=True)}
        assert all(got[i] is None for i in a.every), (who.label, got)
        assert all(got[i] == {"id": i} for i in mine), (who.label, got)
        # Lists and search filters.
        data = await api.ok(
            who.token,
            """query($s: String) { all: projects(first: 500) { totalCount nodes { id name } }
              found: projects(filter: {search: $s}) { totalCount nodes { id } } }""",
            {"s": a.project_name},
        )
        assert data["found"] == {"totalCount": 0, "nodes": []}, data
        assert a.g["project"] not in {n["id"] for n in data["all"]["nodes"]}
        assert not _leaks(data, a)
        # revisionDiff from/to their revisions, alone and against the caller's own.
        for frm, to in (
            (a.g["revision"], None),
            (a.g["revision"], b.g["revision"]),
            (b.g["revision"], a.g["revision"]),
        ):
            data = await api.ok(
                who.token,
                """query($f: ID!, $t: ID) { revisionDiff(from: $f, to: $t) { fromSequence
                  parameters { added { id key } removed { id key } changed { id key } } } }""",
                {"f": frm, "t": to},
            )
            assert data == {"revisionDiff": None}, (frm, to, data)
        # Trade studies by id, where the schema has the field.
        study_type = schema.get_type("TradeStudy")
        if "tradeStudy" in schema.query_type.fields and isinstance(study_type, GraphQLObjectType):  # type: ignore[union-attr]
            sel = _selection(schema, study_type, 2, _required_args(a))
            data = await api.ok(
                who.token,
                f"query($id: ID!) {{ tradeStudy(id: $id) {{ {sel} }} }}",
                {"id": a.g["trade_study"]},
            )
            assert data == {"tradeStudy": None}, data
        # viewer is the caller, with the caller's organization and tokens only.
        data = await api.ok(
            who.token,
            "{ viewer { id email organization { id name slug } apiTokens(includeRevoked: true)"
            " { id name } } }",
        )
        assert data["viewer"]["id"] == gid("User", who.user_uuid)
        assert data["viewer"]["organization"]["id"] == str(b.org_id)
        assert not _leaks(data, a)
    assert await tenant_checksum(world.db_url, a.org_id) == before


async def test_own_project_lookups_filters_and_traversal_never_reach_the_other_tenant(
    world: World, http: httpx.AsyncClient
) -> None:
    """Every Project field of the caller's own project, generated from the schema, with
    A's symbol/key/tag as lookups and A's ids and names in every filter."""
    api, a, b, schema = Api(http), world.a, world.b, world.schema
    before = await tenant_checksum(world.db_url, a.org_id)
    project = schema.get_type("Project")
    assert isinstance(project, GraphQLObjectType)
    for who in world.strangers:
        # Lookups by A's symbol, key and tag in B's own project find nothing.
        for name, document in _project_field_queries(schema, _required_args(a)):
            data = await api.ok(who.token, document, {"p": b.g["project"]})
            assert not _leaks(data, a), (who.label, name, _leaks(data, a))
            if name in ("parameter", "requirement", "component"):
                assert data["project"][name] is None, (name, data)
        # The same with B's own identifiers finds B's objects, and only B's.
        own = {
            ("Project", "parameter", "symbol"): '"m_payload"',
            ("Project", "requirement", "key"): '"REQ-MASS-001"',
            ("Project", "component", "tag"): '"SAT"',
        }
        for name, document in _project_field_queries(schema, own):
            data = await api.ok(who.token, document, {"p": b.g["project"]})
            assert not _leaks(data, a), (who.label, name, _leaks(data, a))
        assert data["project"] is not None
        # Every id and search field of every filter argument, set to A's.
        for name, fdef in project.fields.items():
            for arg_name, arg in fdef.args.items():
                arg_type = get_named_type(arg.type)
                if not isinstance(arg_type, GraphQLInputObjectType):
                    continue
                for fname, ffield in arg_type.fields.items():
                    value = _filter_value(arg_type.name, fname, get_named_type(ffield.type), a)
                    if value is None:
                        continue
                    document = (
                        f"query($p: ID!, $v: {get_named_type(ffield.type)}) {{ project(id: $p)"
                        f" {{ {name}({arg_name}: {{{fname}: $v}}) {{ totalCount }} }} }}"
                    )
                    data = await api.ok(who.token, document, {"p": b.g["project"], "v": value})
                    assert data["project"][name]["totalCount"] == 0, (name, fname, data)
    assert await tenant_checksum(world.db_url, a.org_id) == before


# Which of A's ids each id-typed filter field gets.
FILTER_IDS = {
    ("ParameterFilter", "component"): "component",
    ("ParameterFilter", "subtreeOf"): "root_component",
    ("ComponentFilter", "subtreeOf"): "root_component",
    ("ConnectorFilter", "component"): "root_component",
    ("AuditLogFilter", "actor"): "user",
}


def _filter_value(input_type: str, name: str, type_: GraphQLNamedType, a: Ids) -> str | None:
    if type_.name == "ID":
        role = FILTER_IDS.get((input_type, name))
        assert role is not None, f"{input_type}.{name}: add a cross-tenant filter case"
        return a.g[role]
    if name == "search":
        return {
            "ParameterFilter": a.symbol,
            "RequirementFilter": a.key,
            "ComponentFilter": a.tag,
            "ProjectFilter": a.project_name,
        }[input_type]
    return None


# --------------------------------------------------------------------------- subscriptions

# Every subscription of the schema: the arguments another tenant tries.
SUBSCRIPTION_CASES: dict[str, list[Callable[[Ids], dict[str, Any]]]] = {
    "projectEvents": [
        lambda t: {"projectId": t.g["project"], "after": 0},
        lambda t: {"projectId": t.g["project"]},
    ],
    "parameterChanged": [
        lambda t: {"projectId": t.g["project"], "after": 0},
        lambda t: {"projectId": t.g["project"], "after": 0, "symbols": [t.symbol, "m_wet"]},
        lambda t: {"projectId": t.g["project"]},
    ],
    "tradeStudyProgress": [lambda t: {"id": t.g["trade_study"]}],
}


def _subscription_document(schema: GraphQLSchema, name: str, variables: dict[str, Any]) -> str:
    assert schema.subscription_type is not None
    fdef = schema.subscription_type.fields[name]
    decl = ", ".join(f"${n}: {fdef.args[n].type}" for n in variables)
    call = ", ".join(f"{n}: ${n}" for n in variables)
    sel = _selection(schema, get_named_type(fdef.type), 1, {})
    return f"subscription({decl}) {{ {name}({call}) {{ {sel} }} }}"


async def _drain(client: GqlWs, op: str, wait: float = 1.5) -> list[dict[str, Any]]:
    """Messages of an operation until it completes, or until ``wait`` s of silence."""
    messages: list[dict[str, Any]] = []
    while True:
        try:
            msg = await client.next(op, wait=wait)
        except TimeoutError:
            return messages
        messages.append(msg)
        if msg["type"] in ("complete", "error"):
            return messages


def _refusal(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    """The error messages a refused subscription got; fails on any data."""
    assert messages, "no answer at all"
    errors: list[str] = []
    for msg in messages:
        if msg["type"] == "next":
            assert msg["payload"].get("data") is None, msg
            errors += [e["message"] for e in msg["payload"].get("errors") or []]
        elif msg["type"] == "error":
            errors += [e["message"] for e in msg["payload"]]
    assert errors, messages
    return tuple(errors)


async def test_other_tenant_subscriptions_and_replay_get_nothing(
    world: World, http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    api, a, b, schema = Api(http), world.a, world.b, world.schema
    assert schema.subscription_type is not None
    before = await tenant_checksum(world.db_url, a.org_id)
    own: list[tuple[GqlWs, str]] = []
    clients = []
    for who in world.strangers:
        client = await GqlWs.connect(live_server.base_url, who.token)
        clients.append(client)
        assert await client.acked()
        for name in sorted(set(SUBSCRIPTION_CASES) & set(schema.subscription_type.fields)):
            for build in SUBSCRIPTION_CASES[name]:
                ghost_ids = a.ghost()
                real_vars, ghost_vars = build(a), build(ghost_ids)
                doc = _subscription_document(schema, name, real_vars)
                real = _refusal(await _drain(client, await client.subscribe(doc, real_vars)))
                ghost = _refusal(await _drain(client, await client.subscribe(doc, ghost_vars)))
                assert real == ghost, (who.label, name, real_vars, real, ghost)
        # The caller's own project, replayed from the start: only its own events.
        doc = _subscription_document(schema, "projectEvents", {"projectId": 1, "after": 0})
        op = await client.subscribe(doc, {"projectId": b.g["project"], "after": 0})
        replay = await _drain(client, op)
        assert replay and all(m["type"] == "next" for m in replay), replay[:3]
        assert {m["payload"]["data"]["projectEvents"]["projectId"] for m in replay} == {
            b.g["project"]
        }
        assert not _leaks(replay, a)
        own.append((client, op))
    assert await tenant_checksum(world.db_url, a.org_id) == before
    # A edits its thread: nothing of it reaches B's open subscriptions.
    r = await _attempt(
        api,
        schema,
        world.a_owner.token,
        "parameterUpdate",
        {"id": a.g["parameter"], "expectedVersion": a.parameter_version, "number": 21.5},
    )
    assert r["__typename"] == "ParameterChangeSuccess", r
    for client, op in own:
        assert await _drain(client, op, wait=1.0) == []
        await client.close()


# --------------------------------------------------------------------------- roles in A


async def test_viewers_cannot_write_anything(world: World, http: httpx.AsyncClient) -> None:
    api, viewer = Api(http), world.a_viewer
    before = await tenant_checksum(world.db_url, world.a.org_id)
    failures = []
    for name in sorted(set(CASES) - ACCOUNT_LEVEL):
        for attempt in CASES[name]:
            if not attempt.direct:
                continue
            r = await _attempt(
                api, world.schema, viewer.token, name, attempt.build(world.a, world.b)
            )
            # Tokens are private to their user: someone else's does not exist for you.
            expect = "NotFoundError" if name == "apiTokenRevoke" else "ForbiddenError"
            if r["__typename"] != expect:
                failures.append(f"{name} [{attempt.label}]: {r}")
    assert not failures, "\n".join(failures)
    after = await tenant_checksum(world.db_url, world.a.org_id)
    # Only the audit trail of the refused attempts grew.
    assert changed_tables(before, after) in ([], ["audit_log"])
    await _assert_only_denials_audited(world, viewer, before["audit_log"][0], after["audit_log"][0])


async def _assert_only_denials_audited(
    world: World, who: Principal, rows_before: int, rows_after: int
) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(world.db_url))
    try:
        rows = await conn.fetch(
            "SELECT action, actor_id FROM audit_log WHERE organization_id = $1"
            " ORDER BY id DESC LIMIT $2",
            world.a.org_id,
            rows_after - rows_before,
        )
    finally:
        await conn.close()
    assert {(r["action"], r["actor_id"]) for r in rows} <= {("authz.denied", who.user_uuid)}


async def test_editors_cannot_manage_members(world: World, http: httpx.AsyncClient) -> None:
    api, a, editor = Api(http), world.a, world.a_editor
    before = await tenant_checksum(world.db_url, a.org_id)
    calls = {
        "projectMemberAdd": {
            "projectId": a.g["project"],
            "userId": gid("User", world.a_viewer.user_uuid),
            "role": "OWNER",
        },
        "projectMemberUpdate": {
            "projectId": a.g["project"],
            "userId": gid("User", world.a_viewer.user_uuid),
            "role": "EDITOR",
        },
        "projectMemberRemove": {"projectId": a.g["project"], "userId": a.g["user"]},
    }
    self_promotion = {
        "projectId": a.g["project"],
        "userId": gid("User", editor.user_uuid),
        "role": "OWNER",
    }
    for name, inp in [*calls.items(), ("projectMemberUpdate", self_promotion)]:
        r = await _attempt(api, world.schema, editor.token, name, inp)
        assert r["__typename"] == "ForbiddenError", (name, r)
    after = await tenant_checksum(world.db_url, a.org_id)
    assert changed_tables(before, after) in ([], ["audit_log"])
    await _assert_only_denials_audited(world, editor, before["audit_log"][0], after["audit_log"][0])
    # Even A's owner cannot make B's users members of A's project: they do not exist for A.
    for who in (world.b_owner, world.b_admin):
        r = await _attempt(
            api,
            world.schema,
            world.a_owner.token,
            "projectMemberAdd",
            {"projectId": a.g["project"], "userId": gid("User", who.user_uuid), "role": "VIEWER"},
        )
        assert r["__typename"] == "NotFoundError", r


# --------------------------------------------------------------------------- bad tokens


async def test_revoked_and_expired_tokens_are_refused_on_http_and_websocket(
    world: World, http: httpx.AsyncClient, live_server: LiveServer, factory: Factory
) -> None:
    api = Api(http)
    acct = await factory.account()
    async with world.sessionmaker() as s:
        user = await s.get(User, acct.user.id)
        assert user is not None
        expiring = await auth_service.issue_token(
            s, user=user, secret_key=SECRET, kind="api", expires_in=timedelta(hours=1)
        )
        session_token = await auth_service.issue_token(
            s, user=user, secret_key=SECRET, kind="session", name="s"
        )
        await s.commit()
    tokens = {"api": acct.token, "expiring": expiring.token, "session": session_token.token}
    for token in tokens.values():  # all good to begin with
        assert (await api.ok(token, "{ viewer { id } }"))["viewer"]
    # Revoke the API token through the API, log the session out, expire the third.
    listed = await api.ok(acct.token, "{ viewer { apiTokens { id name } } }")
    token_id = next(t["id"] for t in listed["viewer"]["apiTokens"] if t["name"] == "test")
    r = await _attempt(api, world.schema, acct.token, "apiTokenRevoke", {"id": token_id})
    assert r["__typename"] == "ApiTokenRevokeSuccess", r
    assert (await api.ok(session_token.token, "mutation { logout { __typename } }")) == {
        "logout": {"__typename": "LogoutSuccess"}
    }
    async with world.sessionmaker() as s:
        await s.execute(
            update(ApiToken)
            .where(ApiToken.id == expiring.row.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await s.commit()
    for label, token in tokens.items():
        response = await http.post(
            "/graphql",
            json={"query": "{ viewer { id } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, (label, response.status_code, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.json().get("data") is None
        client = await GqlWs.connect(live_server.base_url, token)
        code, _reason = await asyncio.wait_for(client.closed, 10)
        assert code == 4403, (label, code)
