"""Bounded in-process tables (operation verdicts, compiled plans, remembered tokens)."""

from __future__ import annotations

from typing import Any


def put(table: dict[Any, Any], key: Any, value: Any, maximum: int) -> None:
    """Set ``table[key]``; when full, the oldest entry goes first (dicts keep order)."""
    if key not in table and len(table) >= maximum:
        table.pop(next(iter(table)))
    table[key] = value
