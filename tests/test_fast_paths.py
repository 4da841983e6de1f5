"""Regression guards for the read path's fast paths (see bench/read_bench and issue 8).

Each test fails when a hot path silently falls back to the slow one:

* list fields of the nested read — and the bearer-token lookup before it — build no
  ORM objects (Core rows into plain types), counted with SQLAlchemy's ``load`` event
  during a real HTTP query;
* the nested read costs a constant, small number of SQL statements — through the
  resolvers, and exactly one once the document is compiled (app.graphql.compiled;
  ``tests/test_compiled_reads.py`` checks that the four benchmark queries compile);
* the validation of a repeated operation is served from the cache;
* hot leaf fields are plain attributes or synchronous resolvers, and the executor
  resolves them on its fast path.
"""

from __future__ import annotations

import base64
import inspect
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType
from sqlalchemy import event
from strawberry import relay

from app.db import Base
from app.graphql.extensions import FastExecutionContext, _plan
from app.graphql.schema import build_schema
from app.settings import Settings
from tests.builders import build_thread
from tests.conftest import Factory, GraphQLCall, LiveServer
from tests.conftest import count_statements as statements

# The shape of benchmark query (b): components with all their parameters.
NESTED = """query($id: ID!) { project(id: $id) {
  components(first: 200) { nodes { id tag name
    parameters(first: 50) { nodes { id symbol name number unit formula valueKind } } } } } }"""

# Statements of NESTED: bearer-token lookup, tenant settings (row-level security),
# visible projects, the project row, the components page, all components' parameter
# pages (one statement for every component). Whatever the number of components.
MAX_NESTED_STATEMENTS = 6


