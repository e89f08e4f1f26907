"""A run that stopped on an API its runtime lacks: `runtime-mismatch` when the other runtime has it (which
runtime would run the code, and how to write it for this one), `removed-api` when neither has it any more.
Findings only (no points): the `completes` check already failed the run. Pure over the stored evidence
and the run's record of which runtime ran (`harness.runtime` holds the table of APIs)."""

from __future__ import annotations

from harness import runtime
from harness.checks import Context, Outcome, register
from harness.record import Finding


def _errors(ctx: Context) -> list[tuple[str, str | None]]:
    """(error text, where) of what stopped the run: a notebook cell's error, else the probe's exceptions."""
    ev = ctx.evidence
    located = [ev.where(e.get("where")) for e in ev.exceptions if e.get("during") == "run"]
    out = []
    for d in ev.driver:
        if d.get("kind") == "cell_error":
            where = located[-1] if located else f"cell {d.get('index', 0) + 1}"
            out.append((f"{d.get('ename')}: {d.get('evalue')}", where))
    for e in ev.exceptions:
        out.append((f"{e.get('type')}: {e.get('message')}", ev.where(e.get("where"))))
    return out


def other_runtime(ctx: Context) -> list[Finding]:
    found, seen = [], set()
    for text, where in _errors(ctx):
        explained = runtime.explain(text, ctx.ran_under)
        if explained is None or explained.key in seen:
            continue
        seen.add(explained.key)
        rule = "runtime-mismatch" if explained.would_run else "removed-api"
        found.append(Finding(rule=rule, severity="error", where=where, message=explained.message()))
    return found


@register("runtimes")
def runtimes(ctx: Context) -> Outcome:
    return Outcome(None, other_runtime(ctx))
