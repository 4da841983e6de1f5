"""Trade-study engine without a database: sampling, Pareto front, Sobol' indices,
feasibility reasons, binary COPY payloads."""

from __future__ import annotations

import math
import struct
import uuid

import numpy as np
import pytest

from app.demo.model import demo_model
from app.trade_studies import pgcopy
from app.trade_studies.definition import (
    Normalized,
    ObjectiveInput,
    ParamInfo,
    RuleInfo,
    VariableInput,
    freeze,
    normalize,
)
from app.trade_studies.errors import DesignTooLarge, ModelError, ValidationError
from app.trade_studies.execution import Prepared
from app.trade_studies.pareto import pareto_mask, pareto_mask_brute_force
from app.trade_studies.sampling import (
    DesignSpec,
    Variable,
    full_design,
    hash_rows,
    hex_digests,
    make_design,
)
from app.trade_studies.sensitivity import sobol_indices

X = (
    Variable("a", "", min=0.0, max=1.0, levels=3),
    Variable("b", "", values=(10.0, 20.0)),
    Variable("c", "", min=-1.0, max=1.0, levels=4),
)


def test_grid_is_full_factorial_first_variable_slowest() -> None:
    full = full_design(DesignSpec("GRID", X))
    assert full.shape == (24, 3)
    assert np.allclose(
        full[:4], [[0.0, 10.0, -1.0], [0.0, 10.0, -1 / 3], [0.0, 10.0, 1 / 3], [0.0, 10.0, 1.0]]
    )
    assert full[4].tolist() == [0.0, 20.0, -1.0] and full[8].tolist() == [0.5, 10.0, -1.0]
    assert len({tuple(r) for r in full.tolist()}) == 24
    design = make_design(DesignSpec("GRID", X))
    # Numbered by hash, yet the same set of rows, and inverse maps generation order back.
    assert design.size == 24
    assert np.array_equal(design.values[design.inverse], full)
    digests = [bytes(d).decode() for d in design.digests(0, 24)]
    assert digests == sorted(digests) and len(set(digests)) == 24


@pytest.mark.parametrize("method", ["LATIN_HYPERCUBE", "RANDOM", "SOBOL"])
def test_sampled_designs_are_reproducible_per_seed(method: str) -> None:
    variables = (Variable("a", "", min=2.0, max=4.0), Variable("b", "", min=0.0, max=1.0))
    one = make_design(DesignSpec(method, variables, 64, seed=7))
    two = make_design(DesignSpec(method, variables, 64, seed=7))
    other = make_design(DesignSpec(method, variables, 64, seed=8))
    assert np.array_equal(one.values, two.values)
    assert not np.array_equal(one.values, other.values)
    assert (one.values[:, 0] >= 2).all() and (one.values[:, 0] <= 4).all()
    if method == "LATIN_HYPERCUBE":  # one point per stratum in every dimension
        for j, (lo, hi) in enumerate([(2.0, 4.0), (0.0, 1.0)]):
            strata = np.floor((one.values[:, j] - lo) / (hi - lo) * 64).astype(int)
            assert sorted(strata.tolist()) == list(range(64))
    if method == "SOBOL":  # Saltelli: N·(d+2) rows, A/AB/B structure
        assert one.full_size == 64 * 4
        full = full_design(DesignSpec(method, variables, 64, seed=7)).reshape(64, 4, 2)
        a, ab1, ab2, b = full[:, 0], full[:, 1], full[:, 2], full[:, 3]
        assert np.array_equal(ab1[:, 0], b[:, 0]) and np.array_equal(ab1[:, 1], a[:, 1])
        assert np.array_equal(ab2[:, 1], b[:, 1]) and np.array_equal(ab2[:, 0], a[:, 0])


def test_distributions_map_the_unit_cube() -> None:
    n = 20_000
    spec = DesignSpec(
        "RANDOM",
        (
            Variable("u", "", min=1.0, max=3.0),
            Variable("l", "", min=1.0, max=1000.0, distribution="LOG_UNIFORM"),
            Variable("n", "", distribution="NORMAL", mean=5.0, std_dev=2.0),
            Variable("t", "", min=0.0, max=1.0, mode=0.0, distribution="TRIANGULAR"),
            Variable("d", "", values=(1.0, 2.0, 5.0)),
        ),
        n,
        seed=3,
    )
    x = full_design(spec)
    assert x[:, 0].min() >= 1.0 and x[:, 0].max() <= 3.0
    assert abs(np.median(np.log10(x[:, 1])) - 1.5) < 0.05  # log-uniform: median 10^1.5
    assert abs(x[:, 2].mean() - 5.0) < 0.05 and abs(x[:, 2].std() - 2.0) < 0.05
    assert abs(x[:, 3].mean() - 1.0 / 3.0) < 0.01  # triangular(0, 0, 1): mean 1/3
    assert set(np.unique(x[:, 4]).tolist()) == {1.0, 2.0, 5.0}


