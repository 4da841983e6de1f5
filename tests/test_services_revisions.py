"""Revisions: baselines freeze the demo; diffs list what changed, with old/new values."""

from __future__ import annotations

from sqlalchemy import select

from app.components.service import component_create
from app.demo.model import demo_model
from app.parameters.service import parameter_update
from app.projects.service import project_create
from app.revisions.models import Revision
from app.revisions.service import revision_create, revision_diff
from tests.conftest import Factory
from tests.services_kit import Maker, fails, load_demo_copy, ok, param, principal


async def test_revision_diff_after_an_edit_lists_changed_values(
    sessionmaker: Maker, factory: Factory
) -> None:
    demo = await load_demo_copy(sessionmaker)
    pid, actor = demo.project_id, demo.actor
    model = demo_model()
    async with sessionmaker() as s:
        rev_a = await s.scalar(select(Revision).where(Revision.project_id == pid))
    assert rev_a is not None and rev_a.name == "A"
    assert {k: len(v) for k, v in rev_a.snapshot.items()} == {
        "parameters": len(model.parameters),
        "requirements": len(model.requirements),
        "components": len(model.components),
    }
    frozen = {p["symbol"]: p for p in rev_a.snapshot["parameters"]}
    assert frozen["m_payload"]["value"] == 20.0 and frozen["m_wet"]["formula"] == "m_dry + m_prop"

    payload = await param(sessionmaker, pid, "m_payload")
    await ok(
        sessionmaker,
        parameter_update,
        actor=actor,
        parameter_id=payload.id,
        expected_version=1,
        value=24.0,
    )
    await ok(
        sessionmaker,
        component_create,
        actor=actor,
        project_id=pid,
        tag="PL-CAM-02",
        name="Second imager",
    )
    diff = await ok(sessionmaker, revision_diff, actor=actor, from_revision_id=rev_a.id)
    assert diff.to_revision is None and diff.to_sequence > diff.from_sequence == rev_a.sequence
    changed = {c.key: c.changes for c in diff.parameters.changed}
    assert sorted(changed) == ["m_dry", "m_payload", "m_prop", "m_wet"]
    assert changed["m_payload"] == {"value": [20.0, 24.0], "version": [1, 2]}
    m_wet = await param(sessionmaker, pid, "m_wet")
    assert changed["m_wet"]["value"] == [frozen["m_wet"]["value"], m_wet.value_number]
    reqs = {c.key: c.changes for c in diff.requirements.changed}
    assert list(reqs) == ["REQ-MASS-001"]
    assert reqs["REQ-MASS-001"]["compliance"] == ["PASS", "FAIL"]
    assert [c["tag"] for c in diff.components.added] == ["PL-CAM-02"]
    assert diff.components.removed == () and diff.parameters.added == ()

    rev_b = await ok(sessionmaker, revision_create, actor=actor, project_id=pid, name="B")
    between = await ok(
        sessionmaker,
        revision_diff,
        actor=actor,
        from_revision_id=rev_a.id,
        to_revision_id=rev_b.id,
    )
    assert {c.key for c in between.parameters.changed} == set(changed)
    since_b = await ok(sessionmaker, revision_diff, actor=actor, from_revision_id=rev_b.id)
    assert since_b.parameters.empty and since_b.requirements.empty and since_b.components.empty

    dup = await fails(sessionmaker, revision_create, actor=actor, project_id=pid, name="A")
    assert (dup.code, dup.field) == ("DUPLICATE", "name")
    stranger = await principal(sessionmaker, await factory.account())
    hidden = await fails(sessionmaker, revision_diff, actor=stranger, from_revision_id=rev_a.id)
    assert hidden.code == "NOT_FOUND"
    own = await ok(sessionmaker, project_create, actor=stranger, name="Other")
    rev_other = await ok(sessionmaker, revision_create, actor=stranger, project_id=own.id, name="A")
    cross = await fails(
        sessionmaker,
        revision_diff,
        actor=actor,
        from_revision_id=rev_a.id,
        to_revision_id=rev_other.id,
    )
    assert (cross.code, cross.field) == ("NOT_FOUND", "to")
