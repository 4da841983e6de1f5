"""GraphQL mutations of parameters: create, update (optimistic), bulk set, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from app.graphql.common import decode_id
from app.graphql.errors import ValidationError
from app.graphql.mutations import GQLInfo, fetch_row, given, mutate, result_union
from app.graphql.subscriptions import ComplianceChange, ParameterValueChange
from app.parameters import service
from app.parameters.models import Parameter as ParameterModel
from app.parameters.recompute import ParameterChangeResult
from app.parameters.schema import Parameter, ValueKind

P = ParameterModel.__table__
MAX_BULK_ITEMS = 1000


def _value(number: Any, boolean: Any, text: Any) -> Any:
    """The one value among number/boolean/text that was given (UNSET if none)."""
    given_values = [v for v in (number, boolean, text) if v is not strawberry.UNSET]
    if len(given_values) > 1:
        raise ValueError("give at most one of number, boolean, text")
    return given_values[0] if given_values else strawberry.UNSET


def _bad_value(message: str) -> ValidationError:
    return ValidationError(message=message, code="VALIDATION_ERROR", field="number")


@strawberry.input(description="A new parameter. Give a value (number/boolean/text) or a formula.")
class ParameterCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    symbol: str = strawberry.field(
        description="Identifier for formulas, unique in the project ([A-Za-z_][A-Za-z0-9_]*)."
    )
    name: str = strawberry.field(description="Display name (1 to 200 characters).")
    component_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Owning component; null for a project-level parameter."
    )
    value_kind: ValueKind = strawberry.field(
        default=ValueKind.NUMBER, description="number (default), boolean or text."
    )
    number: float | None = strawberry.field(default=None, description="Numeric value in `unit`.")
    boolean: bool | None = strawberry.field(default=None, description="Boolean value.")
    text: str | None = strawberry.field(default=None, description="Text value.")
    unit: str = strawberry.field(default="", description="Unit (pint syntax, e.g. kg, km/s).")
    formula: str | None = strawberry.field(
        default=None, description="Formula over other symbols (max 2,000 characters)."
    )
    description: str = strawberry.field(default="", description="Free text.")
    uncertainty: float | None = strawberry.field(default=None, description="± in `unit`, ≥ 0.")


@strawberry.type(description="The created parameter.")
class ParameterCreateSuccess:
    parameter: Parameter = strawberry.field(description="The new parameter.")


@strawberry.input(description="Changes to a parameter; omitted fields stay as they are.")
class ParameterUpdateInput:
    id: relay.GlobalID = strawberry.field(description="The parameter.")
    expected_version: int = strawberry.field(
        description="The version you edited; a stale one gets VersionConflictError."
    )
    number: float | None = strawberry.field(
        default=strawberry.UNSET, description="New numeric value (in `unit`, or the new unit)."
    )
    boolean: bool | None = strawberry.field(default=strawberry.UNSET, description="New boolean.")
    text: str | None = strawberry.field(default=strawberry.UNSET, description="New text.")
    unit: str | None = strawberry.field(
        default=strawberry.UNSET, description="New unit (same dimension if a rule uses it)."
    )
    formula: str | None = strawberry.field(
        default=strawberry.UNSET, description="New formula; null makes the parameter independent."
    )
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    uncertainty: float | None = strawberry.field(
        default=strawberry.UNSET, description="New ± uncertainty; null clears it."
    )


@strawberry.type(description="What a parameter operation changed, in one transaction.")
class ParameterChangeSuccess:
    parameters: list[Parameter] = strawberry.field(
        description="The targeted parameters as they are now, in input order."
    )
    sequence: int | None = strawberry.field(
        description="Sequence of the project event (null if nothing changed)."
    )
    edited: list[ParameterValueChange] = strawberry.field(description="Values set directly.")
    recomputed: list[ParameterValueChange] = strawberry.field(
        description="Derived parameters recomputed, in topological order."
    )
    requirements: list[ComplianceChange] = strawberry.field(
        description="Rule requirements whose compliance or margin moved."
    )

    @strawberry.field(description="The (first) targeted parameter.")
    def parameter(self) -> Parameter:
        return self.parameters[0]


@strawberry.input(description="One edit of a bulk `parameterSetValues`.")
class ParameterValueEdit:
    id: relay.GlobalID | None = strawberry.field(default=None, description="The parameter…")
    symbol: str | None = strawberry.field(default=None, description="…or its symbol.")
    number: float | None = strawberry.field(default=strawberry.UNSET, description="Numeric.")
    boolean: bool | None = strawberry.field(default=strawberry.UNSET, description="Boolean.")
    text: str | None = strawberry.field(default=strawberry.UNSET, description="Text.")
    unit: str | None = strawberry.field(
        default=None, description="Unit of `number` (converted to the parameter's unit)."
    )
    expected_version: int | None = strawberry.field(
        default=None, description="If given, the edit fails on a stale version."
    )


@strawberry.input(description="Many value edits of one project, applied all-or-nothing.")
class ParameterSetValuesInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    items: list[ParameterValueEdit] = strawberry.field(
        description=f"The edits (1 to {MAX_BULK_ITEMS}); one recompute for all."
    )


@strawberry.input(description="Delete a parameter (refused while others depend on it).")
class ParameterDeleteInput:
    id: relay.GlobalID = strawberry.field(description="The parameter.")
    expected_version: int | None = strawberry.field(
        default=None, description="If given, refuse a stale version."
    )


@strawberry.type(description="The deleted parameter, as it was.")
class ParameterDeleteSuccess:
    deleted_id: relay.GlobalID = strawberry.field(description="Global id of the deleted one.")
    parameter: Parameter = strawberry.field(description="Its last state.")


if TYPE_CHECKING:
    ParameterCreateResult = Any
    ParameterUpdateResult = Any
    ParameterSetValuesResult = Any
    ParameterDeleteResult = Any
else:
    ParameterCreateResult = result_union(
        "ParameterCreateResult", ParameterCreateSuccess, "The new parameter, or why not."
    )
    ParameterUpdateResult = result_union(
        "ParameterUpdateResult", ParameterChangeSuccess, "What changed, or why nothing did."
    )
    ParameterSetValuesResult = result_union(
        "ParameterSetValuesResult", ParameterChangeSuccess, "What changed, or why nothing did."
    )
    ParameterDeleteResult = result_union(
        "ParameterDeleteResult", ParameterDeleteSuccess, "The deleted parameter, or why not."
    )


async def _change_success(info: GQLInfo, result: ParameterChangeResult) -> ParameterChangeSuccess:
    params = [Parameter.from_row(await fetch_row(info.context, P, p.id)) for p in result.parameters]
    return ParameterChangeSuccess(
        parameters=params,
        sequence=result.sequence,
        edited=[ParameterValueChange.from_payload(c.as_payload(), "edit") for c in result.edited],
        recomputed=[
            ParameterValueChange.from_payload(c.as_payload(), "recompute")
            for c in result.recomputed
        ],
        requirements=[ComplianceChange.from_payload(c.as_payload()) for c in result.requirements],
    )


def _id(gid: relay.GlobalID | None, type_name: str) -> Any:
    import uuid

    if gid is None:
        return None
    return decode_id(gid, type_name) or uuid.UUID(int=0)  # a mistyped id reads as missing


@strawberry.type
class ParameterMutation:
    @strawberry.mutation(description="Create a parameter (independent value or formula).")
    async def parameter_create(
        self,
        info: GQLInfo,
        input: Annotated[ParameterCreateInput, strawberry.argument(description="The parameter.")],
    ) -> ParameterCreateResult:
        kind = str(input.value_kind.value)
        value = {"number": input.number, "boolean": input.boolean, "text": input.text}[kind]

        async def call(actor: Any, meta: Any) -> Any:
            return await service.parameter_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                symbol=input.symbol,
                name=input.name,
                value_kind=kind,
                value=value,
                unit=input.unit,
                formula=input.formula,
                description=input.description,
                uncertainty=input.uncertainty,
                component_id=_id(input.component_id, "Component"),
            )

        async def success(p: Any) -> ParameterCreateSuccess:
            return ParameterCreateSuccess(
                parameter=Parameter.from_row(await fetch_row(info.context, P, p.id))
            )

        return await mutate(info, call, success)

    @strawberry.mutation(
        description="Edit a parameter; recomputes everything downstream, re-evaluates rule "
        "requirements, writes history and one change event — atomically."
    )
    async def parameter_update(
        self,
        info: GQLInfo,
        input: Annotated[ParameterUpdateInput, strawberry.argument(description="The edit.")],
    ) -> ParameterUpdateResult:
        try:
            value = _value(input.number, input.boolean, input.text)
        except ValueError as exc:
            return _bad_value(str(exc))

        async def call(actor: Any, meta: Any) -> ParameterChangeResult:
            return await service.parameter_update(
                info.context.session,
                actor=actor,
                meta=meta,
                parameter_id=_id(input.id, "Parameter"),
                expected_version=input.expected_version,
                value=given(value),
                unit=given(input.unit) if input.unit is not None else given(strawberry.UNSET),
                formula=given(input.formula),
                name=given(input.name) if input.name is not None else given(strawberry.UNSET),
                description=given(input.description)
                if input.description is not None
                else given(strawberry.UNSET),
                uncertainty=given(input.uncertainty),
            )

        return await mutate(info, call, lambda r: _change_success(info, r))

    @strawberry.mutation(
        description="Set many values of one project at once: all succeed or none does; one "
        "recompute and one change event."
    )
    async def parameter_set_values(
        self,
        info: GQLInfo,
        input: Annotated[ParameterSetValuesInput, strawberry.argument(description="The edits.")],
    ) -> ParameterSetValuesResult:
        if not 1 <= len(input.items) <= MAX_BULK_ITEMS:
            return ValidationError(
                message=f"give 1 to {MAX_BULK_ITEMS} items",
                code="VALIDATION_ERROR",
                field="items",
            )
        items = []
        for i, item in enumerate(input.items):
            try:
                value = _value(item.number, item.boolean, item.text)
            except ValueError as exc:
                return ValidationError(
                    message=str(exc), code="VALIDATION_ERROR", field=f"items.{i}"
                )
            if value is strawberry.UNSET:
                return ValidationError(
                    message="give a value", code="VALIDATION_ERROR", field=f"items.{i}.number"
                )
            items.append(
                service.ParameterValueInput(
                    value=value,
                    id=_id(item.id, "Parameter"),
                    symbol=item.symbol,
                    unit=item.unit,
                    expected_version=item.expected_version,
                )
            )

        async def call(actor: Any, meta: Any) -> ParameterChangeResult:
            return await service.parameter_set_values(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                items=items,
            )

        return await mutate(info, call, lambda r: _change_success(info, r))

    @strawberry.mutation(description="Delete a parameter nothing depends on (soft delete).")
    async def parameter_delete(
        self,
        info: GQLInfo,
        input: Annotated[ParameterDeleteInput, strawberry.argument(description="Which one.")],
    ) -> ParameterDeleteResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.parameter_delete(
                info.context.session,
                actor=actor,
                meta=meta,
                parameter_id=_id(input.id, "Parameter"),
                expected_version=input.expected_version,
            )

        async def success(p: Any) -> ParameterDeleteSuccess:
            row = await fetch_row(info.context, P, p.id)
            return ParameterDeleteSuccess(
                deleted_id=relay.GlobalID("Parameter", str(p.id)), parameter=Parameter.from_row(row)
            )

        return await mutate(info, call, success)
