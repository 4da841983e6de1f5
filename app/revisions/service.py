"""Revisions: named baselines of a project's parameters, requirements and components,
and diffs between two baselines or a baseline and now.

A snapshot is plain JSON keyed by kind; every item carries its id (so a renamed
component diffs as *changed*, not removed + added) and its natural key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.audit.service import RequestMeta, jsonable
from app.auth.principal import Principal
from app.components.models import Component, ComponentType
from app.parameters.models import Parameter
from app.parameters.recompute import param_value
from app.projects.models import Project
from app.requirements.models import Requirement
from app.revisions.errors import Duplicate, NotFound
from app.revisions.models import Revision
from app.service_support import (
    MAX_DESCRIPTION,
    authorize,
    authorize_object,
    clean_text,
    finish,
    lock_project,
)

MAX_NAME = 64
KINDS = ("parameters", "requirements", "components")
_KEYS = {"parameters": "symbol", "requirements": "key", "components": "tag"}


async def build_snapshot(session: AsyncSession, project_id: uuid.UUID) -> dict[str, Any]:
    """The project's live parameters, requirements and components as JSON (3 queries)."""
    owner = aliased(Component)
    params = await session.execute(
        select(Parameter, owner.tag)
        .outerjoin(owner, owner.id == Parameter.component_id)
        .where(Parameter.project_id == project_id, Parameter.deleted_at.is_(None))
        .order_by(Parameter.symbol)
    )
    parameters = [
        {
            "id": p.id,
            "symbol": p.symbol,
            "name": p.name,
            "value_kind": p.value_kind,
            "value": param_value(p),
            "unit": p.unit,
            "formula": p.formula,
            "uncertainty": p.uncertainty,
            "component": tag,
            "version": p.version,
        }
        for p, tag in params
    ]
    parent = aliased(Requirement)
    rule_param = aliased(Parameter)
    reqs = await session.execute(
        select(Requirement, parent.key, rule_param.symbol)
        .outerjoin(parent, parent.id == Requirement.parent_id)
        .outerjoin(rule_param, rule_param.id == Requirement.rule_parameter_id)
        .where(Requirement.project_id == project_id, Requirement.deleted_at.is_(None))
        .order_by(Requirement.key)
    )
    requirements = [
        {
            "id": r.id,
            "key": r.key,
            "title": r.title,
            "text": r.text,
            "priority": r.priority,
            "status": r.status,
            "verification_method": r.verification_method,
            "parent": parent_key,
            "compliance": r.compliance,
            "margin": r.margin,
            "rule": None
            if r.rule_operator is None
            else {
                "parameter": symbol,
                "operator": r.rule_operator,
                "threshold": r.rule_threshold,
                "threshold_high": r.rule_threshold_high,
                "unit": r.rule_unit,
            },
            "version": r.version,
        }
        for r, parent_key, symbol in reqs
    ]
    parent_c = aliased(Component)
    comps = await session.execute(
        select(Component, parent_c.tag, ComponentType.code)
        .outerjoin(parent_c, parent_c.id == Component.parent_id)
        .outerjoin(ComponentType, ComponentType.id == Component.type_id)
        .where(Component.project_id == project_id, Component.deleted_at.is_(None))
        .order_by(Component.tag)
    )
    components = [
        {
            "id": c.id,
            "tag": c.tag,
            "name": c.name,
            "parent": parent_tag,
            "type": code,
            "properties": c.properties,
            "version": c.version,
        }
        for c, parent_tag, code in comps
    ]
    snapshot: dict[str, Any] = jsonable(
        {"parameters": parameters, "requirements": requirements, "components": components}
    )
    return snapshot


