"""Checks: pure functions over (assignment, evidence, run, evaluation) → points and findings.

A check is a small callable registered under its record id; the built-ins register the same
way an assignment-specific check would. Checks never import the probe or student code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.evidence import Evidence
from harness.record import Check, Finding
from harness.sandbox import SandboxResult
from harness.spec import LoadedAssignment


@dataclass(frozen=True)
class Context:
    assignment: LoadedAssignment
    evidence: Evidence
    result: SandboxResult
    quick: bool
    evaluation: object | None = None
    entry: Path | None = None
    holdout_signatures: np.ndarray | None = None


@dataclass(frozen=True)
class Outcome:
    check: Check | None
    findings: list[Finding] = field(default_factory=list)


CheckFn = Callable[[Context], Outcome]
_REGISTRY: dict[str, CheckFn] = {}


def register(check_id: str) -> Callable[[CheckFn], CheckFn]:
    def add(fn: CheckFn) -> CheckFn:
        _REGISTRY[check_id] = fn
        return fn
    return add


def registered() -> dict[str, CheckFn]:
    return dict(_REGISTRY)


def run_all(ctx: Context) -> tuple[list[Check], list[Finding]]:
    checks, findings = [], []
    for fn in _REGISTRY.values():
        outcome = fn(ctx)
        if outcome.check is not None:
            checks.append(outcome.check)
        findings += outcome.findings
    return checks, findings


from harness.checks import builtin as _builtin  # noqa: E402,F401  (registers the built-in checks)
from harness.checks import leaks as _leaks  # noqa: E402,F401
from harness.checks import curves as _curves  # noqa: E402,F401
from harness.checks import training_loops as _training_loops  # noqa: E402,F401
