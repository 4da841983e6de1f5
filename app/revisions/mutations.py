"""GraphQL: create revisions (baselines) and diff them (`revisionDiff`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from app.errors import DomainError
from app.graphql.common import decode_id
from app.graphql.mutations import GQLInfo, fetch_row, mutate, result_union
from app.revisions import service
from app.revisions.models import Revision as RevisionModel
from app.revisions.schema import Revision

RV = RevisionModel.__table__
# Snapshot kind -> GraphQL type of its items (for their global ids) and their key field.
_ITEM_TYPES = {
    "parameters": ("Parameter", "symbol"),
    "requirements": ("Requirement", "key"),
    "components": ("Component", "tag"),
}


def _id(gid: relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID of a global id; a mistyped or malformed one reads as missing."""
    return decode_id(gid, type_name) or uuid.UUID(int=0)


@strawberry.input(description="Freeze a project's parameters, requirements and components.")
class RevisionCreateInput:
    project_id: relay.GlobalID = strawberry.field(description="The project.")
    name: str = strawberry.field(
        description="Name unique in the project, e.g. `B` or `PDR` (1 to 64 characters)."
    )
    description: str = strawberry.field(default="", description="Free text.")


@strawberry.type(description="The created revision.")
class RevisionCreateSuccess:
    revision: Revision = strawberry.field(description="The new baseline.")


if TYPE_CHECKING:
    RevisionCreateResult = Any
else:
    RevisionCreateResult = result_union(
        "RevisionCreateResult", RevisionCreateSuccess, "The new revision, or why not."
    )


@strawberry.type
class RevisionMutation:
    @strawberry.mutation(
        description="Take a named baseline of the project at its current event sequence."
    )
    async def revision_create(
        self,
        info: GQLInfo,
        input: Annotated[RevisionCreateInput, strawberry.argument(description="The revision.")],
    ) -> RevisionCreateResult:
        async def call(actor: Any, meta: Any) -> Any:
            return await service.revision_create(
                info.context.session,
                actor=actor,
                meta=meta,
                project_id=_id(input.project_id, "Project"),
                name=input.name,
                description=input.description,
            )

        async def success(r: Any) -> RevisionCreateSuccess:
            row = await fetch_row(info.context, RV, r.id)
            return RevisionCreateSuccess(revision=Revision.from_row(row))

        return await mutate(info, call, success)


# --------------------------------------------------------------------------- diff


@strawberry.type(description="One field of an item that differs between the two sides.")
class RevisionFieldChange:
    field: str = strawberry.field(
        description="Snapshot field name (e.g. `value`, `formula`, `compliance`, `rule`)."
    )
    old: JSON | None = strawberry.field(description="Value on the `from` side.")
    new: JSON | None = strawberry.field(description="Value on the `to` side.")


@strawberry.type(description="An item present on one side only, as its snapshot recorded it.")
class RevisionItem:
    id: relay.GlobalID = strawberry.field(
        description="Global id of the Parameter, Requirement or Component."
    )
    key: str = strawberry.field(description="Its symbol, requirement key or component tag.")
    snapshot: JSON = strawberry.field(
        description="The frozen fields (value in the parameter's unit, compliance, rule…)."
    )


@strawberry.type(description="An item present on both sides whose fields differ.")
class RevisionItemChange:
    id: relay.GlobalID = strawberry.field(
        description="Global id of the Parameter, Requirement or Component."
    )
    key: str = strawberry.field(description="Its symbol, key or tag (the `to` side's).")
    changes: list[RevisionFieldChange] = strawberry.field(
        description="The differing fields, by name."
    )


@strawberry.type(description="Differences of one kind of item, each list ordered by key.")
class RevisionKindDiff:
    added: list[RevisionItem] = strawberry.field(description="Only on the `to` side.")
    removed: list[RevisionItem] = strawberry.field(description="Only on the `from` side.")
    changed: list[RevisionItemChange] = strawberry.field(description="On both, with changes.")


@strawberry.type(description="What changed between two revisions, or a revision and now.")
class RevisionDiff:
    from_revision: Revision = strawberry.field(description="The baseline compared from.")
    to_revision: Revision | None = strawberry.field(
        description="The revision compared to; null when compared with the project now."
    )
    from_sequence: int = strawberry.field(description="Event sequence of the `from` side.")
    to_sequence: int = strawberry.field(description="Event sequence of the `to` side.")
    parameters: RevisionKindDiff = strawberry.field(description="Parameter differences.")
    requirements: RevisionKindDiff = strawberry.field(description="Requirement differences.")
    components: RevisionKindDiff = strawberry.field(description="Component differences.")


def _item(type_name: str, key_field: str, item: Mapping[str, Any]) -> RevisionItem:
    return RevisionItem(
        id=relay.GlobalID(type_name, str(item["id"])),
        key=str(item[key_field]),
        snapshot=cast(JSON, dict(item)),
    )


def _kind(kind: str, d: service.KindDiff) -> RevisionKindDiff:
    type_name, key_field = _ITEM_TYPES[kind]
    return RevisionKindDiff(
        added=[_item(type_name, key_field, i) for i in d.added],
        removed=[_item(type_name, key_field, i) for i in d.removed],
        changed=[
            RevisionItemChange(
                id=relay.GlobalID(type_name, c.id),
                key=c.key,
                changes=[
                    RevisionFieldChange(field=f, old=old, new=new)
                    for f, (old, new) in sorted(c.changes.items())
                ],
            )
            for c in d.changed
        ],
    )


def diff_result(d: service.RevisionDiff) -> RevisionDiff:
    """The GraphQL view of a service diff."""
    return RevisionDiff(
        from_revision=Revision.from_row(_row(d.from_revision)),
        to_revision=Revision.from_row(_row(d.to_revision)) if d.to_revision else None,
        from_sequence=d.from_sequence,
        to_sequence=d.to_sequence,
        parameters=_kind("parameters", d.parameters),
        requirements=_kind("requirements", d.requirements),
        components=_kind("components", d.components),
    )


def _row(revision: RevisionModel) -> Any:
    return {c.key: getattr(revision, c.key) for c in RV.columns}


@strawberry.type
class RevisionQuery:
    @strawberry.field(
        description="What changed from revision `from` to revision `to` (same project), or to "
        "the project now when `to` is null: parameters, requirements and components added, "
        "removed and changed with old/new values. Null if a revision is missing or not visible."
    )
    async def revision_diff(
        self,
        info: GQLInfo,
        from_: Annotated[
            relay.GlobalID,
            strawberry.argument(name="from", description="The `Revision` compared from."),
        ],
        to: Annotated[
            relay.GlobalID | None,
            strawberry.argument(description="The `Revision` compared to; null: the project now."),
        ] = None,
    ) -> RevisionDiff | None:
        principal = info.context.principal
        if principal is None:
            return None
        try:
            d = await service.revision_diff(
                info.context.session,
                actor=principal,
                from_revision_id=_id(from_, "Revision"),
                to_revision_id=None if to is None else _id(to, "Revision"),
            )
        except DomainError:
            return None  # missing and invisible look the same
        return diff_result(d)