def test_hash_sees_exact_values_and_dedups_repeated_rows() -> None:
    rows = np.array([[1.0, 2.0], [1.0, 2.0], [-0.0, 2.0], [0.0, 2.0], [1.0, 2.0000000001]])
    h = hash_rows(rows, ["a", "b"])
    assert (h[0] == h[1]).all() and (h[2] == h[3]).all()
    assert len({tuple(r) for r in h.tolist()}) == 3
    assert not (hash_rows(rows, ["a", "c"])[0] == h[0]).all()  # salted by the symbols
    assert bytes(hex_digests(h[:1])[0]).decode() == f"{int(h[0, 0]):016x}{int(h[0, 1]):016x}"
    listed = make_design(
        DesignSpec("LIST", (Variable("a"), Variable("b")), rows=tuple(map(tuple, rows)))
    )
    assert listed.values.tolist() == [[1.0, 2.0], [-0.0, 2.0], [1.0, 2.0000000001]]
    assert listed.inverse.tolist() == [0, 0, 1, 1, 2]  # LIST keeps row order


@pytest.mark.parametrize("objectives", [1, 2, 3, 4])
def test_pareto_front_matches_brute_force(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    senses = ["minimize", "maximize", "minimize", "maximize"][:objectives]
    for trial in range(25):
        n = int(rng.integers(1, 300))
        if trial % 2:  # many ties and exact duplicates
            values = rng.integers(0, 6, (n, objectives)).astype(float)
        else:
            values = rng.normal(size=(n, objectives))
        if trial % 5 == 0:
            values[rng.random(n) < 0.1, 0] = np.nan
        assert np.array_equal(
            pareto_mask(values, senses), pareto_mask_brute_force(values, senses)
        ), (objectives, trial)


def test_sobol_indices_of_the_ishigami_function() -> None:
    """Saltelli design + SALib against the analytic indices (a = 7, b = 0.1).

    Tolerance: 0.03 absolute on every S1 and ST with N = 2^13 base points (the
    bootstrap 95 % half-widths are about 0.02).
    """
    a, b = 7.0, 0.1
    variables = tuple(Variable(f"x{i}", "", min=-math.pi, max=math.pi) for i in (1, 2, 3))
    design = make_design(DesignSpec("SOBOL", variables, 8192, seed=11))
    x = design.values
    y = np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])
    result = sobol_indices(y[design.inverse], ["x1", "x2", "x3"], seed=1)
    v = a**2 / 8 + b * math.pi**4 / 5 + b**2 * math.pi**8 / 18 + 0.5
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    s1 = [v1 / v, v2 / v, 0.0]
    st = [(v1 + v13) / v, v2 / v, v13 / v]
    for got, want in zip(result["S1"], s1, strict=True):
        assert abs(got - want) < 0.03
    for got, want in zip(result["ST"], st, strict=True):
        assert abs(got - want) < 0.03
    assert sobol_indices(np.full(5 * 8, 1.0), ["x1", "x2", "x3"])["error"]
    assert "no finite" in sobol_indices(np.full(5 * 8, np.nan), ["x1", "x2", "x3"])["error"]


def _project(extra: list[ParamInfo] | None = None) -> tuple[list[ParamInfo], list[RuleInfo]]:
    model = demo_model()
    params = [
        ParamInfo(uuid.uuid4(), p.symbol, p.unit, "number", p.formula, p.value)
        for p in model.parameters
    ] + (extra or [])
    rules = [
        RuleInfo(
            uuid.uuid4(),
            r.key,
            r.rule.symbol,
            r.rule.operator,
            r.rule.threshold,
            r.rule.threshold_high,
            r.rule.unit,
            "number",
        )
        for r in model.requirements
        if r.rule is not None
    ]
    return params, rules


