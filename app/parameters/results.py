"""What a parameter operation changed: returned to the caller and sent as the event payload."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.parameters.models import Parameter
from app.projects.models import ProjectEvent
from app.requirements.compliance import ParameterValue
from app.requirements.models import Requirement


@dataclass(frozen=True, slots=True)
class ParameterValueChange:
    """One written parameter: its value/unit/version before and after."""

    parameter: Parameter
    cause: str  # "edit" | "recompute"
    old_value: ParameterValue
    new_value: ParameterValue
    old_unit: str
    unit: str
    old_version: int
    version: int
    changes: dict[str, list[Any]]  # {field: [old, new]}, as in the audit row

    @property
    def id(self) -> uuid.UUID:
        return self.parameter.id

    @property
    def symbol(self) -> str:
        return self.parameter.symbol

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "symbol": self.symbol,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "old_unit": self.old_unit,
            "unit": self.unit,
            "old_version": self.old_version,
            "version": self.version,
            "formula": self.parameter.formula,
            "changes": self.changes,
        }


@dataclass(frozen=True, slots=True)
class RequirementComplianceChange:
    """A rule requirement whose compliance or margin moved."""

    requirement: Requirement
    old_compliance: str
    new_compliance: str
    old_margin: float | None
    new_margin: float | None

    @property
    def id(self) -> uuid.UUID:
        return self.requirement.id

    @property
    def key(self) -> str:
        return self.requirement.key

    @property
    def compliance_changed(self) -> bool:
        return self.old_compliance != self.new_compliance

    def as_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "old_compliance": self.old_compliance,
            "new_compliance": self.new_compliance,
            "old_margin": self.old_margin,
            "new_margin": self.new_margin,
            "unit": self.requirement.rule_unit,
        }


@dataclass(frozen=True, slots=True)
class ParameterChangeResult:
    """What one parameter operation changed (also the ``parameter.changed`` payload).

    ``parameters`` are the operation's targets in input order (also when unchanged);
    ``event`` is None when the operation changed nothing.
    """

    parameters: tuple[Parameter, ...]
    edited: tuple[ParameterValueChange, ...]
    recomputed: tuple[ParameterValueChange, ...]
    requirements: tuple[RequirementComplianceChange, ...]
    suspect_link_ids: tuple[uuid.UUID, ...]
    event: ProjectEvent | None

    @property
    def parameter(self) -> Parameter:
        return self.parameters[0]

    @property
    def compliance_changes(self) -> tuple[RequirementComplianceChange, ...]:
        return tuple(r for r in self.requirements if r.compliance_changed)

    @property
    def sequence(self) -> int | None:
        return self.event.sequence if self.event else None
