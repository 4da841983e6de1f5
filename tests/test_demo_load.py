"""``load_demo``: the smallsat through the services, idempotent, with a working token."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.service import resolve_token
from app.components.models import Component, ComponentType, Connector
from app.db import unit_of_work
from app.demo.load import load_demo
from app.demo.model import DEMO_USER, demo_model, demo_values
from app.parameters.models import Parameter
from app.requirements.compliance import evaluate_rule
from app.requirements.models import Requirement, TraceLink
from app.revisions.models import Revision
from tests.conftest import SECRET
from tests.services_kit import Maker, fingerprint


async def test_demo_loads_once_then_only_issues_tokens(sessionmaker: Maker) -> None:
    model = demo_model()
    async with unit_of_work(sessionmaker) as s:  # what `threadline demo` does
        first = await load_demo(s, secret_key=SECRET)
    assert first.created
    pid = first.project_id
    async with sessionmaker() as s:
        principal = await resolve_token(s, token=first.token, secret_key=SECRET)
        assert principal.email == DEMO_USER["email"] and principal.can_write
        counts = {
            model_cls.__tablename__: await s.scalar(
                select(func.count()).select_from(model_cls).where(model_cls.project_id == pid)
            )
            for model_cls in (
                ComponentType,
                Component,
                Connector,
                Parameter,
                Requirement,
                TraceLink,
                Revision,
            )
        }
        assert counts == {
            "component_types": len(model.component_types),
            "components": len(model.components),
            "connectors": len(model.connectors),
            "parameters": len(model.parameters),
            "requirements": len(model.requirements),
            "trace_links": len(model.trace_links),
            "revisions": 1,
        }
        # Stored values are the engine's; compliance matches the rules on them.
        values = demo_values()
        for row in await s.scalars(select(Parameter).where(Parameter.project_id == pid)):
            # Services store each derived value in its unit; the engine chains in SI: ulps.
            assert row.value_number == pytest.approx(values[row.symbol], rel=1e-12), row.symbol
        for spec in model.requirements:
            req = await s.scalar(
                select(Requirement).where(
                    Requirement.project_id == pid, Requirement.key == spec.key
                )
            )
            assert req is not None
            if spec.rule is None:
                assert (req.compliance, req.verification_method) == (
                    "UNKNOWN",
                    spec.verification_method,
                )
                continue
            expected = evaluate_rule(
                operator=spec.rule.operator,
                threshold=spec.rule.threshold,
                threshold_high=spec.rule.threshold_high,
                rule_unit=spec.rule.unit,
                value_kind="number",
                value=values[spec.rule.symbol],
                unit=model.parameter(spec.rule.symbol).unit,
            )
            assert req.compliance == expected[0]
            assert req.margin == pytest.approx(expected[1], rel=1e-9, abs=1e-12)
            assert req.compliance == "PASS", spec.key

    snapshot = await fingerprint(sessionmaker, pid)
    async with unit_of_work(sessionmaker) as s:
        second = await load_demo(s, secret_key=SECRET)
    assert (second.created, second.project_id, second.user_id) == (False, pid, first.user_id)
    assert second.token != first.token
    async with sessionmaker() as s:
        assert (await resolve_token(s, token=second.token, secret_key=SECRET)).email == (
            DEMO_USER["email"]
        )
    assert await fingerprint(sessionmaker, pid) == snapshot