async def revision_create(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta,
    project_id: uuid.UUID,
    name: str,
    description: str = "",
) -> Revision:
    """Freeze the project as revision ``name`` at its current event sequence."""
    await authorize(session, actor=actor, project_id=project_id, minimum="editor")
    name = clean_text(name, field="name", max_length=MAX_NAME)
    description = clean_text(
        description, field="description", max_length=MAX_DESCRIPTION, allow_empty=True
    )
    await lock_project(session, project_id)
    taken = await session.scalar(
        select(Revision.id).where(
            Revision.project_id == project_id,
            Revision.name == name,
            Revision.deleted_at.is_(None),
        )
    )
    if taken is not None:
        raise Duplicate(f"a revision named {name!r} already exists", field="name")
    # Read under the project lock: no event can slip in between this and the snapshot.
    sequence = await session.scalar(select(Project.event_sequence).where(Project.id == project_id))
    snapshot = await build_snapshot(session, project_id)
    revision = Revision(
        id=uuid.uuid4(),
        project_id=project_id,
        name=name,
        description=description,
        sequence=int(sequence or 0),
        snapshot=snapshot,
        created_by_id=actor.user_id,
    )
    session.add(revision)
    await session.flush()
    counts = {kind: len(snapshot[kind]) for kind in KINDS}
    await finish(
        session,
        actor=actor,
        meta=meta,
        project_id=project_id,
        action="revision.create",
        event_kind="revision.created",
        object_type="revision",
        object_id=revision.id,
        diff={"name": [None, name], "sequence": [None, revision.sequence]},
        payload={
            "object_type": "revision",
            "id": revision.id,
            "name": name,
            "sequence": revision.sequence,
            "counts": counts,
        },
    )
    return revision


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True, slots=True)
class ItemChange:
    """An item present on both sides: ``changes`` is ``{field: [old, new]}``."""

    id: str
    key: str  # symbol, requirement key or component tag (the newer one)
    changes: dict[str, list[Any]]


@dataclass(frozen=True, slots=True)
class KindDiff:
    added: tuple[dict[str, Any], ...]  # snapshot items only on the "to" side
    removed: tuple[dict[str, Any], ...]  # snapshot items only on the "from" side
    changed: tuple[ItemChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class RevisionDiff:
    from_revision: Revision
    to_revision: Revision | None  # None: the project now
    from_sequence: int
    to_sequence: int
    parameters: KindDiff
    requirements: KindDiff
    components: KindDiff


def diff_items(
    kind: str, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> KindDiff:
    """Added, removed and changed items of one kind, matched by id, ordered by key."""
    key = _KEYS[kind]
    before = {str(item["id"]): item for item in old}
    after = {str(item["id"]): item for item in new}

    def by_key(side: Mapping[str, Mapping[str, Any]], ids: set[str]) -> list[str]:
        return sorted(ids, key=lambda i: str(side[i][key]))

    changed: list[ItemChange] = []
    for item_id in by_key(after, before.keys() & after.keys()):
        a, b = before[item_id], after[item_id]
        changes = {
            f: [a.get(f), b.get(f)] for f in sorted(a.keys() | b.keys()) if a.get(f) != b.get(f)
        }
        if changes:
            changed.append(ItemChange(id=item_id, key=str(b[key]), changes=changes))
    return KindDiff(
        added=tuple(dict(after[i]) for i in by_key(after, after.keys() - before.keys())),
        removed=tuple(dict(before[i]) for i in by_key(before, before.keys() - after.keys())),
        changed=tuple(changed),
    )


async def _revision(session: AsyncSession, revision_id: uuid.UUID, field: str) -> Revision:
    revision = await session.scalar(
        select(Revision).where(Revision.id == revision_id, Revision.deleted_at.is_(None))
    )
    if revision is None:
        raise NotFound("revision not found", field=field)
    return revision


async def revision_diff(
    session: AsyncSession,
    *,
    actor: Principal,
    meta: RequestMeta | None = None,
    from_revision_id: uuid.UUID,
    to_revision_id: uuid.UUID | None = None,
) -> RevisionDiff:
    """What changed from one revision to another (``None``: to the project now).

    A read: ``meta`` is accepted for a uniform call signature and not recorded.
    """
    project_id = await authorize_object(
        session,
        actor=actor,
        model=Revision,
        object_id=from_revision_id,
        what="revision",
        minimum="viewer",
        field="from",
    )
    start = await _revision(session, from_revision_id, "from")
    end: Revision | None = None
    if to_revision_id is not None:
        end = await _revision(session, to_revision_id, "to")
        if end.project_id != project_id:
            # Not ValidationError: that would confirm a revision the caller may not see.
            raise NotFound("revision not found in this project", field="to")
        to_snapshot, to_sequence = end.snapshot, end.sequence
    else:
        to_snapshot = await build_snapshot(session, project_id)
        to_sequence = int(
            await session.scalar(select(Project.event_sequence).where(Project.id == project_id))
            or 0
        )
    diffs = {
        kind: diff_items(kind, start.snapshot.get(kind, []), to_snapshot.get(kind, []))
        for kind in KINDS
    }
    return RevisionDiff(
        from_revision=start,
        to_revision=end,
        from_sequence=start.sequence,
        to_sequence=to_sequence,
        parameters=diffs["parameters"],
        requirements=diffs["requirements"],
        components=diffs["components"],
    )
