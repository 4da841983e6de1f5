"""Compliance and margin of a rule requirement (pure: no database).

The margin is in the rule's unit and positive when compliant: ``threshold - value``
for ``<=``/``<``, ``value - threshold`` for ``>=``/``>``, the distance to the nearer
bound for ``between``, and ``-|value - threshold|`` for ``==`` (0 when equal).
Boolean parameters support ``==`` only (threshold 1 = true, 0 = false) and have no
margin. A missing value gives UNKNOWN.
"""

from __future__ import annotations

import math

from app.parameters.engine_errors import EngineError
from app.parameters.units import convert

NUMERIC_OPERATORS = ("<=", "<", ">=", ">", "between")
# Relative tolerance of "==" on numbers: values from unit conversions differ by ulps.
EQUALITY_REL_TOL = 1e-9

ParameterValue = float | bool | str | None


def evaluate_rule(
    *,
    operator: str,
    threshold: float,
    threshold_high: float | None,
    rule_unit: str | None,
    value_kind: str,
    value: ParameterValue,
    unit: str,
) -> tuple[str, float | None]:
    """``(compliance, margin)`` of ``value`` (in ``unit``) against the rule."""
    if value is None:
        return "UNKNOWN", None
    if value_kind == "boolean":
        if operator != "==" or not isinstance(value, bool):
            return "UNKNOWN", None
        return ("PASS" if value == (threshold != 0.0) else "FAIL"), None
    if value_kind != "number" or isinstance(value, bool) or not isinstance(value, int | float):
        return "UNKNOWN", None
    try:
        v = convert(float(value), unit, rule_unit if rule_unit is not None else unit)
    except EngineError:
        return "UNKNOWN", None
    if operator in ("<=", "<"):
        margin = threshold - v
        ok = margin >= 0 if operator == "<=" else margin > 0
    elif operator in (">=", ">"):
        margin = v - threshold
        ok = margin >= 0 if operator == ">=" else margin > 0
    elif operator == "between":
        if threshold_high is None:
            return "UNKNOWN", None
        margin = min(v - threshold, threshold_high - v)
        ok = margin >= 0
    elif operator == "==":
        ok = math.isclose(v, threshold, rel_tol=EQUALITY_REL_TOL, abs_tol=1e-12)
        margin = 0.0 if ok else -abs(v - threshold)
    else:
        return "UNKNOWN", None
    if not math.isfinite(margin):
        return "UNKNOWN", None
    return ("PASS" if ok else "FAIL"), margin
