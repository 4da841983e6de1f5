"""Load the smallsat demo (``app.demo.model``) through the domain services.

Going through the services (not raw inserts) means the demo gets exactly what real
edits get: validated properties and ports, computed derived values, evaluated
compliance, history, audit rows and events. Idempotent: when the demo project
already exists only a fresh API token is issued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.service import RequestMeta
from app.auth.principal import Principal
from app.auth.service import create_user, issue_token, user_by_email
from app.components.connectors import connector_create
from app.components.service import component_create, component_type_create
from app.demo.model import DemoModel, demo_model
from app.parameters.service import parameter_create
from app.projects.models import Project
from app.projects.service import project_create
from app.requirements.service import RuleInput, requirement_create, trace_link_create
from app.revisions.service import revision_create

DEMO_META = RequestMeta(request_id="threadline-demo", ip=None, user_agent="threadline demo")


@dataclass(frozen=True, slots=True)
class DemoResult:
    token: str  # a new API token of the demo user (shown once)
    project_id: uuid.UUID
    created: bool  # False: the project already existed
    user_id: uuid.UUID


async def load_demo(
    session: AsyncSession,
    *,
    secret_key: str,
    email: str | None = None,
    organization: str | None = None,
) -> DemoResult:
    """Create the demo user and project (unless they exist) and issue an API token.

    ``email``/``organization`` override the demo user's, so tests can load
    independent copies side by side.
    """
    model = demo_model()
    email = email or model.user.email
    user = await user_by_email(session, email=email)
    if user is None:
        user = await create_user(
            session,
            email=email,
            password=model.user.password,
            organization=organization or model.user.organization,
            name=model.user.display_name,
        )
    issued = await issue_token(session, user=user, secret_key=secret_key, kind="api", name="demo")
    existing = await session.scalar(
        select(Project.id).where(
            Project.organization_id == user.organization_id,
            Project.name == model.project_name,
            Project.deleted_at.is_(None),
        )
    )
    if existing is not None:
        return DemoResult(issued.token, existing, False, user.id)
    actor = Principal(
        user_id=user.id,
        organization_id=user.organization_id,
        email=user.email,
        is_admin=user.is_admin,
        token_id=issued.row.id,
    )
    project_id = await _build(session, actor=actor, model=model)
    return DemoResult(issued.token, project_id, True, user.id)


async def _build(session: AsyncSession, *, actor: Principal, model: DemoModel) -> uuid.UUID:
    meta = DEMO_META
    project = await project_create(
        session,
        actor=actor,
        meta=meta,
        name=model.project_name,
        description=model.project_description,
    )
    pid = project.id
    types: dict[str, uuid.UUID] = {}
    for t in model.component_types:
        ctype = await component_type_create(
            session,
            actor=actor,
            meta=meta,
            project_id=pid,
            code=t.code,
            name=t.name,
            description=t.description,
            property_schema=t.property_schema,
            ports=[p.as_dict() for p in t.ports],
        )
        types[t.code] = ctype.id
    components: dict[str, uuid.UUID] = {}
    pending = list(model.components)
    while pending:  # parents before children, whatever the listing order
        ready = [c for c in pending if c.parent_tag is None or c.parent_tag in components]
        if not ready:
            raise ValueError("demo components have an unknown or cyclic parent")
        for c in ready:
            comp = await component_create(
                session,
                actor=actor,
                meta=meta,
                project_id=pid,
                tag=c.tag,
                name=c.name,
                type_id=types[c.type_code],
                parent_id=components[c.parent_tag] if c.parent_tag else None,
                description=c.description,
                properties=dict(c.properties),
                graphics=dict(c.graphics),
            )
            components[c.tag] = comp.id
        pending = [c for c in pending if c.tag not in components]
    for k in model.connectors:
        await connector_create(
            session,
            actor=actor,
            meta=meta,
            project_id=pid,
            source_component_id=components[k.source_tag],
            source_port=k.source_port,
            target_component_id=components[k.target_tag],
            target_port=k.target_port,
            kind=k.kind,
            name=k.name,
            properties=dict(k.properties),
        )
    parameters: dict[str, uuid.UUID] = {}
    for symbol in model.parameter_graph().topological_order():
        spec = model.parameter(symbol)
        param = await parameter_create(
            session,
            actor=actor,
            meta=meta,
            project_id=pid,
            symbol=spec.symbol,
            name=spec.name,
            value=spec.value,
            unit=spec.unit,
            formula=spec.formula,
            description=spec.description,
            uncertainty=spec.uncertainty,
            component_id=components[spec.component_tag] if spec.component_tag else None,
        )
        parameters[symbol] = param.id
    requirements: dict[str, uuid.UUID] = {}
    pending_reqs = list(model.requirements)
    while pending_reqs:
        ready_reqs = [
            r for r in pending_reqs if r.parent_key is None or r.parent_key in requirements
        ]
        if not ready_reqs:
            raise ValueError("demo requirements have an unknown or cyclic parent")
        for r in ready_reqs:
            rule = (
                RuleInput(
                    operator=r.rule.operator,
                    threshold=r.rule.threshold,
                    threshold_high=r.rule.threshold_high,
                    unit=r.rule.unit,
                    parameter_id=parameters[r.rule.symbol],
                )
                if r.rule
                else None
            )
            req = await requirement_create(
                session,
                actor=actor,
                meta=meta,
                project_id=pid,
                key=r.key,
                title=r.title,
                text=r.text,
                priority=r.priority,
                status=r.status,
                verification_method=r.verification_method,
                parent_id=requirements[r.parent_key] if r.parent_key else None,
                rule=rule,
            )
            requirements[r.key] = req.id
        pending_reqs = [r for r in pending_reqs if r.key not in requirements]
    targets = {"component": components, "parameter": parameters, "requirement": requirements}
    for link in model.trace_links:
        await trace_link_create(
            session,
            actor=actor,
            meta=meta,
            requirement_id=requirements[link.requirement_key],
            kind=link.kind,
            target_id=targets[link.target_type][link.target],
        )
    await revision_create(
        session,
        actor=actor,
        meta=meta,
        project_id=pid,
        name="A",
        description="Baseline of the demo as loaded.",
    )
    return pid


__all__ = ["DemoResult", "load_demo"]
