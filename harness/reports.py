"""Reports are pure functions of records: Markdown per record, a console table per run."""

from __future__ import annotations

from pathlib import Path

from harness.record import Record, write_atomic
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


def markdown(rec: Record) -> str:
    lines = [f"# {rec.assignment}: {rec.student}", "",
             f"**{rec.score:g} / {rec.max_score:g} points** · {STATUS_WORDS[rec.status]} · "
             f"{rec.run.mode} run in `{rec.run.sandbox}` ({rec.run.wall_seconds:.1f} s)", "", rec.summary, ""]
    if rec.checks:
        lines += ["## Checks", "", "| check | result | points | details |", "|---|---|---|---|"]
        for c in rec.checks:
            detail = c.message.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c.id} | {MARK[c.status]} | {c.points:g} / {c.max_points:g} | {detail} |")
        lines.append("")
    if rec.findings:
        lines += ["## Findings", ""]
        for f in rec.findings:
            where = f" ({f.where})" if f.where else ""
            lines.append(f"- **{f.rule}** [{f.severity}]{where}: {f.message}")
        lines.append("")
    if rec.metrics.holdout_accuracy is not None:
        lines += ["## Accuracy on data you never saw", "",
                  f"Holdout accuracy: {rec.metrics.holdout_accuracy:.4f} on {rec.metrics.holdout_size} images.", ""]
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


def write_markdown(rec: Record, path: Path) -> None:
    write_atomic(path, markdown(rec))


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
