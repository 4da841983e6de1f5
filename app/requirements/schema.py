"""GraphQL: requirements, their rules, compliance, and trace links."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, exists, or_, select
from sqlalchemy.engine import RowMapping
from strawberry import relay

from app.graphql.common import GQLInfo, parse_uuid
from app.graphql.loaders import any_of, rows_of
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
from app.projects.schema import like_pattern
from app.requirements.models import Requirement as RequirementModel
from app.requirements.models import TraceLink as TraceLinkModel

if TYPE_CHECKING:
    from app.components.schema import Component
    from app.parameters.schema import Parameter

R = RequirementModel.__table__
TL = TraceLinkModel.__table__
P = ParameterModel.__table__


@strawberry.enum(description="Requirement priority.")
class Priority(Enum):
    LOW = strawberry.enum_value("low", description="Nice to have.")
    MEDIUM = strawberry.enum_value("medium", description="Normal.")
    HIGH = strawberry.enum_value("high", description="Important.")
    CRITICAL = strawberry.enum_value("critical", description="Mission-critical.")


@strawberry.enum(description="Lifecycle status of a requirement.")
class RequirementStatus(Enum):
    DRAFT = strawberry.enum_value("draft", description="Being written.")
    PROPOSED = strawberry.enum_value("proposed", description="Awaiting approval.")
    APPROVED = strawberry.enum_value("approved", description="Baselined.")
    REJECTED = strawberry.enum_value("rejected", description="Not accepted.")
    OBSOLETE = strawberry.enum_value("obsolete", description="No longer applies.")


@strawberry.enum(description="How a requirement is verified.")
class VerificationMethod(Enum):
    ANALYSIS = strawberry.enum_value("analysis", description="By analysis.")
    INSPECTION = strawberry.enum_value("inspection", description="By inspection.")
    TEST = strawberry.enum_value("test", description="By test.")
    REVIEW = strawberry.enum_value("review", description="By review of design.")
    RULE = strawberry.enum_value(
        "rule", description="By a rule on a parameter, evaluated live by the server."
    )


@strawberry.enum(description="Whether a rule requirement is met by the current values.")
class Compliance(Enum):
    PASS = strawberry.enum_value("PASS", description="The rule holds.")
    FAIL = strawberry.enum_value("FAIL", description="The rule is violated.")
    UNKNOWN = strawberry.enum_value(
        "UNKNOWN", description="Not a rule requirement, or the value is missing."
    )


@strawberry.enum(description="Comparison of a rule.")
class RuleOperator(Enum):
    LE = strawberry.enum_value("<=", description="value ≤ threshold.")
    LT = strawberry.enum_value("<", description="value < threshold.")
    GE = strawberry.enum_value(">=", description="value ≥ threshold.")
    GT = strawberry.enum_value(">", description="value > threshold.")
    EQ = strawberry.enum_value("==", description="value = threshold.")
    BETWEEN = strawberry.enum_value("between", description="threshold ≤ value ≤ thresholdHigh.")


@strawberry.enum(description="Meaning of a trace link from a requirement.")
class TraceLinkKind(Enum):
    SATISFIED_BY = strawberry.enum_value("satisfied_by", description="A component satisfies it.")
    VERIFIED_BY = strawberry.enum_value("verified_by", description="A parameter verifies it.")
    DERIVED_FROM = strawberry.enum_value(
        "derived_from", description="Derived from another requirement."
    )
    REFINES = strawberry.enum_value("refines", description="Refines another requirement.")
    ALLOCATED_TO = strawberry.enum_value("allocated_to", description="Allocated to a component.")


_PRIORITIES = {e.value: e for e in Priority}
_STATUSES = {e.value: e for e in RequirementStatus}
_METHODS = {e.value: e for e in VerificationMethod}
_COMPLIANCES = {e.value: e for e in Compliance}


@strawberry.type(description="A rule: `parameter OPERATOR threshold [unit]`.")
class Rule:
    operator: RuleOperator = strawberry.field(description="Comparison.")
    threshold: float = strawberry.field(description="Threshold (lower bound for BETWEEN).")
    threshold_high: float | None = strawberry.field(description="Upper bound for BETWEEN.")
    unit: str = strawberry.field(description="Unit of the thresholds and the margin.")


@strawberry.type(description="A requirement; rule requirements track compliance live.")
class Requirement(relay.Node):
    id: relay.NodeID[str]
    key: str = strawberry.field(description="Key unique in the project, e.g. REQ-MASS-001.")
    title: str = strawberry.field(description="Short title.")
    text: str = strawberry.field(description="The requirement's statement.")
    priority: Priority = strawberry.field(description="Priority.")
    status: RequirementStatus = strawberry.field(description="Lifecycle status.")
    verification_method: VerificationMethod = strawberry.field(description="How it is verified.")
    compliance: Compliance = strawberry.field(description="Live compliance of the rule.")
    margin: float | None = strawberry.field(
        description="Distance to the threshold in the rule's unit; positive = compliant."
    )
    rule: Rule | None = strawberry.field(description="The rule (rule requirements only).")
    version: int = strawberry.field(description="Optimistic-concurrency version.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")
    uuid_: strawberry.Private[uuid.UUID]
    project_id: strawberry.Private[uuid.UUID]
    parent_id: strawberry.Private[uuid.UUID | None]
    rule_parameter_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> Requirement:
        rule = None
        if r["rule_operator"] is not None:
            rule = Rule(
                operator=RuleOperator(r["rule_operator"]),
                threshold=r["rule_threshold"],
                threshold_high=r["rule_threshold_high"],
                unit=r["rule_unit"] or "",
            )
        # Filled directly, as Parameter.from_row (hundreds per page; equality with the
        # __init__ result is tested in tests/test_fast_paths.py).
        obj = object.__new__(cls)
        rid = r["id"]
        obj.__dict__.update(
            id=str(rid),
            uuid_=rid,
            project_id=r["project_id"],
            parent_id=r["parent_id"],
            rule_parameter_id=r["rule_parameter_id"],
            key=r["key"],
            title=r["title"],
            text=r["text"],
            priority=_PRIORITIES[r["priority"]],
            status=_STATUSES[r["status"]],
            verification_method=_METHODS[r["verification_method"]],
            compliance=_COMPLIANCES[r["compliance"]],
            margin=r["margin"],
            rule=rule,
            version=r["version"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        return obj

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[Requirement | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(R, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="The parent requirement; null at the top.")
    async def parent(self, info: GQLInfo) -> Requirement | None:
        row = await info.context.loaders.row(R, self.parent_id)
        return Requirement.from_row(row) if row is not None else None

    @strawberry.field(description="Child requirements, by key.")
    async def children(self, info: GQLInfo) -> list[Requirement]:
        async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
            rows = await rows_of(
                info.context.session,
                select(R)
                .where(any_of(R.c.parent_id, parents), R.c.deleted_at.is_(None))
                .order_by(R.c.key, R.c.id),
            )
            return list(rows)

        rows = await info.context.loaders.children(
            "requirement.children", self.uuid_, query, "parent_id"
        )
        return [Requirement.from_row(r) for r in rows]

    @strawberry.field(description="The parameter the rule constrains.")
    async def parameter(
        self, info: GQLInfo
    ) -> Annotated[Parameter, strawberry.lazy("app.parameters.schema")] | None:
        from app.parameters.schema import Parameter

        row = await info.context.loaders.row(P, self.rule_parameter_id)
        return Parameter.from_row(row) if row is not None else None

    @strawberry.field(description="Trace links from this requirement.")
    async def links(self, info: GQLInfo) -> list[TraceLink]:
        rows = await _links(info, self.uuid_)
        return [TraceLink.from_row(r) for r in rows]

    @strawberry.field(description="True if any of its trace links is suspect.")
    async def suspect(self, info: GQLInfo) -> bool:
        return any(r["suspect"] for r in await _links(info, self.uuid_))


async def _links(info: GQLInfo, requirement_id: uuid.UUID) -> list[RowMapping]:
    async def query(parents: list[uuid.UUID]) -> list[RowMapping]:
        rows = await rows_of(
            info.context.session,
            select(TL)
            .where(any_of(TL.c.requirement_id, parents))
            .order_by(TL.c.created_at, TL.c.id),
        )
        return list(rows)

    return await info.context.loaders.children(
        "requirement.links", requirement_id, query, "requirement_id"
    )


@strawberry.type(
    description="A typed link from a requirement to a component, parameter or requirement."
)
class TraceLink(relay.Node):
    id: relay.NodeID[str]
    kind: TraceLinkKind = strawberry.field(description="Meaning of the link.")
    suspect: bool = strawberry.field(
        description="Set when either end changed since the link was last reviewed."
    )
    suspect_reason: str | None = strawberry.field(description="What changed.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    requirement_id: strawberry.Private[uuid.UUID]
    component_id: strawberry.Private[uuid.UUID | None]
    parameter_id: strawberry.Private[uuid.UUID | None]
    target_requirement_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, r: RowMapping) -> TraceLink:
        return cls(
            id=str(r["id"]),
            kind=TraceLinkKind(r["kind"]),
            suspect=r["suspect"],
            suspect_reason=r["suspect_reason"],
            created_at=r["created_at"],
            requirement_id=r["requirement_id"],
            component_id=r["target_component_id"],
            parameter_id=r["target_parameter_id"],
            target_requirement_id=r["target_requirement_id"],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: GQLInfo, node_ids: Iterable[str], required: bool = False
    ) -> list[TraceLink | None]:
        ids = [parse_uuid(i) or uuid.UUID(int=0) for i in node_ids]
        rows = await info.context.loaders.rows(TL, ids)
        return [cls.from_row(r) if r is not None else None for r in rows]

    @strawberry.field(description="The requirement the link starts from.")
    async def requirement(self, info: GQLInfo) -> Requirement | None:
        row = await info.context.loaders.row(R, self.requirement_id)
        return Requirement.from_row(row) if row is not None else None

    @strawberry.field(description="The linked component, parameter or requirement.")
    async def target(
        self, info: GQLInfo
    ) -> (
        Annotated[
            Annotated[Component, strawberry.lazy("app.components.schema")]
            | Annotated[Parameter, strawberry.lazy("app.parameters.schema")]
            | Requirement,
            strawberry.union("TraceTarget", description="What a trace link points at."),
        ]
        | None
    ):
        from app.components.models import Component as ComponentModel
        from app.components.schema import Component
        from app.parameters.schema import Parameter

        loaders = info.context.loaders
        if self.component_id is not None:
            row = await loaders.row(ComponentModel.__table__, self.component_id)
            return Component.from_row(row) if row is not None else None
        if self.parameter_id is not None:
            row = await loaders.row(P, self.parameter_id)
            return Parameter.from_row(row) if row is not None else None
        row = await loaders.row(R, self.target_requirement_id)
        return Requirement.from_row(row) if row is not None else None


@strawberry.input(description="Filter requirements.")
class RequirementFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of key or title."
    )
    compliance: Compliance | None = strawberry.field(default=None, description="Only this one.")
    status: RequirementStatus | None = strawberry.field(default=None, description="Only this.")
    verification_method: VerificationMethod | None = strawberry.field(
        default=None, description="Only this method."
    )
    suspect: bool | None = strawberry.field(
        default=None, description="true: only with a suspect link; false: only without."
    )
    roots_only: bool = strawberry.field(default=False, description="Only top-level ones.")


@strawberry.enum(description="Requirement sort keys.")
class RequirementOrderField(Enum):
    KEY = strawberry.enum_value("key", description="By key.")
    TITLE = strawberry.enum_value("title", description="By title.")
    UPDATED_AT = strawberry.enum_value("updated_at", description="By last change.")


@strawberry.input(description="Requirement ordering (default: key ascending).")
class RequirementOrder:
    field: RequirementOrderField = strawberry.field(description="Sort key.")
    direction: SortDirection = strawberry.field(default=SortDirection.ASC, description="Direction.")


async def requirement_connection(
    info: GQLInfo,
    project_id: uuid.UUID,
    filter: RequirementFilter | None,
    order_by: RequirementOrder | None,
    page_args: PageArgs,
) -> Connection[Requirement]:
    stmt: Select[Any] = select(R).where(R.c.project_id == project_id, R.c.deleted_at.is_(None))
    if filter is not None:
        if filter.search:
            pattern = like_pattern(filter.search)
            stmt = stmt.where(or_(R.c.key.ilike(pattern), R.c.title.ilike(pattern)))
        if filter.compliance is not None:
            stmt = stmt.where(R.c.compliance == filter.compliance.value)
        if filter.status is not None:
            stmt = stmt.where(R.c.status == filter.status.value)
        if filter.verification_method is not None:
            stmt = stmt.where(R.c.verification_method == filter.verification_method.value)
        if filter.roots_only:
            stmt = stmt.where(R.c.parent_id.is_(None))
        if filter.suspect is not None:
            has = exists().where(TL.c.requirement_id == R.c.id, TL.c.suspect.is_(True))
            stmt = stmt.where(has if filter.suspect else ~has)
    key = str(order_by.field.value) if order_by else "key"
    desc = bool(order_by and order_by.direction == SortDirection.DESC)
    page = await fetch_page(
        info.context.session,
        stmt,
        key_col=R.c[key],
        id_col=R.c.id,
        args=page_args,
        descending=desc,
    )

    count = counter(info.context.session, stmt)

    return to_connection(
        page, Requirement.from_row, lambda r: encode_cursor(r[key], r["id"]), count
    )


async def requirement_by_key(info: GQLInfo, project_id: uuid.UUID, key: str) -> Requirement | None:
    row = (
        (
            await info.context.session.execute(
                select(R).where(
                    R.c.project_id == project_id, R.c.key == key, R.c.deleted_at.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    return Requirement.from_row(row) if row is not None else None
