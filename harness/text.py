"""Plain-text formatting shared by checks and reports (layer shapes, parameter counts)."""

from __future__ import annotations

from typing import Any


def number(value: Any, missing: str | None = None) -> str:
    """3156098 -> '3,156,098'; anything else as itself, or `missing` when given."""
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) if missing is None else missing


def shape(value: Any, missing: str | None = None) -> str:
    """[None, 28, 28, 32] -> '(None, 28, 28, 32)'; several outputs are joined with commas."""
    if not isinstance(value, list):
        return str(value) if missing is None else missing
    if value and isinstance(value[0], list):
        return ", ".join(shape(s, missing) for s in value)
    return "(" + ", ".join("None" if d is None else str(d) for d in value) + ")"
