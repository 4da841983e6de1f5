"""GraphQL mutations of requirements (with rules) and trace links."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.graphql.common import decode_id
from app.graphql.mutations import GQLInfo, fetch_row, given, mutate, result_union
from app.requirements import service
from app.requirements.models import Requirement as RequirementModel
from app.requirements.models import TraceLink as TraceLinkModel
from app.requirements.schema import (
    Priority,
    Requirement,
    RequirementStatus,
    RuleOperator,
    TraceLink,
    TraceLinkKind,
    VerificationMethod,
)

R = RequirementModel.__table__
TL = TraceLinkModel.__table__
# GraphQL type of the target of each link kind (service.LINK_TARGETS names the table).
_TARGET_TYPE_NAMES = {
    "component": "Component",
    "parameter": "Parameter",
    "requirement": "Requirement",
}


def _id(gid: relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID of a global id; a mistyped or malformed one reads as missing."""
    return decode_id(gid, type_name) or uuid.UUID(int=0)


def _opt_id(gid: relay.GlobalID | None, type_name: str) -> uuid.UUID | None:
    return None if gid is None else _id(gid, type_name)


def _unless_null(value: Any) -> Any:
    """For non-nullable columns: an explicit null means "leave as is"."""
    return given(strawberry.UNSET if value is None else value)


def _value(enum_value: Any) -> Any:
    """An enum input's database value (UNSET and None pass through)."""
    return enum_value.value if hasattr(enum_value, "value") else enum_value


@strawberry.input(
    description="A rule `parameter OPERATOR threshold [unit]`: compliance and margin are "
    "evaluated live. Name the parameter by `parameterId` or `parameterSymbol`."
)
class RuleInput:
    parameter_id: relay.GlobalID | None = strawberry.field(
        default=None, description="The constrained `Parameter` (of the same project)…"
    )
    parameter_symbol: str | None = strawberry.field(default=None, description="…or its symbol.")
    operator: RuleOperator = strawberry.field(
        description="Comparison; text parameters take no rule, boolean ones only EQ."
    )
    threshold: float = strawberry.field(
        description="Threshold in `unit` (lower bound for BETWEEN; 1/0 for a boolean)."
    )
    threshold_high: float | None = strawberry.field(
        default=None, description="Upper bound, for BETWEEN only (≥ threshold)."
    )
    unit: str | None = strawberry.field(
        default=None,
        description="Unit of the thresholds; defaults to the parameter's, must have its dimension.",
    )

    def to_service(self) -> service.RuleInput:
        return service.RuleInput(
            operator=str(self.operator.value),
            threshold=self.threshold,
            parameter_id=_opt_id(self.parameter_id, "Parameter"),
            parameter_symbol=self.parameter_symbol,
            threshold_high=self.threshold_high,
            unit=self.unit,
        )


@strawberry.input(description="A new requirement, optionally with a rule.")
class RequirementCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    key: str = strawberry.field(
        description="Key unique in the project, e.g. REQ-MASS-002 (max 64 characters)."
    )
    title: str = strawberry.field(description="Short title (1 to 300 characters).")
    text: str = strawberry.field(default="", description="The statement.")
    priority: Priority = strawberry.field(default=Priority.MEDIUM, description="Priority.")
    status: RequirementStatus = strawberry.field(
        default=RequirementStatus.DRAFT, description="Lifecycle status."
    )
    verification_method: VerificationMethod | None = strawberry.field(
        default=None, description="Default: RULE with a rule, else ANALYSIS."
    )
    parent_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Parent requirement; null for a top-level one."
    )
    rule: RuleInput | None = strawberry.field(default=None, description="Optional rule.")


@strawberry.input(description="Changes to a requirement; omitted fields stay as they are.")
class RequirementUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The requirement.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )
    key: str | None = strawberry.field(default=strawberry.UNSET, description="New key.")
    title: str | None = strawberry.field(default=strawberry.UNSET, description="New title.")
    text: str | None = strawberry.field(default=strawberry.UNSET, description="New statement.")
    priority: Priority | None = strawberry.field(
        default=strawberry.UNSET, description="New priority."
    )
    status: RequirementStatus | None = strawberry.field(
        default=strawberry.UNSET, description="New status."
    )
    verification_method: VerificationMethod | None = strawberry.field(
        default=strawberry.UNSET, description="New verification method (RULE with a rule)."
    )
    parent_id: relay.GlobalID | None = strawberry.field(
        default=strawberry.UNSET, description="New parent (no cycles); null makes it top-level."
    )
    rule: RuleInput | None = strawberry.field(
        default=strawberry.UNSET, description="New rule; null removes the rule."
    )


