"""Parameter engine timings on the demo smallsat.

    .venv/bin/python bench/engine_bench.py [--n 1000000] [--repeat 7]

Prints: graph build, scalar edit recompute (µs), compile (cold / cached), and
vectorised evaluation of 1e6 scenarios (ms) for the mass/propellant chain and
for the full demo trade study. Best-of-N timings, single process.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.demo.model import demo_model, demo_values


def timed(fn: Callable[[], object], repeat: int, number: int = 1) -> tuple[float, float]:
    """(best, median) seconds per call."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return min(samples), statistics.median(samples)


def row(label: str, best: float, median: float, unit: str) -> None:
    scale = {"µs": 1e6, "ms": 1e3}[unit]
    print(f"  {label:<64} {best * scale:9.1f} {unit}   (median {median * scale:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="scenarios per vector call")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, repeat = args.n, args.repeat

    model = demo_model()
    print(
        f"threadline engine bench - Python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, {len(model.parameters)} demo parameters"
    )

    best, median = timed(model.parameter_graph, repeat, 20)
    row("build ParameterGraph (formulas parsed, cached)", best, median, "µs")

    graph = model.parameter_graph()
    values = demo_values()
    print(f"  downstream(m_payload) = {graph.downstream(['m_payload'])}")
    best, median = timed(lambda: graph.recompute(values, ["m_payload"]), repeat, 2000)
    row("scalar edit recompute: m_payload -> m_dry, m_prop, m_wet", best, median, "µs")
    closure = graph.downstream(["h"])
    best, median = timed(lambda: graph.recompute(values, ["h"]), repeat, 500)
    row(
        f"scalar edit recompute: h -> {len(closure)} derived (orbit, power, link)",
        best,
        median,
        "µs",
    )

    inputs, outputs = ["m_payload", "isp", "dv"], ["m_dry", "m_prop", "m_wet"]

    counter = itertools.count(1)

    def cold_compile() -> None:
        # A graph with one changed value has a new fingerprint: nothing is cached.
        fresh = model.parameter_graph({"h": 550.0 + next(counter) * 1e-9})
        fresh.compile(inputs, outputs)

    best, median = timed(cold_compile, repeat, 20)
    row("compile mass chain (cold, incl. graph build)", best, median, "µs")
    best, median = timed(lambda: graph.compile(inputs, outputs), repeat, 2000)
    row("compile mass chain (cached)", best, median, "µs")

    rng = np.random.default_rng(0)
    arrays = {
        "m_payload": rng.uniform(10.0, 30.0, n),
        "isp": rng.uniform(180.0, 260.0, n),
        "dv": rng.uniform(100.0, 200.0, n),
    }
    compiled = graph.compile(inputs, outputs)
    result = compiled(arrays)
    # Cross-check one scenario against the scalar path.
    i = n // 2
    scalar = graph.recompute(
        {**values, **{k: float(v[i]) for k, v in arrays.items()}}, ["m_payload", "isp", "dv"]
    )
    assert abs(result["m_wet"][i] - scalar["m_wet"]) <= 1e-12 * scalar["m_wet"]
    best, median = timed(lambda: compiled(arrays), repeat)
    row(f"vectorised mass chain, {n:,} scenarios (3 inputs, 3 outputs)", best, median, "ms")
    print(f"  -> {n / best / 1e6:.1f} M scenarios/s")

    study = model.trade_studies[0]
    study_inputs = {v.symbol: rng.uniform(v.min, v.max, n) for v in study.variables}
    study_model = graph.compile(list(study_inputs), list(study.outputs))
    study_model(study_inputs)
    best, median = timed(lambda: study_model(study_inputs), repeat)
    row(
        f"vectorised trade study, {n:,} scenarios ({len(study_model.order)} formulas)",
        best,
        median,
        "ms",
    )


if __name__ == "__main__":
    main()
