"""Design-of-experiments sampling (pure numpy/scipy, no database).

A study's design is a matrix of variable values, one row per scenario, generated
deterministically from the definition (same method, variables, sample count and
seed → the same rows):

* ``GRID``: full factorial over each variable's levels (first variable slowest);
* ``LATIN_HYPERCUBE``: :class:`scipy.stats.qmc.LatinHypercube`;
* ``SOBOL``: Saltelli's design over a scrambled Sobol' sequence
  (:class:`scipy.stats.qmc.Sobol`), ``N·(d+2)`` rows in the order SALib's
  ``sobol.analyze(calc_second_order=False)`` expects, so first-order and total
  indices come from the same scenarios;
* ``RANDOM``: uniform pseudo-random (numpy's PCG64);
* ``LIST``: explicit rows.

Sampled methods draw from the unit hypercube and map each column through the
variable's distribution (uniform, log-uniform, normal, triangular, or a discrete
uniform choice among explicit values).

Every row gets a 128-bit hash of its values (vectorised: no Python loop per
scenario). :func:`make_design` drops repeated rows and, except for LIST, numbers
the scenarios in hash order, which makes inserting them append-only for the
``(trade_study_id, index)`` and ``(trade_study_id, input_hash)`` indexes.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
U64Array = NDArray[np.uint64]
IntArray = NDArray[np.int64]

METHODS = ("GRID", "LATIN_HYPERCUBE", "SOBOL", "RANDOM", "LIST")
DISTRIBUTIONS = ("UNIFORM", "LOG_UNIFORM", "NORMAL", "TRIANGULAR")

MAX_SCENARIOS = 2_000_000
MAX_VARIABLES = 32
MAX_LEVELS = 10_000
MAX_LIST_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class Variable:
    """One design variable; every number is in ``unit`` (the parameter's unit).

    Either ``values`` (explicit levels / a discrete set) or ``min``/``max``. GRID
    uses ``levels`` evenly spaced points from min to max; sampled methods use the
    distribution (``mean``/``std_dev`` for NORMAL, ``mode`` for TRIANGULAR).
    """

    symbol: str
    unit: str = ""
    values: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    levels: int | None = None
    distribution: str = "UNIFORM"
    mean: float | None = None
    std_dev: float | None = None
    mode: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbol, "unit": self.unit}
        for name in ("min", "max", "levels", "mean", "std_dev", "mode"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.values is not None:
            out["values"] = list(self.values)
        out["distribution"] = self.distribution
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variable:
        values = data.get("values")
        return cls(
            symbol=str(data["symbol"]),
            unit=str(data.get("unit") or ""),
            values=tuple(float(v) for v in values) if values is not None else None,
            min=_opt_float(data.get("min")),
            max=_opt_float(data.get("max")),
            levels=int(data["levels"]) if data.get("levels") is not None else None,
            distribution=str(data.get("distribution") or "UNIFORM"),
            mean=_opt_float(data.get("mean")),
            std_dev=_opt_float(data.get("std_dev")),
            mode=_opt_float(data.get("mode")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, eq=False)
class DesignSpec:
    """Everything that determines a design. ``rows`` (LIST) is a ``(rows, variables)``
    float array."""

    method: str
    variables: tuple[Variable, ...]
    sample_count: int | None = None
    seed: int | None = None
    rows: Any = None

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(v.symbol for v in self.variables)


def grid_levels(variable: Variable) -> FloatArray:
    if variable.values is not None:
        return np.asarray(variable.values, dtype=np.float64)
    assert variable.min is not None and variable.max is not None and variable.levels
    return np.linspace(variable.min, variable.max, variable.levels)


def sobol_base_size(sample_count: int) -> int:
    """SOBOL base points: the sample count rounded up to a power of two."""
    return 1 << max(0, math.ceil(math.log2(max(1, sample_count))))


def design_size(spec: DesignSpec) -> int:
    """Rows of the full design (before repeated rows are dropped)."""
    d = len(spec.variables)
    if spec.method == "GRID":
        return math.prod(len(grid_levels(v)) for v in spec.variables)
    if spec.method == "LIST":
        return 0 if spec.rows is None else len(spec.rows)
    count = spec.sample_count or 0
    if spec.method == "SOBOL":
        return sobol_base_size(count) * (d + 2)
    return count


def unit_samples(method: str, d: int, n: int, seed: int | None) -> FloatArray:
    """``n`` rows in the unit hypercube ``[0, 1)^d`` (SOBOL: ``n`` base points, Saltelli
    design of ``n·(d+2)`` rows)."""
    from scipy.stats import qmc  # type: ignore[import-untyped]

    if method == "LATIN_HYPERCUBE":
        return np.asarray(qmc.LatinHypercube(d=d, rng=seed).random(n), dtype=np.float64)
    if method == "RANDOM":
        return np.random.default_rng(seed).random((n, d))
    if method == "SOBOL":
        with warnings.catch_warnings():
            # n is a power of two; scipy warns about balance otherwise.
            warnings.simplefilter("ignore", UserWarning)
            base = qmc.Sobol(d=2 * d, scramble=True, rng=seed).random(n)
        return saltelli(base[:, :d], base[:, d:])
    raise ValueError(f"{method} has no unit-cube samples")


def saltelli(a: FloatArray, b: FloatArray) -> FloatArray:
    """Rows ``A, AB_1 … AB_d, B`` per base point (``AB_k`` = A with column k from B)."""
    n, d = a.shape
    out = np.empty((n, d + 2, d), dtype=np.float64)
    out[:, 0, :] = a
    for k in range(d):  # one vectorised copy per variable, not per scenario
        out[:, 1 + k, :] = a
        out[:, 1 + k, k] = b[:, k]
    out[:, d + 1, :] = b
    return out.reshape(n * (d + 2), d)


def transform(u: FloatArray, variable: Variable) -> FloatArray:
    """Map unit-interval samples through the variable's distribution."""
    if variable.values is not None:
        values = np.asarray(variable.values, dtype=np.float64)
        index = np.minimum((u * len(values)).astype(np.int64), len(values) - 1)
        return values[index]
    kind = variable.distribution
    if kind == "NORMAL":
        from scipy.special import ndtri  # type: ignore[import-untyped]

        assert variable.mean is not None and variable.std_dev is not None
        tiny = np.finfo(np.float64).tiny
        z = ndtri(np.clip(u, tiny, 1.0 - np.finfo(np.float64).eps))
        return np.asarray(variable.mean + variable.std_dev * z, dtype=np.float64)
    assert variable.min is not None and variable.max is not None
    lo, hi = variable.min, variable.max
    if kind == "LOG_UNIFORM":
        return np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    if kind == "TRIANGULAR":
        mode = variable.mode if variable.mode is not None else (lo + hi) / 2
        width = hi - lo
        cut = (mode - lo) / width
        left = lo + np.sqrt(u * width * (mode - lo))
        right = hi - np.sqrt((1.0 - u) * width * (hi - mode))
        return np.where(u < cut, left, right)
    return lo + u * (hi - lo)


def full_design(spec: DesignSpec) -> FloatArray:
    """The design in generation order: ``(rows, variables)``, values in each variable's unit."""
    d = len(spec.variables)
    if spec.method == "GRID":
        levels = [grid_levels(v) for v in spec.variables]
        n = math.prod(len(lv) for lv in levels)
        index = np.arange(n, dtype=np.int64)
        out = np.empty((n, d), dtype=np.float64)
        stride = n
        for j, lv in enumerate(levels):
            stride //= len(lv)
            out[:, j] = lv[(index // stride) % len(lv)]
        return out
    if spec.method == "LIST":
        rows = spec.rows if spec.rows is not None else np.empty((0, d))
        return np.asarray(rows, dtype=np.float64).reshape(-1, d)
    count = spec.sample_count or 0
    n = sobol_base_size(count) if spec.method == "SOBOL" else count
    u = unit_samples(spec.method, d, n, spec.seed)
    out = np.empty_like(u)
    for j, variable in enumerate(spec.variables):
        out[:, j] = transform(u[:, j], variable)
    return out


# --------------------------------------------------------------------------- hashing

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def _fmix(k: U64Array) -> U64Array:
    """MurmurHash3's 64-bit finaliser, in place (uint64 arithmetic wraps, vectorised)."""
    k ^= k >> _S33
    k *= _M1
    k ^= k >> _S33
    k *= _M2
    k ^= k >> _S33
    return k


def hash_rows(values: FloatArray, symbols: Sequence[str]) -> U64Array:
    """A 128-bit hash ``(rows, 2)`` of each row's exact float64 values.

    Salted with the variable symbols, so the same numbers for other variables
    hash differently. ``-0.0`` and ``0.0`` hash alike.
    """
    salt = hashlib.sha256("\x1f".join(symbols).encode()).digest()
    lanes = (int.from_bytes(salt[:8], "little"), int.from_bytes(salt[8:16], "little"))
    # One contiguous array per variable (+ 0.0 turns -0.0 into 0.0).
    columns = np.ascontiguousarray((values + 0.0).T).view(np.uint64)
    out = np.empty((values.shape[0], 2), dtype=np.uint64)
    for lane, seed in enumerate(lanes):
        h = np.full(values.shape[0], np.uint64(seed), dtype=np.uint64)
        for j in range(columns.shape[0]):  # per variable, vectorised over rows
            h ^= columns[j]
            h ^= np.uint64(j + 1)
            _fmix(h)
        out[:, lane] = h
    return out


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_digests(hashes: U64Array) -> NDArray[np.uint8]:
    """``(rows, 32)`` ASCII hex digits of 128-bit hashes (big-endian: sorts like the hash)."""
    raw = np.ascontiguousarray(hashes.astype(">u8")).view(np.uint8).reshape(len(hashes), 16)
    out = np.empty((len(hashes), 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def hex_digest(row_hash: U64Array) -> str:
    return bytes(hex_digests(row_hash.reshape(1, 2))[0]).decode()


# --------------------------------------------------------------------------- design


class Design:
    """The deduplicated, numbered design of a study.

    Scenario ``i`` (its ``index``) is row ``chosen[i]`` of the full design: its
    inputs are :meth:`rows` ``(i, i+1)``, its hash :meth:`hash_slice`. Gathering in
    scenario order happens per chunk, so planning only hashes and sorts.
    ``inverse[r]`` is the scenario of full-design row ``r`` (several rows map to one
    scenario when repeated); computed on first use (only SOBOL sensitivity needs it).
    """

    def __init__(
        self,
        spec: DesignSpec,
        full: FloatArray,
        full_hashes: U64Array,
        chosen: IntArray | None,
        order: IntArray | None = None,
        new: NDArray[np.bool_] | None = None,
    ) -> None:
        self.spec = spec
        self._full = full
        self._full_hashes = full_hashes
        self._chosen = chosen  # None: the identity (no repeats, generation order)
        self._order = order  # full rows in scenario order, repeats adjacent (None: identity)
        self._new = new  # per position of _order: first of its run (None: all are)
        self._inverse: IntArray | None = None
        self.full_size = int(full.shape[0])

    @property
    def size(self) -> int:
        return self.full_size if self._chosen is None else int(self._chosen.shape[0])

    def rows(self, start: int, stop: int) -> FloatArray:
        if self._chosen is None:
            return self._full[start:stop]
        return self._full[self._chosen[start:stop]]

    def hash_slice(self, start: int, stop: int) -> U64Array:
        if self._chosen is None:
            return self._full_hashes[start:stop]
        return self._full_hashes[self._chosen[start:stop]]

    @property
    def values(self) -> FloatArray:
        """Every scenario's inputs, in index order."""
        return self.rows(0, self.size)

    @property
    def hashes(self) -> U64Array:
        return self.hash_slice(0, self.size)

    def digests(self, start: int, stop: int) -> NDArray[np.uint8]:
        return hex_digests(self.hash_slice(start, stop))

    @property
    def inverse(self) -> IntArray:
        if self._inverse is None:
            n = self.full_size
            order = self._order if self._order is not None else np.arange(n, dtype=np.int64)
            rank = (
                np.arange(n, dtype=np.int64)
                if self._new is None
                else np.cumsum(self._new, dtype=np.int64) - 1
            )
            inverse = np.empty(n, dtype=np.int64)
            inverse[order] = rank
            self._inverse = inverse
        return self._inverse


def _runs(hashes: U64Array, order: IntArray) -> tuple[NDArray[np.bool_] | None, bool]:
    """Which positions of ``order`` start a run of equal hashes (None: every one does),
    and whether two different hashes share their first 64 bits there."""
    first = hashes[order, 0]
    new = np.empty(order.shape[0], dtype=bool)
    new[:1] = True
    np.not_equal(first[1:], first[:-1], out=new[1:])
    if new.all():
        return None, False
    second = hashes[order, 1]
    differs = second[1:] != second[:-1]
    collision = bool((~new[1:] & differs).any())
    new[1:] |= differs
    return new, collision


def make_design(spec: DesignSpec) -> Design:
    """Generate, hash, drop repeated rows and number the scenarios (see the module doc)."""
    full = full_design(spec)
    hashes = hash_rows(full, spec.symbols)
    n = full.shape[0]
    if spec.method == "LIST":
        # Numbered in row order; a repeated row maps to its first occurrence.
        order = np.lexsort((np.arange(n), hashes[:, 1], hashes[:, 0]))
        new, _ = _runs(hashes, order)
        if new is None:
            return Design(spec, full, hashes, None)
        group = np.cumsum(new) - 1
        first_row = order[new]
        keep = np.zeros(n, dtype=bool)
        keep[first_row] = True
        rank = np.cumsum(keep) - 1
        design = Design(spec, full, hashes, np.flatnonzero(keep).astype(np.int64))
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = rank[first_row[group]]
        design._inverse = inverse
        return design
    # Numbered by hash: sort on the first 64 bits (repeats end up adjacent). A tie on
    # them between different rows (a 64-bit collision) falls back to the full key.
    order = np.argsort(hashes[:, 0])
    new, collision = _runs(hashes, order)
    if collision:
        order = np.lexsort((hashes[:, 1], hashes[:, 0]))
        new, _ = _runs(hashes, order)
    order = order.astype(np.int64, copy=False)
    chosen = order if new is None else order[new]
    return Design(spec, full, hashes, chosen, order, new)