@strawberry.input(description="Delete a requirement without children; its links go with it.")
class RequirementDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The requirement.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, a stale version gets VersionConflictError."
    )


@strawberry.type(description="The created or changed requirement.")
class RequirementSuccess:
    requirement: Requirement = strawberry.field(
        description="The requirement as it is now (compliance and margin evaluated)."
    )


@strawberry.type(description="The deleted requirement, as it was.")
class RequirementDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted one.")
    requirement: Requirement = strawberry.field(description="Its last state.")


@strawberry.input(description="A new trace link from a requirement.")
class TraceLinkCreateInput:
    requirement_id: relay.GlobalID = strawberry.field(description="The requirement it starts at.")
    kind: TraceLinkKind = strawberry.field(
        description="SATISFIED_BY/ALLOCATED_TO target a Component, VERIFIED_BY a Parameter, "
        "DERIVED_FROM/REFINES a Requirement."
    )
    target_id: relay.GlobalID = strawberry.field(
        description="Global id of the Component, Parameter or Requirement (same project)."
    )


@strawberry.input(description="A trace link, by id.")
class TraceLinkInput:
    id: relay.GlobalID = strawberry.field(description="The trace link.")


@strawberry.type(description="The created or reviewed trace link.")
class TraceLinkSuccess:
    trace_link: TraceLink = strawberry.field(description="The link as it is now.")


@strawberry.type(description="The deleted trace link.")
class TraceLinkDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted link.")
    requirement: Requirement = strawberry.field(description="The requirement it started at.")


if TYPE_CHECKING:
    RequirementCreateResult = Any
    RequirementUpdateResult = Any
    RequirementDeleteResult = Any
    TraceLinkCreateResult = Any
    TraceLinkDeleteResult = Any
    TraceLinkSuspectClearResult = Any
else:
    RequirementCreateResult = result_union(
        "RequirementCreateResult", RequirementSuccess, "The new requirement, or why not."
    )
    RequirementUpdateResult = result_union(
        "RequirementUpdateResult", RequirementSuccess, "The changed requirement, or why not."
    )
    RequirementDeleteResult = result_union(
        "RequirementDeleteResult", RequirementDeleteSuccess, "The deleted requirement, or why not."
    )
    TraceLinkCreateResult = result_union(
        "TraceLinkCreateResult", TraceLinkSuccess, "The new trace link, or why not."
    )
    TraceLinkDeleteResult = result_union(
        "TraceLinkDeleteResult", TraceLinkDeleteSuccess, "The deleted trace link, or why not."
    )
    TraceLinkSuspectClearResult = result_union(
        "TraceLinkSuspectClearResult", TraceLinkSuccess, "The reviewed trace link, or why not."
    )


async def _requirement(info: GQLInfo, req: Any) -> RequirementSuccess:
    row = await fetch_row(info.context, R, req.id)
    return RequirementSuccess(requirement=Requirement.from_row(row))


async def _link(info: GQLInfo, link: Any) -> TraceLinkSuccess:
    return TraceLinkSuccess(
        trace_link=TraceLink.from_row(await fetch_row(info.context, TL, link.id))
    )


