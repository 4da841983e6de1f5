"""Pareto front (non-dominated set) of any number of objectives, vectorised.

Point ``p`` dominates ``q`` when ``p`` is no worse in every objective and strictly
better in at least one. Identical objective vectors do not dominate each other,
so every copy of a front point is on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def pareto_mask(objectives: FloatArray, senses: Sequence[str]) -> BoolArray:
    """Which rows of ``objectives`` (rows x objectives) are on the front.

    ``senses`` holds ``"minimize"`` or ``"maximize"`` per column. Rows with a
    non-finite objective are never on the front (callers pass feasible rows).
    """
    values = np.asarray(objectives, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    if values.ndim != 2 or values.shape[1] != len(senses) or not senses:
        raise ValueError("objectives must be rows x len(senses), with at least one objective")
    sign = np.array([-1.0 if s == "maximize" else 1.0 for s in senses])
    costs = values * sign  # minimise everything
    finite = np.isfinite(costs).all(axis=1)
    result = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(finite)
    if rows.size == 0:
        return result
    # Duplicate vectors share one verdict: sort so copies are adjacent, decide on the
    # first of each run, then hand the verdict to the whole run.
    sub = costs[rows]
    order = _lexicographic_order(sub)
    ordered = sub[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    run = np.cumsum(first) - 1
    verdict = _front(ordered[first])
    result[rows[order]] = verdict[run]
    return result


def _lexicographic_order(costs: FloatArray) -> NDArray[np.intp]:
    order = np.argsort(costs[:, 0])
    first = costs[order, 0]
    if costs.shape[1] > 1 and bool((first[1:] == first[:-1]).any()):
        return np.lexsort(costs.T[::-1])  # ties in the first cost: full sort
    return order


def _front(costs: FloatArray) -> BoolArray:
    """Front of distinct cost vectors sorted lexicographically (minimisation)."""
    n, m = costs.shape
    if m == 1:
        # Distinct values: only the smallest is non-dominated.
        return np.asarray(np.arange(n) == 0)
    if m == 2:
        return _front_2d(costs)
    # Sort by the sum so that strong points come first and prune most others early;
    # the loop runs once per *front* point, each step vectorised over the survivors.
    order = np.argsort(costs.sum(axis=1), kind="stable")
    candidates = costs[order]
    alive = np.arange(n)
    i = 0
    while i < len(candidates):
        point = candidates[i]
        # Survivors: not dominated by `point` (better somewhere); `point` itself stays.
        keep = np.any(candidates < point, axis=1)
        keep[i] = True
        candidates = candidates[keep]
        alive = alive[keep]
        i = int(np.count_nonzero(keep[:i])) + 1
    mask = np.zeros(n, dtype=bool)
    mask[order[alive]] = True
    return mask


def _front_2d(costs: FloatArray) -> BoolArray:
    """Two objectives in O(n): ``costs`` are distinct and sorted by (first, second), so a
    point is on the front exactly when its second cost beats every earlier one."""
    second = costs[:, 1]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], second[:-1])))
    return np.asarray(second < best_before)


def pareto_mask_brute_force(objectives: FloatArray, senses: Sequence[str]) -> BoolArray:
    """The O(n²) definition, for tests and small inputs."""
    sign = np.array([-1.0 if s == "maximize" else 1.0 for s in senses])
    costs = np.asarray(objectives, dtype=np.float64) * sign
    finite = np.isfinite(costs).all(axis=1)
    le = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    lt = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominates = le & lt & finite[:, None] & finite[None, :]
    return np.asarray(finite & ~dominates.any(axis=0))
