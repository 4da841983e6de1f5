"""Import every domain's tables so ``Base.metadata`` is complete (Alembic, tests)."""

from app.audit.models import AuditEntry
from app.auth.models import ApiToken, Organization, Team, TeamMember, User
from app.comments.models import Comment
from app.components.models import Component, ComponentType, Connector
from app.db import Base
from app.operations.models import PersistedOperation
from app.parameters.models import Parameter, ParameterDependency, ParameterVersion
from app.projects.models import Project, ProjectEvent, ProjectMember
from app.requirements.models import Requirement, TraceLink
from app.revisions.models import Revision
from app.trade_studies.models import Scenario, ScenarioResult, TradeStudy

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Comment",
    "Component",
    "ComponentType",
    "Connector",
    "Organization",
    "Parameter",
    "ParameterDependency",
    "ParameterVersion",
    "PersistedOperation",
    "Project",
    "ProjectEvent",
    "ProjectMember",
    "Requirement",
    "Revision",
    "Scenario",
    "ScenarioResult",
    "Team",
    "TeamMember",
    "TraceLink",
    "TradeStudy",
    "User",
]
