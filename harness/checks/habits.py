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
                    message=(f"The folder {m.folder!r} exists only on your machine; the grader served "
                             f"{m.describe(data.name)} there, read-only, so the code ran unchanged. "
                             f"Nothing to fix; data/{data.name}/ (or $HARNESS_DATA) is the portable path."))
            for m in found]


RUNTIME = ("TensorFlow 2.21 with Keras 3 (or tf-keras), tensorflow-datasets, numpy, pandas, matplotlib, Pillow "
           "and scipy")


def notes(ctx: Context) -> list[Finding]:
    found: list[Finding] = []
    learntools: list[tuple[str, str | None]] = []
    for event in ctx.evidence.events:
        if event.get("kind") != "note":
            continue
        what, detail = event.get("what"), str(event.get("detail") or "")
        where = ctx.evidence.where(event.get("where"))
        if what == "pip":
            missing, present = event.get("missing") or [], event.get("present") or []
            if missing:
                found.append(Finding(
                    rule="notebook-habit", severity="error", where=where,
                    message=(f"`{detail}` was not run: the grader installs nothing (it runs offline), and its runtime "
                             f"has no package {', '.join(repr(m) for m in missing)}. Code that imports it fails here. "
                             f"Use only what the runtime has: {RUNTIME}.")))
            else:
                have = f"; the runtime already has {', '.join(present)}" if present else ""
                found.append(Finding(
                    rule="notebook-habit", severity="info", where=where,
                    message=f"`{detail}` was not run: the grader installs nothing (it runs offline){have}."))
        elif what == "shell":
            found.append(Finding(
                rule="notebook-habit", severity="info", where=where,
                message=(f"The shell command `!{detail}` was not run: shell escapes do not run in the grader (no "
                         f"shell, no network). Downloads are not needed: the data is served (see the assignment).")))
        elif what == "colab":
            found.append(Finding(
                rule="notebook-habit", severity="info", where=where,
                message=(f"Colab's {detail} did nothing here: the grader serves the data itself (Drive paths that "
                         f"match the served layout are mapped to it).")))
        elif what == "learntools":
            learntools.append((detail, where))
        elif what == "magic":
            found.append(Finding(rule="notebook-habit", severity="info", where=where,
                                 message=f"The notebook magic `{detail}` did nothing here (display only)."))
    if learntools:
        listed = ", ".join(d for d, _ in learntools[:5]) + (f" and {len(learntools) - 5} more" if len(learntools) > 5
                                                           else "")
        found.append(Finding(
            rule="notebook-habit", severity="info", where=learntools[0][1],
            message=(f"Kaggle Learn's checking lines did nothing here ({listed}): the grader checks the model "
                     f"itself. They can stay in the notebook.")))
    return found


@register("notebook-habits")
def notebook_habits(ctx: Context) -> Outcome:
    return Outcome(None, path_mapped(ctx) + notes(ctx))
