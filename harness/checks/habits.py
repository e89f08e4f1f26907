"""Notes on how a submission written for its author's machine was run here: paths mapped to the
served data, notebook shell escapes that were skipped, Colab and Kaggle Learn stand-ins. Findings
only (no points). Pure: the path mapping is recomputed from the stored code, exactly as the run
stage planned it (`harness.data.paths.plan`); the rest comes from the probe's `note` events."""

from __future__ import annotations

from harness import static
from harness.checks import Context, Outcome, register
from harness.data import paths
from harness.record import Finding
from harness.sandbox.bwrap import INSIDE


def path_mapped(ctx: Context) -> list[Finding]:
    if ctx.entry is None:
        return []
    data = ctx.assignment.spec.data
    code = ctx.entry.parent
    found = paths.plan(data, static.units(ctx.entry), INSIDE.workspace, INSIDE.home,
                       lambda relative: (code / relative).exists(), isolated=ctx.result.sandbox != "process")
    return [Finding(rule="path-mapped", severity="info", where=m.where,
                    message=(f"The path {m.literal!r} exists only on your machine; the grader served "
                             f"{m.describe(data.name)} there, read-only, so the code ran unchanged. "
                             f"Nothing to fix; data/{data.name}/ (or $HARNESS_DATA) is the portable path."))
            for m in found]


@register("notebook-habits")
def notebook_habits(ctx: Context) -> Outcome:
    return Outcome(None, path_mapped(ctx))
