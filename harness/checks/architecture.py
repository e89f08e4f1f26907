"""The architecture check: the submitted layer table against the one derived from the reference.

Pure functions. Layers are compared by position and type (names ignored, InputLayer ignored),
then output shape, parameters per layer and totals. Every difference is one plain sentence
that says where and why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from harness.spec import ExpectedLayer, ExpectedModel
from harness.text import number, shape

WHY_KEYS = ("units", "filters", "kernel_size", "strides", "padding", "pool_size", "rate", "activation",
            "use_bias", "target_shape")


@dataclass(frozen=True)
class Verdict:
    matched_layers: int
    expected_layers: int
    actual_layers: int
    totals_match: bool
    differences: list[str]

    @property
    def exact(self) -> bool:
        return not self.differences


def _label(position: int, layer: dict[str, Any]) -> str:
    name = layer.get("name")
    return f"layer {position} ({layer.get('type')}{', ' + repr(name) if name else ''})"


def _why(expected: ExpectedLayer, actual: dict[str, Any]) -> list[str]:
    got = actual.get("config") or {}
    reasons = []
    for key in WHY_KEYS:
        if key in expected.config and key in got and expected.config[key] != got[key]:
            reasons.append(f"{key} {_plain(got[key])} vs {_plain(expected.config[key])}")
    return reasons


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def _compare_layer(position: int, expected: ExpectedLayer, actual: dict[str, Any],
                   check_shapes: bool) -> list[str]:
    problems = []
    params = actual.get("params")
    if expected.params is not None and params != expected.params:
        problems.append(f"{number(params)} params where {number(expected.params)} were expected")
    if check_shapes and expected.output_shape is not None and actual.get("output_shape") != expected.output_shape:
        problems.append(f"output shape {shape(actual.get('output_shape'))} where "
                        f"{shape(expected.output_shape)} was expected")
    if not problems:
        why = _why(expected, actual)
        return [f"{_label(position, actual)} differs from the reference: {', '.join(why)}"] if why else []
    why = _why(expected, actual)
    text = f"{_label(position, actual)} has " + "; ".join(problems)
    if why:
        text += " because " + ", ".join(why)
    else:
        text += " (its own settings match: the difference comes from the layers before it)"
    return [text]


def compare(expected: ExpectedModel, actual: dict[str, Any], check_shapes: bool = True) -> Verdict:
    """Compare a probe layer table (`describe_model` output) with the expected one."""
    layers = [layer for layer in actual.get("layers") or [] if layer.get("type") != "InputLayer"]
    want = expected.layers
    differences: list[str] = []
    matched = 0
    matcher = difflib.SequenceMatcher(a=[w.type for w in want], b=[l.get("type") for l in layers], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                found = _compare_layer(j1 + k + 1, want[i1 + k], layers[j1 + k], check_shapes)
                differences += found
                matched += not found
        elif op == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                if k < i2 - i1 and k < j2 - j1:
                    got = layers[j1 + k]
                    differences.append(f"{_label(j1 + k + 1, got)} is a {got.get('type')} where a "
                                       f"{want[i1 + k].type} was expected")
                elif k < j2 - j1:
                    differences.append(_extra(j1 + k, layers))
                else:
                    differences.append(_missing(want[i1 + k], j2, layers))
        elif op == "insert":
            for j in range(j1, j2):
                differences.append(_extra(j, layers))
        elif op == "delete":
            for i in range(i1, i2):
                differences.append(_missing(want[i], j1, layers))
    total = actual.get("total_params")
    trainable = actual.get("trainable_params")
    totals_match = total == expected.total_params and trainable == expected.trainable_params
    if total != expected.total_params:
        differences.append(f"total params {number(total)} where {number(expected.total_params)} were expected")
    elif trainable != expected.trainable_params:
        differences.append(f"trainable params {number(trainable)} where {number(expected.trainable_params)} were expected")
    return Verdict(matched_layers=matched, expected_layers=len(want), actual_layers=len(layers),
                   totals_match=totals_match, differences=differences)


def _extra(j: int, layers: list[dict[str, Any]]) -> str:
    layer = layers[j]
    after = f" after {_label(j, layers[j - 1])}" if j > 0 else " at the start"
    return f"extra {layer.get('type')} ({number(layer.get('params'))} params){after}: the reference has no such layer"


def _missing(want: ExpectedLayer, j: int, layers: list[dict[str, Any]]) -> str:
    after = f" after {_label(j, layers[j - 1])}" if j > 0 else " at the start"
    return f"missing {want.type} ({number(want.params)} params){after}"


def points(verdict: Verdict, max_points: float, partial_credit: str) -> float:
    if verdict.exact:
        return max_points
    if partial_credit == "none":
        return 0.0
    share = verdict.matched_layers / max(verdict.expected_layers, verdict.actual_layers, 1)
    if not verdict.totals_match:
        share = min(share, 0.9)
    return round(max_points * share, 2)


def claim_differences(claimed: dict[str, Any] | None, verified: dict[str, Any] | None) -> list[str]:
    """Where the probe's claimed layer table disagrees with the one read from the model file."""
    if not claimed or not verified or claimed.get("total_params") is None:
        return []
    def rows(table: dict[str, Any]) -> list[tuple]:
        return [(layer.get("type"), layer.get("params")) for layer in table.get("layers") or []
                if isinstance(layer, dict) and layer.get("type") != "InputLayer"]
    found = []
    for key in ("total_params", "trainable_params"):
        if verified.get(key) is not None and claimed.get(key) != verified.get(key):  # None: not readable from the file
            found.append(f"{key.replace('_', ' ')} {number(claimed.get(key))} claimed, "
                         f"{number(verified.get(key))} in the file")
    mine, theirs = rows(claimed), rows(verified)
    if mine != theirs and theirs:  # no rows: a subclassed model's layers are not in its file
        found.append(f"layers claimed: {_sketch(mine)}; layers in the file: {_sketch(theirs)}")
    return found


def _sketch(rows: list[tuple]) -> str:
    text = ", ".join(f"{kind}({number(params)})" for kind, params in rows[:12])
    return text + (f" and {len(rows) - 12} more" if len(rows) > 12 else "") if rows else "none"
