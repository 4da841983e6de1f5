"""Parameter graph: edges, cycles, downstream closures, recompute and compiled sweeps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.parameters.engine_errors import (
    CycleError,
    DimensionError,
    EngineError,
    EvaluationError,
    UnitError,
    UnknownSymbolError,
)
from app.parameters.graph import CompiledModel, ParameterGraph


def chain() -> ParameterGraph:
    """x, y inputs; a = x + 1; b = 2*a; c = b + y; d = y*3 (independent of x)."""
    return ParameterGraph(
        {"x": None, "y": None, "a": "x + 1", "b": "2*a", "c": "b + y", "d": "y*3"},
        values={"x": 1.0, "y": 10.0},
    )


def test_edges() -> None:
    graph = chain()
    assert graph.dependencies("c") == {"b", "y"}
    assert graph.dependencies("x") == frozenset()
    assert graph.dependents("y") == {"c", "d"}
    assert graph.dependents("c") == frozenset()
    assert graph.upstream(["c"]) == {"b", "a", "x", "y"}
    assert graph.is_derived("a") and not graph.is_derived("x")
    assert graph.symbols == {"x", "y", "a", "b", "c", "d"}
    with pytest.raises(UnknownSymbolError) as info:
        graph.dependents("nope")
    assert info.value.code == "UNKNOWN_SYMBOL"


def test_edge_to_unknown_symbol() -> None:
    with pytest.raises(UnknownSymbolError) as info:
        ParameterGraph({"a": "b + ghost + phantom", "b": None})
    assert info.value.code == "UNKNOWN_SYMBOL"
    assert info.value.symbols == ("ghost", "phantom")
    assert "'a'" in info.value.message


def test_bad_unit_is_rejected_at_construction() -> None:
    with pytest.raises(UnitError):
        ParameterGraph({"a": None}, {"a": "furlongs per banana"})


def test_cycle_path() -> None:
    graph = ParameterGraph({"a": "b + 1", "b": "c * 2", "c": "a - x", "x": None, "z": "x"})
    with pytest.raises(CycleError) as info:
        graph.check_acyclic()
    assert info.value.code == "CYCLE_DETECTED"
    assert info.value.path == ["a", "b", "c", "a"]
    assert info.value.message == "cycle: a -> b -> c -> a"
    # The path can start at the symbol being edited.
    assert graph.find_cycle(prefer="c") == ["c", "a", "b", "c"]
    with pytest.raises(CycleError):
        graph.topological_order()
    with pytest.raises(CycleError):
        graph.downstream(["x"])


def test_self_reference_is_a_cycle() -> None:
    graph = ParameterGraph({"a": "a + 1"})
    with pytest.raises(CycleError) as info:
        graph.check_acyclic()
    assert info.value.path == ["a", "a"]


def test_acyclic_graph_passes() -> None:
    chain().check_acyclic()
    assert chain().find_cycle() is None


def test_long_chain_has_no_recursion_problem() -> None:
    n = 5000
    formulas: dict[str, str | None] = {"p0": None}
    formulas.update({f"p{i}": f"p{i - 1} + 1" for i in range(1, n)})
    graph = ParameterGraph(formulas, values={"p0": 0.0})
    graph.check_acyclic()
    assert graph.recompute({}, ["p0"])[f"p{n - 1}"] == n - 1
    formulas["p0"] = f"p{n - 1}"
    with pytest.raises(CycleError) as info:
        ParameterGraph(formulas).check_acyclic()
    assert len(info.value.path) == n + 1


def test_topological_order() -> None:
    order = chain().topological_order()
    assert sorted(order) == sorted(chain().symbols)
    position = {symbol: i for i, symbol in enumerate(order)}
    for symbol in order:
        for dep in chain().dependencies(symbol):
            assert position[dep] < position[symbol]
    assert order == ["x", "a", "b", "y", "c", "d"]  # ties broken alphabetically


def test_downstream_is_only_the_closure() -> None:
    graph = chain()
    assert graph.downstream(["x"]) == ["a", "b", "c"]  # d does not depend on x
    assert graph.downstream(["y"]) == ["c", "d"]
    assert graph.downstream(["b"]) == ["b", "c"]  # an edited formula recomputes itself
    assert graph.downstream(["c"]) == ["c"]
    assert graph.downstream([]) == []
    assert graph.downstream(["x", "y"]) == ["a", "b", "c", "d"]


def test_recompute() -> None:
    graph = chain()
    assert graph.recompute({"x": 2.0, "y": 10.0}, ["x"]) == {"a": 3.0, "b": 6.0, "c": 16.0}
    # Values not given fall back to the graph's stored values (b is outside the closure).
    assert graph.recompute({"y": 0.5, "b": 4.0}, ["y"]) == {"c": 4.5, "d": 1.5}
    stored = ParameterGraph(
        {"x": None, "y": None, "a": "x + 1", "b": "2*a", "c": "b + y", "d": "y*3"},
        values={"x": 1.0, "y": 10.0, "b": 4.0},
    )
    assert stored.recompute({"y": 0.5}, ["y"]) == {"c": 4.5, "d": 1.5}
    assert stored.fingerprint == graph.fingerprint  # derived values are not baked in
    assert graph.evaluate_all() == {"a": 2.0, "b": 4.0, "c": 14.0, "d": 30.0}


def test_recompute_uses_current_values_of_derived_outside_the_closure() -> None:
    graph = ParameterGraph({"x": None, "y": None, "s": "x + y", "t": "s * 2"})
    # s is outside the closure of t: its current value comes from `values`.
    assert graph.recompute({"s": 5.0}, ["t"]) == {"t": 10.0}


def test_recompute_converts_units() -> None:
    graph = ParameterGraph(
        {"m": None, "n": None, "total": "m + n", "h": None, "t_c": None, "dt": "t_c - t_ref"}
        | {"t_ref": None},
        {"m": "g", "n": "kg", "total": "kg", "h": "km", "t_c": "degC", "t_ref": "K", "dt": "K"},
    )
    result = graph.recompute({"m": 500.0, "n": 2.0, "t_c": 25.0, "t_ref": 273.15}, ["m", "t_c"])
    assert result == {"total": pytest.approx(2.5), "dt": pytest.approx(25.0)}


def test_missing_and_invalid_values() -> None:
    graph = ParameterGraph({"x": None, "a": "x * 2"})
    with pytest.raises(EngineError) as info:
        graph.recompute({}, ["x"])
    assert info.value.code == "MISSING_VALUE"
    with pytest.raises(EngineError) as info:
        graph.recompute({"x": "ten"}, ["x"])  # type: ignore[dict-item]
    assert info.value.code == "INVALID_VALUE"
    with pytest.raises(EngineError) as info:
        ParameterGraph({"x": None}, values={"x": math.nan})
    assert info.value.code == "INVALID_VALUE"


def test_recompute_evaluation_error_names_the_symbol() -> None:
    graph = ParameterGraph({"x": None, "r": "1/x", "s": "r + 1"})
    with pytest.raises(EvaluationError) as info:
        graph.recompute({"x": 0.0}, ["x"])
    assert info.value.code == "EVALUATION_ERROR"
    assert info.value.symbol == "r"
    assert "division by zero" in info.value.message


def test_check_dimensions() -> None:
    ParameterGraph({"m": None, "v": None, "p": "m*v"}, {"m": "kg", "v": "m/s", "p": "N*s"})
    graph = ParameterGraph({"m": None, "v": None, "p": "m + v"}, {"m": "kg", "v": "m/s"})
    with pytest.raises(DimensionError) as info:
        graph.check_dimensions()
    assert info.value.code == "DIMENSION_MISMATCH"
    assert info.value.message.startswith("p: cannot add [mass] and [length] / [time]")


def test_fingerprint_tracks_what_a_compiled_model_bakes_in() -> None:
    base = chain()
    assert chain().fingerprint == base.fingerprint
    assert chain() == base and hash(chain()) == hash(base)
    changed_value = ParameterGraph(
        {"x": None, "y": None, "a": "x + 1", "b": "2*a", "c": "b + y", "d": "y*3"},
        values={"x": 1.0, "y": 11.0},
    )
    assert changed_value.fingerprint != base.fingerprint
    changed_unit = ParameterGraph({"x": None}, {"x": "m"})
    assert changed_unit.fingerprint != ParameterGraph({"x": None}, {"x": "km"}).fingerprint


# --------------------------------------------------------------------------- compiled


def test_compile_downstream_outputs() -> None:
    model = chain().compile(["x"])
    assert isinstance(model, CompiledModel)
    assert model.outputs == ("a", "b", "c")
    out = model({"x": np.array([0.0, 1.0, 2.0])})
    assert set(out) == {"a", "b", "c"}
    np.testing.assert_array_equal(out["c"], [12.0, 14.0, 16.0])  # y = 10 is baked in
    np.testing.assert_array_equal(out["a"], [1.0, 2.0, 3.0])


def test_compile_requested_outputs_and_constants() -> None:
    model = chain().compile(["x"], ["c", "d", "y", "x"])
    out = model({"x": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(out["c"], [14.0, 16.0])
    np.testing.assert_array_equal(out["d"], [30.0, 30.0])  # constant, broadcast
    np.testing.assert_array_equal(out["y"], [10.0, 10.0])
    np.testing.assert_array_equal(out["x"], [1.0, 2.0])
    assert model.order == ["a", "b", "c"]  # d is folded at compile time


def test_compile_scalar_inputs_and_broadcasting() -> None:
    model = chain().compile(["x", "y"])
    out = model({"x": 2.0, "y": np.array([0.0, 1.0])})
    np.testing.assert_array_equal(out["c"], [6.0, 7.0])
    scalar = model({"x": 2.0, "y": 1.0})
    assert scalar["c"].shape == ()
    assert float(scalar["c"]) == 7.0


def test_compiled_models_are_cached_per_fingerprint() -> None:
    assert chain().compile(["x"]) is chain().compile(["x"])
    assert chain().compile(["x"], ["c"]) is not chain().compile(["x"])


def test_compiled_units_and_offsets() -> None:
    graph = ParameterGraph(
        {"m": None, "t": None, "t0": None, "mk": "m * 2", "dt": "t - t0"},
        {"m": "g", "mk": "kg", "t": "degC", "t0": "K", "dt": "K"},
        {"m": 1.0, "t": 0.0, "t0": 273.15},
    )
    out = graph.compile(["m", "t"])({"m": np.array([500.0, 1500.0]), "t": np.array([20.0, 0.0])})
    np.testing.assert_allclose(out["mk"], [1.0, 3.0])
    np.testing.assert_allclose(out["dt"], [20.0, 0.0], atol=1e-9)


def test_compiled_never_raises_for_bad_values() -> None:
    graph = ParameterGraph({"x": None, "r": "sqrt(x)", "s": "log(x)"}, values={"x": 1.0})
    out = graph.compile(["x"])({"x": np.array([-1.0, 0.0, 4.0])})
    assert math.isnan(out["r"][0]) and out["r"][2] == 2.0
    assert out["s"][1] == -math.inf


def test_compiled_outputs_do_not_alias_inputs() -> None:
    graph = ParameterGraph({"x": None, "y": "x", "z": "y"}, values={"x": 0.0})
    data = np.array([1.0, 2.0])
    out = graph.compile(["x"])({"x": data})
    out["y"][0] = 99.0
    assert data[0] == 1.0 and out["z"][0] == 1.0


def test_compile_errors() -> None:
    graph = chain()
    with pytest.raises(EngineError) as info:
        graph.compile(["a"])
    assert info.value.code == "INVALID_INPUT"
    with pytest.raises(UnknownSymbolError):
        graph.compile(["nope"])
    with pytest.raises(UnknownSymbolError):
        graph.compile(["x"])({"y": np.zeros(2)})
    with pytest.raises(EngineError) as info:
        graph.compile(["x", "y"])({"x": np.zeros(2), "y": np.zeros(3)})
    assert info.value.code == "INVALID_VALUE"
    with pytest.raises(EngineError) as info:
        ParameterGraph({"x": None, "y": None, "s": "x + y"}, values={"x": 1.0}).compile(["x"])
    assert info.value.code == "MISSING_VALUE"


def test_compiled_matches_recompute() -> None:
    graph = ParameterGraph(
        {
            "m": None,
            "dv": None,
            "isp": None,
            "m_prop": "m*(exp(dv/(isp*g0)) - 1)",
            "m_wet": "m + m_prop",
        },
        {"m": "kg", "dv": "km/s", "isp": "s", "m_prop": "g", "m_wet": "kg"},
        {"m": 100.0, "dv": 0.15, "isp": 220.0},
    )
    rng = np.random.default_rng(7)
    ms, dvs = rng.uniform(50, 150, 50), rng.uniform(0.05, 0.3, 50)
    out = graph.compile(["m", "dv"])({"m": ms, "dv": dvs})
    for i in range(50):
        scalar = graph.recompute({"m": ms[i], "dv": dvs[i]}, ["m", "dv"])
        assert out["m_prop"][i] == pytest.approx(scalar["m_prop"], rel=1e-12)
        assert out["m_wet"][i] == pytest.approx(scalar["m_wet"], rel=1e-12)