@strawberry.type
class RequirementMutation:
    @strawberry.mutation(
        description="Create a requirement; a rule is checked (parameter, operator, unit "
        "dimension) and evaluated at once."
    )
    async def requirement_create(
        self,
        info: GQLInfo,
        input: Annotated[
            RequirementCreateInput, strawberry.argument(description="The requirement.")
        ],
    ) -> RequirementCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.requirement_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                key=input.key,
                title=input.title,
                text=input.text,
                priority=str(input.priority.value),
                status=str(input.status.value),
                verification_method=_value(input.verification_method),
                parent_id=_opt_id(input.parent_id, "Requirement"),
                rule=input.rule.to_service() if input.rule is not None else None,
            )

        return await mutate(info, call, lambda r: _requirement(info, r))

    @strawberry.mutation(
        description="Edit a requirement (version + 1); compliance is re-evaluated and a "
        "changed statement, rule or compliance marks its trace links suspect."
    )
    async def requirement_update(
        self,
        info: GQLInfo,
        input: Annotated[RequirementUpdateInput, strawberry.argument(description="The edit.")],
    ) -> RequirementUpdateResult:
        async def call(actor: Any, meta: Any) -> Any:
            parent: Any = input.parent_id
            if parent is not strawberry.UNSET and parent is not None:
                parent = _id(parent, "Requirement")
            rule: Any = input.rule
            if isinstance(rule, RuleInput):
                rule = rule.to_service()
            return await service.requirement_update(
                info.context.session,
                actor=actor,
                meta=meta,
                requirement_id=_id(input.id, "Requirement"),
                expected_version=input.expected_version,
                key=_unless_null(input.key),
                title=_unless_null(input.title),
                text=_unless_null(input.text),
                priority=_unless_null(_value(input.priority)),
                status=_unless_null(_value(input.status)),
                verification_method=_unless_null(_value(input.verification_method)),
                parent_id=given(parent),
                rule=given(rule),
            )

        return await mutate(info, call, lambda r: _requirement(info, r))

    @strawberry.mutation(description="Delete a requirement without children (soft delete).")
    async def requirement_delete(
        self,
        info: GQLInfo,
        input: Annotated[RequirementDeleteInput, strawberry.argument(description="Which one.")],
    ) -> RequirementDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.requirement_delete(
                info.context.session,
                actor=actor,
                meta=meta,
                requirement_id=_id(input.id, "Requirement"),
                expected_version=input.expected_version,
            )

        async def success(r: Any) -> RequirementDeleteSuccess:
            row = await fetch_row(info.context, R, r.id)
            return RequirementDeleteSuccess(
                deleted_id=relay.GlobalID("Requirement", str(r.id)),
                requirement=Requirement.from_row(row),
            )

        return await mutate(info, call, success)

    @strawberry.mutation(
        description="Link a requirement to a component, parameter or requirement of its project."
    )
    async def trace_link_create(
        self,
        info: GQLInfo,
        input: Annotated[TraceLinkCreateInput, strawberry.argument(description="The link.")],
    ) -> TraceLinkCreateResult:
        kind = str(input.kind.value)
        # A target of another type than the kind links to reads as missing.
        target_type = _TARGET_TYPE_NAMES[service.LINK_TARGETS[kind]]

        async def call(actor: Any, meta: Any) -> Any:
            return await service.trace_link_create(
                info.context.session,
                actor=actor,
                meta=meta,
                requirement_id=_id(input.requirement_id, "Requirement"),
                kind=kind,
                target_id=_id(input.target_id, target_type),
            )

        return await mutate(info, call, lambda link: _link(info, link))

    @strawberry.mutation(description="Delete a trace link.")
    async def trace_link_delete(
        self,
        info: GQLInfo,
        input: Annotated[TraceLinkInput, strawberry.argument(description="Which one.")],
    ) -> TraceLinkDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.trace_link_delete(
                info.context.session, actor=actor, meta=meta, link_id=_id(input.id, "TraceLink")
            )

        async def success(link: Any) -> TraceLinkDeleteSuccess:
            row = await fetch_row(info.context, R, link.requirement_id)
            return TraceLinkDeleteSuccess(
                deleted_id=relay.GlobalID("TraceLink", str(link.id)),
                requirement=Requirement.from_row(row),
            )

        return await mutate(info, call, success)

    @strawberry.mutation(
        description="Mark a suspect trace link reviewed: clears `suspect` and its reason "
        "(no change if it is not suspect)."
    )
    async def trace_link_suspect_clear(
        self,
        info: GQLInfo,
        input: Annotated[TraceLinkInput, strawberry.argument(description="Which one.")],
    ) -> TraceLinkSuspectClearResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.suspect_clear(
                info.context.session, actor=actor, meta=meta, link_id=_id(input.id, "TraceLink")
            )

        return await mutate(info, call, lambda link: _link(info, link))
