"""Checks: pure functions over (assignment, evidence, run, evaluation) → points and findings.

A check is a small callable registered under its record id; the built-ins register the same
way an assignment-specific check would. Checks never import the probe or student code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.evidence import Evidence
from harness.record import Check, Finding
from harness.sandbox import SandboxResult
from harness.spec import LoadedAssignment


@dataclass(frozen=True)
class Context:
    """What a check may look at. `evidence` holds the probe's claims; `result` and `evaluation`
    are what the harness measured itself (the sandbox, and the model file read by trusted code)."""

    assignment: LoadedAssignment
    evidence: Evidence
    result: SandboxResult
    quick: bool
    evaluation: Any = None  # harness.evaluate.Evaluation (not imported: it would be a cycle)
    entry: Path | None = None
    holdout_signatures: np.ndarray | None = None
    runtime: str = ""  # the runtime that ran (the run stage's record); "" when unknown

    @property
    def ran_under(self) -> str:
        """The runtime that ran: the run's record, else the assignment's pin."""
        return self.runtime or self.assignment.spec.runtime

    @property
    def verified_model(self) -> dict[str, Any] | None:
        """The layer table read from the model file by trusted code, or None."""
        table = getattr(self.evaluation, "model", None)
        return table if isinstance(table, dict) else None


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
    """Every registered check, each on its own: one check's crash is that check's `error`."""
    checks, findings = [], []
    for check_id, fn in _REGISTRY.items():
        try:
            outcome = fn(ctx)
        except Exception as exc:  # a bug in the harness (or evidence it did not foresee): not the student's fault
            max_points = float(getattr(ctx.assignment.spec.points, check_id.replace("-", "_"), 0) or 0)
            checks.append(Check(
                id=check_id, status="error", points=0, max_points=max_points,
                message=f"The grader failed inside this check ({type(exc).__name__}: {str(exc)[:200]}). This is the "
                        f"harness's fault, not yours: the operator should report it; the other checks still ran."))
            continue
        if outcome.check is not None:
            checks.append(outcome.check)
        findings += outcome.findings
    return checks, findings


from harness.checks import builtin as _builtin  # noqa: E402,F401  (registers the built-in checks)
from harness.checks import leaks as _leaks  # noqa: E402,F401
from harness.checks import curves as _curves  # noqa: E402,F401
from harness.checks import training_loops as _training_loops  # noqa: E402,F401
from harness.checks import habits as _habits  # noqa: E402,F401
from harness.checks import runtimes as _runtimes  # noqa: E402,F401
