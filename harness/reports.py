"""Reports are pure functions of records: Markdown per record, a console table per run."""

from __future__ import annotations

import re
from pathlib import Path

from harness.record import Record, write_atomic
from harness.spec import ReportRules
from harness.text import number, shape

STATUS_WORDS = {
    "graded": "graded",
    "error": "stopped with an error",
    "timeout": "time limit reached",
    "memory-limit": "memory limit reached",
    "no-model": "no trained model",
    "invalid-submission": "invalid submission",
    "interrupted": "interrupted (not graded)",
}
MARK = {"pass": "passed", "fail": "FAILED", "error": "ERROR", "skip": "skipped"}


def _shape(value) -> str:
    return shape(value, missing="?")


def _n(value) -> str:
    return number(value, missing="?")


PRIVATE_RULES = {"accuracy-review"}  # findings whose message holds the private accuracy


def is_private_check(check_id: str, rules: ReportRules) -> bool:
    return check_id in rules.private_checks and not rules.show_private_scores


def student_summary(rec: Record, rules: ReportRules) -> str:
    """The record's summary without the result of checks the student may not see."""
    hidden = [c.id for c in rec.checks if is_private_check(c.id, rules)]
    if not hidden:
        return rec.summary
    text = rec.summary
    found = re.search(r" Not passed: ([^.]*)\.", text)
    if found:
        left = [name for name in found.group(1).split(", ") if name not in hidden]
        tail = f" Not passed: {', '.join(left)}." if left else " All visible checks passed."
        text = text[:found.start()] + tail + text[found.end():]
    return text.replace(" All checks passed.", " All visible checks passed.")


def markdown(rec: Record, rules: ReportRules | None = None) -> str:
    """The student's report: by default (the assignment's `[report]` rules) without the private
    holdout's result, which decides the grade and must not be probed submission by submission."""
    rules = rules or ReportRules()
    visible = [c for c in rec.checks if not is_private_check(c.id, rules)]
    hidden = [c for c in rec.checks if is_private_check(c.id, rules)]
    counted = [c for c in visible if c.status != "skip"]
    score = (f"{rec.score:g} / {rec.max_score:g} points" if not hidden else
             f"{sum(c.points for c in counted):g} / {sum(c.max_points for c in counted):g} points shown "
             f"(not shown yet: {', '.join(c.id for c in hidden)})")
    lines = [f"# {rec.assignment}: {rec.student}", "",
             f"**{score}** · {STATUS_WORDS[rec.status]} · "
             f"{rec.run.mode} run in `{rec.run.sandbox}` ({rec.run.wall_seconds:.1f} s)", ""]
    if rec.run.runtime:
        why = f": {rec.run.runtime_reason}" if rec.run.runtime_reason else ""
        lines += [f"Runtime `{rec.run.runtime}`{why}.", ""]
    lines += [student_summary(rec, rules), ""]
    if rec.checks:
        lines += ["## Checks", "", "| check | result | points | details |", "|---|---|---|---|"]
        for c in rec.checks:
            if c in hidden:
                lines.append(f"| {c.id} | not shown yet | – / {c.max_points:g} | published with the grades |")
                continue
            detail = c.message.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c.id} | {MARK[c.status]} | {c.points:g} / {c.max_points:g} | {detail} |")
        lines.append("")
    findings = [f for f in rec.findings if rules.show_private_scores or f.rule not in PRIVATE_RULES]
    if findings:
        lines += ["## Findings", ""]
        for f in findings:
            where = f" ({f.where})" if f.where else ""
            lines.append(f"- **{f.rule}** [{f.severity}]{where}: {f.message}")
        lines.append("")
    if rec.metrics.holdout_accuracy is not None and rules.show_private_scores:
        lines += ["## Accuracy on data you never saw", "",
                  f"Holdout accuracy: {rec.metrics.holdout_accuracy:.4f} on {rec.metrics.holdout_size} images.", ""]
    if rec.metrics.public_accuracy is not None:
        lines += ["## Accuracy on the public test images", "",
                  f"Public accuracy: {rec.metrics.public_accuracy:.4f} on {rec.metrics.public_size} images "
                  f"(the grade uses other images, which stay private).", ""]
    if rec.model:
        lines += ["## Your model", "", "| # | layer | type | output shape | params |", "|---|---|---|---|---|"]
        for i, layer in enumerate(rec.model.layers, 1):
            lines.append(f"| {i} | {layer.name} | {layer.type} | {_shape(layer.output_shape)} | {_n(layer.params)} |")
        lines += ["", f"Total params: {_n(rec.model.total_params)} (trainable {_n(rec.model.trainable_params)})", ""]
    if rec.history:
        lines += ["## Training curves", "", "| epoch | " + " | ".join(rec.history) + " |",
                  "|---" * (len(rec.history) + 1) + "|"]
        epochs = max(len(v) for v in rec.history.values())
        for e in range(epochs):
            cells = [("NaN" if v[e] is None else f"{v[e]:.4f}") if e < len(v) else "" for v in rec.history.values()]
            lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
        lines.append("")
    if rec.evidence_problems:
        lines += ["## Evidence problems", ""] + [f"- {p}" for p in rec.evidence_problems[:20]] + [""]
    return "\n".join(lines)


def write_markdown(rec: Record, path: Path, rules: ReportRules | None = None) -> None:
    write_atomic(path, markdown(rec, rules))


def console_table(records: list[Record]):
    """A rich table whose cells are plain text: a student folder named `[/]` or `:smile:` prints as itself."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Grading results", show_lines=False)
    for column in ("student", "assignment", "status", "score", "summary"):
        table.add_column(column, overflow="fold")
    for rec in sorted(records, key=lambda r: (r.student, r.assignment)):
        style = "green" if rec.status == "graded" and rec.score == rec.max_score else "yellow" \
            if rec.status == "graded" else "red"
        table.add_row(Text(rec.student), Text(rec.assignment), Text(STATUS_WORDS[rec.status], style=style),
                      Text(f"{rec.score:g}/{rec.max_score:g}"), Text(rec.summary))
    return table
