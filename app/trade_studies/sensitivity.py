"""Sobol' sensitivity indices of a SOBOL study (SALib), pure.

A SOBOL study's design is Saltelli's ``N·(d+2)`` rows (see
:mod:`app.trade_studies.sampling`); given the outputs in that order,
:func:`sobol_indices` returns first-order (S1) and total (ST) indices with their
bootstrap confidence half-widths per variable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Bootstrap resamples cost N x resamples memory; cap the product.
_MAX_RESAMPLE_CELLS = 4_000_000
CONF_LEVEL = 0.95


def sobol_indices(
    y: FloatArray, variables: Sequence[str], *, seed: int | None = None
) -> dict[str, Any]:
    """``{"S1", "S1_conf", "ST", "ST_conf"}`` (lists in ``variables`` order) for one output.

    ``y`` is the output over the Saltelli design, in design order. Returns
    ``{"error": ...}`` instead when the output is not finite everywhere or constant.
    """
    from SALib.analyze import sobol  # type: ignore[import-untyped]

    d = len(variables)
    values = np.asarray(y, dtype=np.float64).reshape(-1)
    if values.size == 0 or values.size % (d + 2):
        return {"error": f"expected N·{d + 2} values, got {values.size}"}
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        return {"error": f"{bad} scenario(s) have no finite value; indices undefined"}
    if np.ptp(values) == 0.0:
        return {"error": "the output is constant; indices undefined"}
    n = values.size // (d + 2)
    resamples = int(max(10, min(100, _MAX_RESAMPLE_CELLS // max(1, n))))
    problem = {
        "num_vars": d,
        "names": list(variables),
        "bounds": [[0.0, 1.0]] * d,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sobol.analyze(
            problem,
            values,
            calc_second_order=False,
            num_resamples=resamples,
            conf_level=CONF_LEVEL,
            print_to_console=False,
            seed=seed if seed else 1,
        )
    return {
        key: [_clean(v) for v in np.asarray(result[key], dtype=np.float64)]
        for key in ("S1", "S1_conf", "ST", "ST_conf")
    }


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
