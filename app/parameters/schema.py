"""GraphQL: parameters, their values with units, the formula graph and history."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, func, literal, or_, select
from sqlalchemy.engine import RowMapping
from strawberry import relay

from app.components.models import Component as ComponentModel
from app.graphql.common import (
    After,
    Before,
    First,
    GQLInfo,
    Last,
    args,
    decode_id,
    parse_uuid,
)
from app.graphql.errors import UserError
from app.graphql.loaders import any_of, nested_count, nested_page, rows_of
from app.graphql.pagination import (
    Connection,
    PageArgs,
    SortDirection,
    counter,
    encode_cursor,
    fetch_page,
    to_connection,
)
from app.parameters.models import Parameter as ParameterModel
from app.parameters.models import ParameterDependency as DependencyModel
from app.parameters.models import ParameterVersion as VersionModel
from app.projects.schema import like_pattern

if TYPE_CHECKING:
    from app.auth.schema import User
    from app.components.schema import Component
    from app.projects.schema import Project
    from app.requirements.schema import Requirement

P = ParameterModel.__table__
D = DependencyModel.__table__
V = VersionModel.__table__
C = ComponentModel.__table__


@strawberry.enum(description="The kind of value a parameter holds.")
class ValueKind(Enum):
    NUMBER = strawberry.enum_value("number", description="A number with a unit.")
    BOOLEAN = strawberry.enum_value("boolean", description="true/false.")
    TEXT = strawberry.enum_value("text", description="Free text.")


_VALUE_KINDS = {k.value: k for k in ValueKind}


@strawberry.enum(description="Why a parameter version was written.")
class VersionCause(Enum):
    CREATE = strawberry.enum_value("create", description="The parameter was created.")
    EDIT = strawberry.enum_value("edit", description="Someone edited it.")
    RECOMPUTE = strawberry.enum_value("recompute", description="An input of its formula changed.")
    SCENARIO_APPLIED = strawberry.enum_value(
        "scenario_applied", description="A trade-study scenario was applied."
    )
    IMPORT = strawberry.enum_value("import", description="A bulk import.")
    REVERT = strawberry.enum_value("revert", description="Restored from a revision.")


@strawberry.type(description="A number with its unit (and ± uncertainty in the same unit).")
class Quantity:
    value: float = strawberry.field(description="Magnitude in `unit`.")
    unit: str = strawberry.field(description="Unit symbol; empty for dimensionless.")
    uncertainty: float | None = strawberry.field(description="± uncertainty in `unit`.")


@strawberry.type(description="A boolean parameter's value.")
class BooleanValue:
    value: bool = strawberry.field(description="The value.")


@strawberry.type(description="A text parameter's value.")
class TextValue:
    value: str = strawberry.field(description="The value.")


@strawberry.type(description="The requested unit is not a unit Threadline knows.")
class UnknownUnitError(UserError):
    pass


@strawberry.type(description="The requested unit has another dimension than the parameter's.")
class UnitMismatchError(UserError):
    pass


ParameterValue = Annotated[
    Quantity | BooleanValue | TextValue | UnknownUnitError | UnitMismatchError,
    strawberry.union("ParameterValue", description="A value, or why it cannot be expressed."),
]


@strawberry.type(description="One version of a parameter (history is append-only).")
class ParameterVersion:
    version: int = strawberry.field(description="Version number (1 = created).")
    number: float | None = strawberry.field(description="Numeric value in `unit`.")
    boolean: bool | None = strawberry.field(description="Boolean value.")
    text: str | None = strawberry.field(description="Text value.")
    unit: str = strawberry.field(description="Unit at this version.")
    formula: str | None = strawberry.field(description="Formula at this version.")
    cause: VersionCause = strawberry.field(description="Why this version exists.")
    event_sequence: int | None = strawberry.field(
        description="Project change-event sequence that produced it."
    )
    created_at: datetime = strawberry.field(description="When (UTC).")
    actor_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="Who made the change (null for system changes).")
    async def actor(
        self, info: GQLInfo
    ) -> Annotated[User, strawberry.lazy("app.auth.schema")] | None:
        from app.auth.models import User as UserModel
        from app.auth.schema import User

        if self.actor_id is None:
            return None
        row = await info.context.session.get(UserModel, self.actor_id)
        return User.from_model(row) if row is not None else None

    @classmethod
    def from_row(cls, r: RowMapping) -> ParameterVersion:
        return cls(
            version=r["version"],
            number=r["value_number"],
            boolean=r["value_bool"],
            text=r["value_text"],
            unit=r["unit"],
            formula=r["formula"],
            cause=VersionCause(r["cause"]),
            event_sequence=r["event_sequence"],
            created_at=r["created_at"],
            actor_id=r["actor_id"],
        )


@strawberry.type(description="A parameter reached downstream of another, with its distance.")
class ImpactedParameter:
    depth: int = strawberry.field(description="Edges from the source parameter (1 = direct).")
    parameter: Parameter = strawberry.field(description="The downstream parameter.")


@strawberry.type(description="Everything an edit of a parameter would touch.")
class Impact:
    parameters: list[ImpactedParameter] = strawberry.field(
        description="Transitively dependent parameters, nearest first."
    )
    requirements: list[Annotated[Requirement, strawberry.lazy("app.requirements.schema")]] = (
        strawberry.field(description="Rule requirements on the parameter or any dependent.")
    )


@strawberry.type(description="A named value with a unit; independent or derived by a formula.")
class Parameter(relay.Node):
    id: relay.NodeID[str]
    symbol: str = strawberry.field(description="Identifier unique in the project; formulas use it.")
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Free text.")
    value_kind: ValueKind = strawberry.field(description="number, boolean or text.")
    number: float | None = strawberry.field(description="Numeric value in `unit` (numbers only).")
    boolean: bool | None = strawberry.field(description="Boolean value (booleans only).")
    text: str | None = strawberry.field(description="Text value (text only).")
    unit: str = strawberry.field(description="Declared unit (pint syntax); empty = dimensionless.")
    uncertainty: float | None = strawberry.field(description="± uncertainty in `unit`.")
    formula: str | None = strawberry.field(description="Formula if derived, else null.")
    version: int = strawberry.field(description="Optimistic-concurrency version (+1 per change).")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")
    uuid_: strawberry.Private[uuid.UUID]
    project_id: strawberry.Private[uuid.UUID]
    component_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> Parameter:
        # Thousands per response: the dataclass is filled directly (its generated
        # __init__ with 17 keywords and the enum call were a third of the cost);
        # tests/test_fast_paths.py checks the result equals the __init__ one.
        obj = object.__new__(cls)
        rid = r["id"]
        obj.__dict__.update(
            id=str(rid),
            uuid_=rid,
            project_id=r["project_id"],
            component_id=r["component_id"],
            symbol=r["symbol"],
            name=r["name"],
            description=r["description"],
            value_kind=_VALUE_KINDS[r["value_kind"]],
            number=r["value_number"],
            boolean=r["value_bool"],
            text=r["value_text"],
            unit=r["unit"],
            uncertainty=r["uncertainty"],
            formula=r["formula"],
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        return obj

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Parameter | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(P, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="True if the value is computed from `formula`.")
    def is_derived(self) -> bool:
        return self.formula is not None

    @strawberry.field(
        description="The value, converted to `unit` if given (pint syntax, e.g. `g`, `km/s`)."
    )
    def value(
        self,
        unit: Annotated[
            str | None, strawberry.argument(description="Target unit; default: declared unit.")
        ] = None,
    ) -> ParameterValue:
        from app.parameters import units
        from app.parameters.engine_errors import DimensionMismatch, EngineError

        if self.value_kind is ValueKind.BOOLEAN:
            return BooleanValue(value=bool(self.boolean))
        if self.value_kind is ValueKind.TEXT:
            return TextValue(value=self.text or "")
        number = self.number if self.number is not None else float("nan")
        if unit is None or unit == self.unit:
            return Quantity(value=number, unit=self.unit, uncertainty=self.uncertainty)
        try:
            converted = units.convert(number, self.unit, unit)
            spread = (
                abs(
                    units.convert(self.uncertainty, self.unit, unit)
                    - units.convert(0.0, self.unit, unit)
                )
                if self.uncertainty is not None
                else None
            )
        except DimensionMismatch as exc:
            return UnitMismatchError(message=exc.message, code=exc.code, field="unit")
        except EngineError as exc:
            return UnknownUnitError(message=exc.message, code=exc.code, field="unit")
        return Quantity(value=float(converted), unit=unit, uncertainty=spread)

    @strawberry.field(description="The project.")
    async def project(
        self, info: GQLInfo
    ) -> Annotated[Project, strawberry.lazy("app.projects.schema")]:
        from app.projects.models import Project as ProjectModel
        from app.projects.schema import Project

        row = await info.context.loaders.row(ProjectModel.__table__, self.project_id)
        assert row is not None
        return Project.from_row(row)

    @strawberry.field(description="The owning component; null for project-level parameters.")
    async def component(
        self, info: GQLInfo
    ) -> Annotated[Component, strawberry.lazy("app.components.schema")] | None:
        from app.components.schema import Component

        row = await info.context.loaders.row(C, self.component_id)
        return Component.from_row(row) if row is not None else None

    @strawberry.field(description="Parameters this one's formula reads (direct inputs).")
    async def dependencies(self, info: GQLInfo) -> list[Parameter]:
        return await _edges(info, self.uuid_, upstream=True)

    @strawberry.field(description="Parameters whose formulas read this one (direct).")
    async def dependents(self, info: GQLInfo) -> list[Parameter]:
        return await _edges(info, self.uuid_, upstream=False)

    @strawberry.field(
        description="Transitive downstream parameters (with depth) and the rule requirements "
        "they reach: what an edit of this parameter would change."
    )
    async def impact(self, info: GQLInfo) -> Impact:
        from app.requirements.models import Requirement as RequirementModel
        from app.requirements.schema import Requirement

        R = RequirementModel.__table__
        down = (
            select(D.c.parameter_id.label("pid"), literal(1).label("depth"))
            .where(D.c.depends_on_id == self.uuid_)
            .cte("down", recursive=True)
        )
        down = down.union_all(
            select(D.c.parameter_id, down.c.depth + 1)
            .join(down, D.c.depends_on_id == down.c.pid)
            .where(down.c.depth < 1000)
        )
        nearest = (
            select(down.c.pid, func.min(down.c.depth).label("depth"))
            .group_by(down.c.pid)
            .subquery()
        )
        session = info.context.session
        rows = (
            (
                await session.execute(
                    select(P, nearest.c.depth.label("_depth"))
                    .join(nearest, nearest.c.pid == P.c.id)
                    .where(P.c.deleted_at.is_(None))
                    .order_by(nearest.c.depth, P.c.symbol)
                )
            )
            .mappings()
            .all()
        )
        touched = [self.uuid_, *(r["id"] for r in rows)]
        reqs = (
            await session.execute(
                select(R)
                .where(R.c.rule_parameter_id.in_(touched), R.c.deleted_at.is_(None))
                .order_by(R.c.key)
            )
        ).mappings()
        return Impact(
            parameters=[
                ImpactedParameter(depth=r["_depth"], parameter=Parameter.from_row(r)) for r in rows
            ],
            requirements=[Requirement.from_row(r) for r in reqs],
        )

    @strawberry.field(description="Requirements whose rule constrains this parameter.")
    async def requirements(
        self, info: GQLInfo
    ) -> list[Annotated[Requirement, strawberry.lazy("app.requirements.schema")]]:
        from app.requirements.models import Requirement as RequirementModel
        from app.requirements.schema import Requirement

        R = RequirementModel.__table__

        async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
            rows = await rows_of(
                info.context.session,
                select(R)
                .where(any_of(R.c.rule_parameter_id, parents), R.c.deleted_at.is_(None))
                .order_by(R.c.key, R.c.id),
            )
            return list(rows)

        rows = await info.context.loaders.children(
            "parameter.requirements", self.uuid_, query, "rule_parameter_id"
        )
        return [Requirement.from_row(r) for r in rows]

    @strawberry.field(description="Versions of this parameter, newest first.")
    async def history(
        self,
        info: GQLInfo,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[ParameterVersion]:
        page_args = args(info, first, after, last, before)
        stmt: Select[Any] = select(V)
        page = await nested_page(
            info.context,
            "parameter.history",
            self.uuid_,
            stmt=stmt,
            partition=V.c.parameter_id,
            key_col=V.c.version,
            id_col=V.c.id,
            page_args=page_args,
            descending=True,
        )

        async def count() -> int:
            return await nested_count(
                info.context,
                "parameter.history",
                self.uuid_,
                stmt=stmt,
                partition=V.c.parameter_id,
            )

        return to_connection(
            page, ParameterVersion.from_row, lambda r: encode_cursor(r["version"], r["id"]), count
        )


async def _edges(info: GQLInfo, parameter_id: uuid.UUID, *, upstream: bool) -> list[Parameter]:
    own, other = (
        (D.c.parameter_id, D.c.depends_on_id) if upstream else (D.c.depends_on_id, D.c.parameter_id)
    )

    async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
        rows = await rows_of(
            info.context.session,
            select(P, own.label("_owner"))
            .join(D, other == P.c.id)
            .where(any_of(own, parents), P.c.deleted_at.is_(None))
            .order_by(P.c.symbol),
        )
        return list(rows)

    key = "parameter.dependencies" if upstream else "parameter.dependents"
    rows = await info.context.loaders.children(key, parameter_id, query, "_owner")
    return [Parameter.from_row(r) for r in rows]


@strawberry.input(description="Filter parameters.")
class ParameterFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of symbol or name."
    )
    is_derived: bool | None = strawberry.field(
        default=None, description="true: only formulas; false: only independent values."
    )
    component: relay.GlobalID | None = strawberry.field(
        default=None, description="Only parameters of this component."
    )
    subtree_of: relay.GlobalID | None = strawberry.field(
        default=None, description="Only parameters of this component or its descendants."
    )
    value_kind: ValueKind | None = strawberry.field(default=None, description="Only this kind.")


@strawberry.enum(description="Parameter sort keys.")
class ParameterOrderField(Enum):
    SYMBOL = strawberry.enum_value("symbol", description="By symbol.")
    NAME = strawberry.enum_value("name", description="By name.")
    UPDATED_AT = strawberry.enum_value("updated_at", description="By last change.")


@strawberry.input(description="Parameter ordering (default: symbol ascending).")
class ParameterOrder:
    field: ParameterOrderField = strawberry.field(description="Sort key.")
    direction: SortDirection = strawberry.field(default=SortDirection.ASC, description="Direction.")


def _filtered(
    project_id: uuid.UUID, component_id: uuid.UUID | None, filter: ParameterFilter | None
) -> Select[Any]:
    stmt: Select[Any] = select(P).where(P.c.deleted_at.is_(None))
    if component_id is None:
        stmt = stmt.where(P.c.project_id == project_id)
    if filter is None:
        return stmt
    if filter.search:
        pattern = like_pattern(filter.search)
        stmt = stmt.where(or_(P.c.symbol.ilike(pattern), P.c.name.ilike(pattern)))
    if filter.is_derived is not None:
        stmt = stmt.where(P.c.formula.is_not(None) if filter.is_derived else P.c.formula.is_(None))
    if filter.value_kind is not None:
        stmt = stmt.where(P.c.value_kind == filter.value_kind.value)
    if filter.component is not None:
        stmt = stmt.where(
            P.c.component_id == (decode_id(filter.component, "Component") or uuid.UUID(int=0))
        )
    if filter.subtree_of is not None:
        root = decode_id(filter.subtree_of, "Component") or uuid.UUID(int=0)
        sub = select(C.c.id).where(C.c.id == root).cte("subtree", recursive=True)
        child = C.alias("child")
        sub = sub.union_all(select(child.c.id).join(sub, child.c.parent_id == sub.c.id))
        stmt = stmt.where(P.c.component_id.in_(select(sub.c.id)))
    return stmt


async def parameter_connection(
    info: GQLInfo,
    project_id: uuid.UUID,
    component_id: uuid.UUID | None,
    filter: ParameterFilter | None,
    order_by: ParameterOrder | None,
    page_args: PageArgs,
) -> Connection[Parameter]:
    key = str(order_by.field.value) if order_by else "symbol"
    desc = bool(order_by and order_by.direction == SortDirection.DESC)
    cache_key = ("component.parameters", repr(filter), key, desc)
    if component_id is not None:
        # Nested under components the statement does not depend on the component:
        # build it once for all the siblings sharing this batch.
        stmt = info.context.loaders.memo(
            cache_key, lambda: _filtered(project_id, component_id, filter)
        )
    else:
        stmt = _filtered(project_id, component_id, filter)
    if component_id is not None:
        # Nested under components: one statement for all components' pages.
        page = await nested_page(
            info.context,
            cache_key,
            component_id,
            stmt=stmt,
            partition=P.c.component_id,
            key_col=P.c[key],
            id_col=P.c.id,
            page_args=page_args,
            descending=desc,
        )

        async def nested() -> int:
            return await nested_count(
                info.context, cache_key, component_id, stmt=stmt, partition=P.c.component_id
            )

        count: Callable[[], Awaitable[int]] = nested
    else:
        page = await fetch_page(
            info.context.session,
            stmt,
            key_col=P.c[key],
            id_col=P.c.id,
            args=page_args,
            descending=desc,
        )

        count = counter(info.context.session, stmt)

    return to_connection(page, Parameter.from_row, lambda r: encode_cursor(r[key], r["id"]), count)


async def parameter_by_symbol(
    info: GQLInfo, project_id: uuid.UUID, symbol: str
) -> Parameter | None:
    row = (
        (
            await info.context.session.execute(
                select(P).where(
                    P.c.project_id == project_id, P.c.symbol == symbol, P.c.deleted_at.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    return Parameter.from_row(row) if row is not None else None