def test_definition_validation_names_the_field() -> None:
    params, rules = _project()

    def norm(**kw: object) -> Normalized:
        base: dict[str, object] = {
            "method": "GRID",
            "variables": [VariableInput(symbol="h", min=400, max=700, levels=3)],
            "outputs": None,
            "objectives": [],
            "constraints": None,
            "rows": None,
            "sample_count": None,
            "seed": None,
            "params": params,
            "rules": rules,
            "default_seed": 1,
        }
        base.update(kw)
        return normalize(**base)  # type: ignore[arg-type]

    ok = norm()
    assert "T_orbit" in ok.definition["outputs"]  # default: everything downstream
    assert "REQ-ORB-001" in ok.definition["constraints"]  # default: rules on outputs
    with pytest.raises(ValidationError) as exc:
        norm(variables=[VariableInput(symbol="m_dry", min=1, max=2, levels=2)])
    assert exc.value.field == "variables.0.symbol" and "derived" in exc.value.message
    with pytest.raises(DesignTooLarge) as too_big:
        norm(
            variables=[
                VariableInput(symbol=s, min=1, max=2, levels=100)
                for s in ["h", "isp", "dv", "R_data"]
            ]
        )
    assert "100 x 100 x 100 x 100 = 100,000,000" in too_big.value.message
    with pytest.raises(Exception) as unit:
        norm(variables=[VariableInput(symbol="h", unit="kg", min=1, max=2, levels=2)])
    assert getattr(unit.value, "code", "") == "UNIT_MISMATCH"
    with pytest.raises(ValidationError) as nul:
        norm(variables=[VariableInput(symbol="h", unit="k\x00m", min=1, max=2, levels=2)])
    assert nul.value.field == "variables.0.unit"
    with pytest.raises(ValidationError) as obj:
        norm(objectives=[ObjectiveInput("m_wet", "minimize")], outputs=["T_orbit"])
    assert obj.value.field == "objectives.0.symbol"
    with pytest.raises(ValidationError):
        norm(method="LATIN_HYPERCUBE")  # needs sampleCount
    missing = [*params[:-1], ParamInfo(uuid.uuid4(), "k_dB", "dB", "number", None, None)]
    with pytest.raises(ModelError):
        norm(params=[p for p in missing if p.symbol != "k_dB" or p.value is None])


def test_infeasible_scenarios_get_the_root_cause_and_violated_rules() -> None:
    params = [
        ParamInfo(uuid.uuid4(), "x", "m", "number", None, 1.0),
        ParamInfo(uuid.uuid4(), "x0", "m", "number", None, 1.0),
        ParamInfo(uuid.uuid4(), "y", "m", "number", "sqrt(x/x0)*x0*x/x", None),
        ParamInfo(uuid.uuid4(), "z", "m", "number", "y + x", None),
    ]
    rules = [RuleInfo(uuid.uuid4(), "REQ-Z", "z", "<=", 150.0, None, "cm", "number")]
    norm = normalize(
        method="LIST",
        variables=[VariableInput(symbol="x")],
        outputs=["y", "z"],
        objectives=[],
        constraints=None,
        rows=[[-1.0], [0.25], [4.0], [0.0]],
        sample_count=None,
        seed=None,
        params=params,
        rules=rules,
        default_seed=1,
    )
    plan = freeze(
        method="LIST",
        definition=norm.definition,
        sample_count=None,
        seed=None,
        params=params,
        rules=rules,
    )
    ev = Prepared(plan).evaluate(0, 4)
    assert ev.feasible.tolist() == [False, True, False, False]
    reasons = [ev.reasons[i] if i >= 0 else None for i in ev.reason_index]
    details = [ev.reason_details[i] if i >= 0 else None for i in ev.reason_index]
    assert reasons == [
        "not computable: y is nan",
        None,
        "violates REQ-Z",
        "not computable: y is nan",  # 0/0
    ]
    assert details[0] == "not computable: y = sqrt(x/x0)*x0*x/x gives nan"
    assert details[2] == "violates REQ-Z (z <= 150 cm)"


def test_binary_copy_layout() -> None:
    ids = np.array([7], dtype=np.int64)
    study = uuid.uuid4()
    payload = pgcopy.scenarios_payload(
        ids, study, np.array([3]), hex_digests(np.array([[1, 2]], dtype=np.uint64)), np.ones((1, 2))
    )
    assert payload.startswith(pgcopy.HEADER) and payload.endswith(pgcopy.TRAILER)
    body = payload[len(pgcopy.HEADER) : -2]
    assert struct.unpack(">h", body[:2])[0] == len(pgcopy.SCENARIO_COLUMNS)
    assert struct.unpack(">iq", body[2:14]) == (8, 7)
    assert body[18:34] == study.bytes
    results = pgcopy.results_payload(
        ids, study, np.array([[np.nan]]), np.array([False]), np.array([0]), ["why"]
    )
    assert results.endswith(b"\x00\x00\x00\x03why" + pgcopy.TRAILER)
