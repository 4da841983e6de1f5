"""PostgreSQL binary COPY payloads for scenarios and their results, built with numpy.

Every row of a chunk has the same layout (fixed-width ids, uuid, int, 32-character
hash, ``float8[]`` of fixed length), so a chunk is one numpy structured array and
one ``tobytes()``: no Python loop per scenario. Results carry a variable-length
reason; rows are grouped by reason (a handful per chunk) and each group is one
structured array. Row order inside a COPY does not matter.

Format: https://www.postgresql.org/docs/current/sql-copy.html (binary format);
arrays as in ``array_send``: ndim, has-nulls flag, element type oid, then per
dimension (length, lower bound), then each element as (length, bytes).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = b"\xff\xff"
FLOAT8_OID = 701

SCENARIO_COLUMNS = ("id", "trade_study_id", "index", "input_hash", "inputs")
RESULT_COLUMNS = ("scenario_id", "trade_study_id", "outputs", "feasible", "infeasible_reason")


def _float8_array_fields(name: str, n: int) -> list[tuple[Any, ...]]:
    return [
        (f"{name}_len", ">i4"),
        (f"{name}_ndim", ">i4"),
        (f"{name}_flags", ">i4"),
        (f"{name}_oid", ">i4"),
        (f"{name}_dim", ">i4"),
        (f"{name}_lbound", ">i4"),
        (f"{name}_items", [("len", ">i4"), ("value", ">f8")], (n,)),
    ]


def _fill_float8_array(rows: NDArray[Any], name: str, values: NDArray[np.float64]) -> None:
    n = values.shape[1]
    rows[f"{name}_len"] = 20 + 12 * n
    rows[f"{name}_ndim"] = 1
    rows[f"{name}_flags"] = 0
    rows[f"{name}_oid"] = FLOAT8_OID
    rows[f"{name}_dim"] = n
    rows[f"{name}_lbound"] = 1
    rows[f"{name}_items"]["len"] = 8
    rows[f"{name}_items"]["value"] = values


def scenarios_payload(
    ids: NDArray[np.int64],
    study_id: uuid.UUID,
    index: NDArray[np.int64],
    digests: NDArray[np.uint8],
    inputs: NDArray[np.float64],
) -> bytes:
    """COPY rows for ``scenarios`` (:data:`SCENARIO_COLUMNS`); ``digests`` is (n, 32) ASCII."""
    n, d = inputs.shape
    dtype = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("study_len", ">i4"),
            ("study", "V16"),
            ("index_len", ">i4"),
            ("index", ">i4"),
            ("hash_len", ">i4"),
            ("hash", "V32"),
            *_float8_array_fields("inputs", d),
        ]
    )
    rows = np.empty(n, dtype=dtype)
    rows["fields"] = len(SCENARIO_COLUMNS)
    rows["id_len"] = 8
    rows["id"] = ids
    rows["study_len"] = 16
    rows["study"] = np.frombuffer(study_id.bytes, dtype="V16")[0]
    rows["index_len"] = 4
    rows["index"] = index
    rows["hash_len"] = 32
    rows["hash"] = np.ascontiguousarray(digests).view("V32").reshape(n)
    _fill_float8_array(rows, "inputs", inputs)
    return HEADER + rows.tobytes() + TRAILER


def results_payload(
    ids: NDArray[np.int64],
    study_id: uuid.UUID,
    outputs: NDArray[np.float64],
    feasible: NDArray[np.bool_],
    reason_index: NDArray[np.int64],
    reasons: Sequence[str],
) -> bytes:
    """COPY rows for ``scenario_results`` (:data:`RESULT_COLUMNS`).

    ``reason_index`` is -1 for feasible rows (NULL reason), else an index into ``reasons``.
    """
    m = outputs.shape[1]
    study = np.frombuffer(study_id.bytes, dtype="V16")[0]
    parts = [HEADER]
    encoded = [r.encode() for r in reasons]
    for group in range(-1, len(reasons)):
        rows_of = np.flatnonzero(reason_index == group)
        if rows_of.size == 0:
            continue
        text = encoded[group] if group >= 0 else b""
        fields: list[tuple[Any, ...]] = [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("study_len", ">i4"),
            ("study", "V16"),
            *_float8_array_fields("outputs", m),
            ("feasible_len", ">i4"),
            ("feasible", "u1"),
            ("reason_len", ">i4"),
        ]
        if text:
            fields.append(("reason", f"V{len(text)}"))
        rows = np.empty(rows_of.size, dtype=np.dtype(fields))
        rows["fields"] = len(RESULT_COLUMNS)
        rows["id_len"] = 8
        rows["id"] = ids[rows_of]
        rows["study_len"] = 16
        rows["study"] = study
        _fill_float8_array(rows, "outputs", outputs[rows_of])
        rows["feasible_len"] = 1
        rows["feasible"] = feasible[rows_of]
        if group >= 0:
            rows["reason_len"] = len(text)
            if text:
                rows["reason"] = np.frombuffer(text, dtype=f"V{len(text)}")[0]
        else:
            rows["reason_len"] = -1  # NULL
        parts.append(rows.tobytes())
    parts.append(TRAILER)
    return b"".join(parts)