def gid(type_name: str, id_: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{id_}".encode()).decode()


@contextmanager
def orm_loads() -> Iterator[list[str]]:
    """Class names of every ORM instance loaded from the database meanwhile."""
    loaded: list[str] = []

    def on_load(target: Any, context: Any) -> None:
        loaded.append(type(target).__name__)

    event.listen(Base, "load", on_load, propagate=True)
    try:
        yield loaded
    finally:
        event.remove(Base, "load", on_load)


@pytest.mark.parametrize("path", ["resolvers", "compiled"])
async def test_nested_read_builds_no_orm_objects_and_constant_statements(
    path: str,
    factory: Factory,
    sessionmaker: Any,
    graphql: GraphQLCall,
    live_server: LiveServer,
    request: pytest.FixtureRequest,
) -> None:
    if path == "resolvers":
        request.getfixturevalue("resolvers_only")
    counts = {}
    for n in (5, 60):
        owner = await factory.account()
        project = await factory.project(owner)
        await build_thread(sessionmaker, project.id, components=n, params_per_component=9)
        variables = {"id": gid("Project", project.id)}
        for _ in range(2):  # warm caches (the first compiles, the second pins a connection)
            await graphql(NESTED, variables, token=owner.token)
        with orm_loads() as loaded, statements(live_server) as sql:
            data = (await graphql(NESTED, variables, token=owner.token)).ok()
        comps = data["project"]["components"]["nodes"]
        assert len(comps) == n + 1
        assert sum(len(c["parameters"]["nodes"]) for c in comps) == n * 10
        assert comps[1]["parameters"]["nodes"][0]["valueKind"] == "NUMBER"
        # The bearer-token lookup included: it reads plain columns through asyncpg.
        assert loaded == [], f"ORM objects built on the read path: {set(loaded)}"
        counts[n] = len(sql)
        compiled = [s for s in sql if "json_build_object" in s]
        if path == "compiled":
            # One statement: the compiled one, on a connection already pinned to this
            # tenant by the warm-up request; it checks the bearer token itself.
            assert len(sql) == 1 and len(compiled) == 1, sql
        else:
            assert compiled == []
    assert counts[5] == counts[60], counts
    assert counts[60] <= MAX_NESTED_STATEMENTS, counts


async def test_repeated_operation_is_validated_once(
    factory: Factory, graphql: GraphQLCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation cache must hit: the limits' rule classes are built once, not per
    request (per-request rule classes made every request a cache miss)."""
    import strawberry.schema.schema as strawberry_schema

    owner = await factory.account()
    project = await factory.project(owner)
    query = f'query Once {{ project(id: "{gid("Project", project.id)}") {{ name }} }}'
    calls = 0
    original = getattr(strawberry_schema, "validate")  # noqa: B009 (not re-exported)

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    # Observes validation (strawberry's validate_document calls it by this name).
    monkeypatch.setattr(strawberry_schema, "validate", counting)
    for _ in range(4):
        assert (await graphql(query, token=owner.token)).ok()["project"] is not None
    assert calls <= 1, f"the same operation was validated {calls} times (cache misses)"


HOT_FIELDS = {
    "Parameter": (
        "id symbol name description valueKind number boolean text unit uncertainty "
        "formula version createdAt updatedAt"
    ),
    "Component": "id tag name description properties graphics version createdAt updatedAt",
    "Requirement": (
        "id key title text priority status verificationMethod compliance margin version "
        "createdAt updatedAt"
    ),
    "Connector": "id kind name properties version",
    "PageInfo": "hasNextPage hasPreviousPage startCursor endCursor",
}


def test_hot_leaf_fields_are_plain_and_on_the_fast_path() -> None:
    schema = build_schema(Settings())
    assert schema.execution_context_class is FastExecutionContext
    for type_name, names in HOT_FIELDS.items():
        gql_type = schema._schema.type_map[type_name]
        assert isinstance(gql_type, GraphQLObjectType)
        for name in names.split():
            field = gql_type.fields[name]
            definition = field.extensions["strawberry-definition"]
            resolver = definition.base_resolver
            assert resolver is None or not inspect.iscoroutinefunction(resolver.wrapped_func), (
                f"{type_name}.{name} became an async resolver"
            )
            assert not definition.is_async, f"{type_name}.{name} became async"
            assert _plan(field).kind in ("attr", "node_id"), (
                f"{type_name}.{name} is off the fast path"
            )
    # Cursors are computed on demand, synchronously.
    edge = schema._schema.type_map["ParameterEdge"]
    assert isinstance(edge, GraphQLObjectType)
    cursor = edge.fields["cursor"].extensions["strawberry-definition"]
    assert not cursor.is_async


async def test_fetch_rows_matches_execute(factory: Factory, sessionmaker: Any) -> None:
    """The asyncpg fast path returns what SQLAlchemy returns, for every parameter value."""
    from sqlalchemy import select

    from app.components.models import Component
    from app.db import _raw_plan
    from app.graphql.loaders import any_of
    from app.parameters.models import Parameter

    owner = await factory.account()
    project = await factory.project(owner)
    thread = await build_thread(sessionmaker, project.id, components=4, params_per_component=3)
    table = Parameter.__table__
    ids = list(thread.param_ids.values())
    async with sessionmaker() as session:
        for chosen in (ids[:1], ids[2:9], ids, [uuid.uuid4()]):
            stmt = select(table).where(any_of(table.c.id, chosen)).order_by(table.c.symbol)
            # Float columns included, a parameter row takes the asyncpg path.
            assert _raw_plan(stmt, session.bind.dialect) is not None
            fast = await session.fetch_rows(stmt)
            slow = (await session.execute(stmt)).mappings().all()
            assert [dict(r) for r in fast] == [dict(r) for r in slow]
        # JSON columns need SQLAlchemy's conversion: the normal path is taken.
        comps = Component.__table__
        rows = await session.fetch_rows(
            select(comps).where(comps.c.project_id == project.id).order_by(comps.c.tag)
        )
        assert rows[0]["tag"] == "C-000" and rows[0]["properties"] == {"mass_kg": 0}


@strawberry.enum
class _Kind(Enum):
    MASS = "mass"
    POWER = "power"


@strawberry.type
class _Item(relay.Node):
    id: relay.NodeID[str]
    name: str
    score: float | None
    kind: _Kind

    @strawberry.field
    def label(self, upper: bool = False) -> str:
        return self.name.upper() if upper else self.name


_GOOD = [_Item(id=str(i), name=f"n{i}", score=i / 3 or None, kind=_Kind.MASS) for i in range(5)]
_BAD = [*_GOOD[:2], _Item(id="x", name=None, score=1.0, kind=_Kind.POWER)]  # type: ignore[arg-type]


@strawberry.type
class _Query:
    @strawberry.field
    def items(self) -> list[_Item]:
        return _GOOD

    @strawberry.field
    def broken(self) -> list[_Item] | None:
        return _BAD


async def test_fast_executor_matches_graphql_core() -> None:
    """Same data and the same errors as graphql-core's own executor, fast path or not."""
    query = """{ items { id name score kind label(upper: true) }
      plain: items { id name score kind } fast: items { id name kind } broken { id name } }"""
    results = []
    for context_class in (None, FastExecutionContext):
        schema = strawberry.Schema(query=_Query, execution_context_class=context_class)
        result = await schema.execute(query)
        results.append((result.data, [e.formatted for e in result.errors or []]))
    assert results[0] == results[1]
    assert results[1][0] is not None and results[1][0]["broken"] is None
    assert results[1][1] and "non-nullable" in results[1][1][0]["message"]


async def test_objects_filled_directly_equal_their_init_construction(
    factory: Factory, sessionmaker: Any
) -> None:
    """``from_row`` of the hot types skips the dataclass ``__init__``: the result must be
    exactly what ``__init__`` would build (every field present, enums as enums)."""
    from sqlalchemy import select

    from app.parameters.models import Parameter as ParameterModel
    from app.parameters.schema import Parameter
    from app.requirements.models import Requirement as RequirementModel
    from app.requirements.schema import Requirement

    owner = await factory.account()
    project = await factory.project(owner)
    await build_thread(sessionmaker, project.id, components=2, params_per_component=3)
    async with sessionmaker() as session:
        for model, cls in ((ParameterModel, Parameter), (RequirementModel, Requirement)):
            table = model.__table__
            rows = await session.fetch_rows(select(table).where(table.c.project_id == project.id))
            assert rows, cls.__name__
            for row in rows:
                direct = cls.from_row(row)
                rebuilt = cls(**vars(direct))
                assert vars(direct) == vars(rebuilt)
                assert direct == rebuilt
