"""HTML reports of a run folder (`harness report RUN_DIR`): a pure rendering of the records and of
what the run stage stored next to them. Nothing here runs student code or starts a sandbox.

    RUN_DIR/html/index.html                                   every student and assignment, both views
    RUN_DIR/html/instructor/<student>/<assignment>.html       everything, with the misclassified images
    RUN_DIR/html/instructor/<student>/<assignment>.submission.html   the executed notebook or
                                                              the module with the end of its output
    RUN_DIR/html/student/<student>/<assignment>.html          what the student may see (`[report]` rules)

Every page is one self-contained file (images are data: URIs, styles inline) whose
Content-Security-Policy forbids every script and every request (`default-src 'none'`), and all
text from a record or a notebook is escaped (Jinja2 autoescape). The executed notebook is
student-controlled: it is read size-limited, validated with nbformat, reduced to plain outputs
and rendered by `harness.notebook_page` with HTML sanitising on.

`write_run` is what `grade` calls at its end (and `harness report` on its own).
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from harness import record as record_io
from harness.record import Finding, Layer, Record
from harness.reports import PRIVATE_RULES, is_private_check, student_summary
from harness.reports import MARK, STATUS_WORDS
from harness.spec import ExpectedLayer, ExpectedModel, LoadedAssignment, ReportRules
from harness.text import number, shape

TEMPLATES = Path(__file__).parent / "templates"
HTML_DIR = "html"
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
MAX_NOTEBOOK_BYTES = 20 * 2**20
MAX_CODE_BYTES = 5 * 2**20
MAX_LOG_BYTES = 2 * 2**20
MAX_PREDICTIONS_BYTES = 256 * 2**20
MAX_THUMBNAILS = 48
MAX_EPOCHS_PLOTTED = 5000
EXCERPT_CONTEXT = 3
View = Literal["instructor", "student"]

RULE_HELP: dict[str, tuple[str, str]] = {  # rule: (why it matters, how to fix)
    "augmented-validation": ("Random augmentation on validation or test data makes the score noisy and lower "
                             "than the model's real accuracy, and the model is chosen on distorted images.",
                             "Augment the training data only: a separate generator or pipeline without random "
                             "operations for validation, or augmentation layers inside the model."),
    "test-in-training": ("A model that trained on test images is scored on images it has seen: the test "
                         "accuracy says nothing about new data.",
                         "Train on the training split only; keep the test images for the final evaluation."),
    "test-for-selection": ("When the test set chooses the model (early stopping, checkpoints, learning-rate "
                           "schedules), the test score is biased upwards.",
                           "Validate on a validation split carved from the training data."),
    "split-overlap": ("Identical images in training and validation make validation accuracy look better than "
                      "it is.", "Split once, without overlap (one generator with validation_split and the same "
                                "seed for both subsets)."),
    "test-statistics": ("Normalisation fitted on test data lets test information into training.",
                        "Fit normalisation (adapt, fit, mean/std) on the training data only."),
    "label-mismatch": ("The output layer or the loss cannot fit the classes: training is wrong or fails.",
                       "One output unit per class with softmax and a categorical loss, or one sigmoid unit "
                       "with binary cross-entropy for two classes."),
    "ignored-argument": ("An argument the library silently ignores means the model trained with other "
                         "settings than the code says.", "Use the current argument name (learning_rate=)."),
    "runtime-mismatch": ("The code was written for the other Keras: the runtime that ran it lacks an API it "
                         "uses, so the run stopped there.",
                         "Rewrite that line for the runtime that ran (the finding says how), or ask the instructor "
                         "to grade it with the runtime the finding names."),
    "removed-api": ("The code uses an API that Keras removed: neither grading runtime has it.",
                    "Replace it as the finding says."),
    "overfitting": ("Validation loss rising while training loss falls: the model memorises the training data.",
                    "Fewer epochs, early stopping on validation data, dropout or augmentation."),
    "divergence": ("The loss grew or became NaN: the model did not learn.",
                   "A lower learning rate, scaled inputs, a loss that fits the labels."),
    "validation-above-training": ("Validation far above training accuracy usually means the validation data "
                                  "is easier or leaked.", "Check what the validation data is."),
    "not-converged": ("The curves were still improving at the last epoch.", "Train for more epochs."),
    "evidence-missing": ("The grader could not see the training it needs to check.",
                         "Train with model.fit in the submitted code and do not tamper with the harness."),
    "evidence-mismatch": ("What the run reported disagrees with the model file the grader read.",
                          "Save and submit the model you trained."),
    "accuracy-review": ("A score far above the reference's is reviewed by an instructor.", "Nothing to do."),
}

_WHERE_CELL = re.compile(r"^cell (\d+)(?:, line (\d+))?$")
_WHERE_FILE = re.compile(r"^(.+?):(\d+)$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
_NO_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")  # an image whose source the sanitiser removed


# ---------------------------------------------------------------- inputs of one page


@dataclass(frozen=True)
class Thumb:
    id: str
    uri: str | None
    true: str
    predicted: str


@dataclass(frozen=True)
class Excerpt:
    """Lines of the submission around a finding: (number, text, is the finding's line)."""
    title: str
    lines: list[tuple[int, str, bool]]
    anchor: str  # on the submission page: 'cell-id=cell-7' or 'L12'


@dataclass(frozen=True)
class Inputs:
    """Everything one record's pages show; read by `gather`, rendered by `render_record`."""
    rec: Record
    title: str
    expected: ExpectedModel | None = None
    rules: ReportRules = ReportRules()
    curves: str | None = None                  # PNG data: URI
    classes: list[str] | None = None
    thumbs: list[Thumb] | None = None          # misclassified private holdout images
    thumbs_note: str | None = None             # why there are none
    excerpts: dict[int, Excerpt] = field(default_factory=dict)  # finding index -> code excerpt
    submission: str | None = None              # 'notebook' | 'module' | None: is there a submission page
    submission_note: str | None = None


# ---------------------------------------------------------------- pure helpers


def layer_rows(model, expected: ExpectedModel | None) -> list[dict[str, Any]]:
    """The student's layer table beside the expected one, aligned as the architecture check aligns
    them (by type, InputLayer ignored); each row says what differs."""
    mine: list[Layer] = list(model.layers) if model else []
    inputs = [layer for layer in mine if layer.type == "InputLayer"]
    mine = [layer for layer in mine if layer.type != "InputLayer"]
    want: list[ExpectedLayer] = list(expected.layers) if expected else []
    rows: list[dict[str, Any]] = [{"kind": "input", "mine": layer, "want": None, "position": None, "diff": set()}
                                  for layer in inputs]

    def row(i: int | None, j: int | None, kind: str) -> dict[str, Any]:
        got = mine[j] if j is not None else None
        exp = want[i] if i is not None else None
        diff: set[str] = set()
        if got is not None and exp is not None:
            if got.type != exp.type:
                diff.add("type")
            if exp.output_shape is not None and got.output_shape != exp.output_shape:
                diff.add("shape")
            if exp.params is not None and got.params != exp.params:
                diff.add("params")
            if kind == "same" and diff:
                kind = "differs"
        return {"kind": kind, "mine": got, "want": exp, "position": None if j is None else j + 1, "diff": diff}

    if not want:
        return rows + [row(None, j, "unchecked") for j in range(len(mine))]
    matcher = difflib.SequenceMatcher(a=[w.type for w in want], b=[m.type for m in mine], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [row(i1 + k, j1 + k, "same") for k in range(i2 - i1)]
        elif op == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                i = i1 + k if k < i2 - i1 else None
                j = j1 + k if k < j2 - j1 else None
                rows.append(row(i, j, "replaced" if i is not None and j is not None else
                                "extra" if j is not None else "missing"))
        elif op == "insert":
            rows += [row(None, j, "extra") for j in range(j1, j2)]
        elif op == "delete":
            rows += [row(i, None, "missing") for i in range(i1, i2)]
    return rows


def parse_where(where: str | None) -> tuple[str, int | None, int | None, str | None]:
    """'cell 7, line 3' -> ('cell', 7, 3, None); 'train.py:12' -> ('file', None, 12, 'train.py')."""
    if not where:
        return ("none", None, None, None)
    found = _WHERE_CELL.match(where.strip())
    if found:
        return ("cell", int(found.group(1)), int(found.group(2)) if found.group(2) else None, None)
    found = _WHERE_FILE.match(where.strip())
    if found:
        return ("file", None, int(found.group(2)), found.group(1))
    return ("none", None, None, None)


def excerpt(source: str, line: int | None, title: str, anchor: str) -> Excerpt:
    lines = source.splitlines() or [""]
    if line is None or not 1 <= line <= len(lines):
        first, last = 1, min(len(lines), 2 * EXCERPT_CONTEXT + 1)
    else:
        first, last = max(1, line - EXCERPT_CONTEXT), min(len(lines), line + EXCERPT_CONTEXT)
    return Excerpt(title=title, anchor=anchor,
                   lines=[(n, lines[n - 1][:400], n == line) for n in range(first, last + 1)])


_MATPLOTLIB = {"lock": threading.Lock(), "plain": False}


def _plain_matplotlib() -> None:
    """matplotlib's own defaults, once per process: it read `./matplotlibrc` when it was imported, and
    `grade .` runs in a student's folder (`text.usetex` there ran LaTeX on the host with the student's preamble)."""
    with _MATPLOTLIB["lock"]:
        if not _MATPLOTLIB["plain"]:
            import matplotlib
            matplotlib.rcdefaults()
            _MATPLOTLIB["plain"] = True


def curves_png(history: dict[str, list[float | None]]) -> str | None:
    """Loss and accuracy, training and validation, as the seeds plot `history` (a PNG data: URI)."""
    panels = [("Loss", "loss", "val_loss"),
              ("Accuracy", "accuracy" if "accuracy" in history else "acc",
               "val_accuracy" if "val_accuracy" in history else "val_acc")]
    panels = [p for p in panels if history.get(p[1]) or history.get(p[2])]
    if not panels:
        return None
    from matplotlib.figure import Figure  # no pyplot: nothing global changes
    _plain_matplotlib()

    fig = Figure(figsize=(4.2 * len(panels), 3.0), dpi=100)
    for k, (title, train, val) in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), k)
        for key, label, style in ((train, "training", "o-"), (val, "validation", "s--")):
            values = (history.get(key) or [])[:MAX_EPOCHS_PLOTTED]
            if values:
                ys = [math.nan if v is None else v for v in values]
                ax.plot(range(1, len(ys) + 1), ys, style, label=label, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        if len(history.get(train) or history.get(val) or []) < 12:
            ax.set_xticks(range(1, len(history.get(train) or history.get(val) or []) + 1))
    fig.tight_layout()
    out = io.BytesIO()
    # the figure's own resolution, not savefig.dpi: matplotlib reads ./matplotlibrc, and `grade .` runs in a
    # student's folder
    fig.savefig(out, format="png", dpi=fig.dpi)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")



SVG_PANEL = (420, 300)  # pixels per panel, as the PNG's 4.2 x 3.0 inches at 100 dpi
SVG_COLOURS = ("#1f77b4", "#ff7f0e")  # matplotlib's first two colours: training, validation


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _tick_label(value: float) -> str:
    return f"{value:.6g}" if abs(value) >= 1e-12 else "0"


def curves_svg(history: dict[str, list[float | None]]) -> str | None:
    """The learning curves as `curves_png` draws them (loss and accuracy panels, training with
    circles and a solid line, validation with squares and a dashed line, a grid, a legend, the epoch
    on x), written as an SVG data: URI without matplotlib: a few milliseconds instead of a second per
    record. No text of the record reaches the SVG (only numbers and fixed labels)."""
    panels = [("Loss", "loss", "val_loss"),
              ("Accuracy", "accuracy" if "accuracy" in history else "acc",
               "val_accuracy" if "val_accuracy" in history else "val_acc")]
    panels = [p for p in panels if history.get(p[1]) or history.get(p[2])]
    if not panels:
        return None
    width, height = SVG_PANEL
    left, right, top, bottom = 58, 12, 28, 42
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * len(panels)}" height="{height}" '
             f'viewBox="0 0 {width * len(panels)} {height}" font-family="DejaVu Sans, sans-serif" font-size="10">',
             f'<rect width="100%" height="100%" fill="#fff"/>']
    for k, (title, train, val) in enumerate(panels):
        series = []
        for key, label, colour, dash, marker in ((train, "training", SVG_COLOURS[0], "", "circle"),
                                                   (val, "validation", SVG_COLOURS[1], "6,3", "square")):
            values = [v if isinstance(v, (int, float)) and math.isfinite(v) else None
                      for v in (history.get(key) or [])[:MAX_EPOCHS_PLOTTED]]
            if values:
                series.append((label, colour, dash, marker, values))
        finite = [v for *_, values in series for v in values if v is not None]
        epochs = max(len(values) for *_, values in series)
        y_low, y_high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if y_high - y_low < 1e-12:
            y_low, y_high = y_low - 0.5, y_high + 0.5
        pad = (y_high - y_low) * 0.05
        y_low, y_high = y_low - pad, y_high + pad
        x_low, x_high = 1 - max(epochs - 1, 1) * 0.05, epochs + max(epochs - 1, 1) * 0.05
        x0, x1, y0, y1 = k * width + left, (k + 1) * width - right, height - bottom, top

        def px(epoch: float) -> float:
            return x0 + (epoch - x_low) / (x_high - x_low) * (x1 - x0)

        def py(value: float) -> float:
            return y0 + (value - y_low) / (y_high - y_low) * (y1 - y0)

        parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{top - 10}" text-anchor="middle" font-size="12">{title}</text>')
        parts.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{height - 8}" text-anchor="middle">epoch</text>')
        x_ticks = list(range(1, epochs + 1)) if epochs < 12 else [t for t in _ticks(1, epochs) if t == int(t)]
        for t in x_ticks:
            parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{y1}" y2="{y0}" stroke="#000" stroke-opacity="0.1"/>'
                         f'<text x="{px(t):.1f}" y="{y0 + 14}" text-anchor="middle">{int(t)}</text>')
        for t in _ticks(y_low, y_high):
            parts.append(f'<line x1="{x0}" x2="{x1}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#000" stroke-opacity="0.1"/>'
                         f'<text x="{x0 - 4}" y="{py(t) + 3:.1f}" text-anchor="end">{_tick_label(t)}</text>')
        parts.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#000" stroke-width="0.8"/>')
        for label, colour, dash, marker, values in series:
            segment: list[str] = []
            runs = []
            for e, v in enumerate(values, 1):
                if v is None:
                    runs.append(segment)
                    segment = []
                else:
                    segment.append(f"{px(e):.1f},{py(v):.1f}")
            runs.append(segment)
            dashing = f' stroke-dasharray="{dash}"' if dash else ""
            for run in runs:
                if len(run) > 1:
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.5"{dashing}/>')
            for e, v in enumerate(values, 1):
                if v is None:
                    continue
                if marker == "circle":
                    parts.append(f'<circle cx="{px(e):.1f}" cy="{py(v):.1f}" r="2" fill="{colour}"/>')
                else:
                    parts.append(f'<rect x="{px(e) - 2:.1f}" y="{py(v) - 2:.1f}" width="4" height="4" fill="{colour}"/>')
        box = 14 * len(series) + 4
        points = [(px(e), py(v)) for *_, values in series for e, v in enumerate(values, 1) if v is not None]

        def covered(top_y: float) -> int:  # points under a legend box whose top is at top_y
            return sum(1 for x, y in points if x >= x1 - 100 and top_y - 4 <= y <= top_y + box + 4)

        legend_top = y1 + 3 if covered(y1 + 3) <= covered(y0 - 3 - box) else y0 - 3 - box  # as matplotlib's "best"
        parts.append(f'<rect x="{x1 - 94}" y="{legend_top}" width="90" height="{box}" fill="#fff" '
                     f'fill-opacity="0.8" stroke="#ccc" stroke-width="0.5"/>')
        for n, (label, colour, dash, marker, _) in enumerate(series):
            ly = legend_top + 9 + 14 * n
            dashing = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<line x1="{x1 - 88}" x2="{x1 - 68}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="1.5"{dashing}/>'
                         f'<text x="{x1 - 64}" y="{ly + 3}">{label}</text>')
    parts.append("</svg>")
    return "data:image/svg+xml;base64," + base64.b64encode("".join(parts).encode("utf-8")).decode("ascii")


def png_uri(image: np.ndarray, size: int = 64) -> str:
    from PIL import Image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    picture = Image.fromarray(array)
    return _png(picture, size)


def _png(picture, size: int) -> str:
    from PIL import Image
    if max(picture.size) < size:
        factor = max(1, size // max(picture.size))
        picture = picture.resize((picture.size[0] * factor, picture.size[1] * factor), Image.NEAREST)
    else:
        picture.thumbnail((size, size))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def confusion_rows(matrix: list[list[int]], classes: list[str] | None) -> list[dict[str, Any]]:
    """Rows of the confusion matrix with a shade per cell (share of the row)."""
    names = classes if classes and len(classes) == len(matrix) else [str(i) for i in range(len(matrix))]
    rows = []
    for i, counts in enumerate(matrix):
        total = sum(counts) or 1
        cells = [{"count": c, "shade": round(c / total, 3), "diagonal": i == j} for j, c in enumerate(counts)]
        rows.append({"name": names[i], "cells": cells, "total": sum(counts)})
    return rows


# ---------------------------------------------------------------- rendering


def _bytecode_cache():
    """Jinja2's cache of compiled templates, in its private per-user folder (it refuses one another
    user could write to): a `grade` process renders from it instead of compiling every template."""
    try:
        from jinja2 import FileSystemBytecodeCache
        return FileSystemBytecodeCache()
    except Exception:
        return None


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, bytecode_cache=_bytecode_cache())
    env.filters["n"] = lambda v: number(v, missing="?")
    env.filters["shape"] = lambda v: shape(v, missing="?")
    env.filters["points"] = lambda v: f"{v:g}"
    env.filters["pct"] = lambda v: "" if v is None else f"{100 * v:.2f} %"
    env.globals.update(CSP=Markup(CSP), MARK=MARK, STATUS_WORDS=STATUS_WORDS, RULE_HELP=RULE_HELP)
    return env


_ENV: Environment | None = None


def env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV


def render_record(inputs: Inputs, view: View, links: dict[str, str] | None = None) -> str:
    """One record's page: the instructor's view or the student's (which hides what `rules` hides)."""
    rec, rules = inputs.rec, inputs.rules
    links = {"index": "", "student": "", "submission": "", **(links or {})}
    student = view == "student"
    show_private = not student or rules.show_private_scores
    show_images = not student or rules.show_private_images
    checks = []
    for c in rec.checks:
        hidden = student and is_private_check(c.id, rules)
        checks.append({"id": c.id, "status": c.status, "points": c.points, "max_points": c.max_points,
                       "message": c.message, "hidden": hidden})
    counted = [c for c in checks if c["status"] != "skip" or c["max_points"]]
    hidden_max = sum(c["max_points"] for c in checks if c["hidden"])
    if student and any(c["hidden"] for c in checks):
        score = sum(c["points"] for c in checks if not c["hidden"] and c["status"] != "skip")
        max_score = sum(c["max_points"] for c in checks if not c["hidden"] and c["status"] != "skip")
    else:
        score, max_score = rec.score, rec.max_score
    findings = []
    for i, f in enumerate(rec.findings):
        if student and f.rule in PRIVATE_RULES and not rules.show_private_scores:
            continue
        kind, cell, line, _ = parse_where(f.where)
        ex = inputs.excerpts.get(i)
        findings.append({"index": i, "finding": f, "help": RULE_HELP.get(f.rule), "excerpt": ex,
                         "submission_link": f"{links['submission']}#{ex.anchor}"
                         if ex and ex.anchor and not student and links["submission"] else None})
    metrics = rec.metrics
    return env().get_template("record.html.j2").render(
        view=view, rec=rec, title=inputs.title, summary=student_summary(rec, rules) if student else rec.summary,
        score=score, max_score=max_score, hidden_max=hidden_max, checks=checks, counted=counted,
        findings=findings, rows=layer_rows(rec.model, inputs.expected), expected=inputs.expected,
        curves=inputs.curves, metrics=metrics, show_private=show_private, show_images=show_images,
        confusion=confusion_rows(metrics.confusion_matrix, inputs.classes)
        if metrics.confusion_matrix and show_private else None,
        per_class=metrics.per_class_accuracy if show_private else None,
        thumbs=inputs.thumbs if show_images else None, thumbs_note=inputs.thumbs_note,
        submission=inputs.submission, submission_note=inputs.submission_note, links=links)


def render_index(rows: list[dict[str, Any]], title: str, leaderboard: str | None) -> str:
    return env().get_template("index.html.j2").render(rows=rows, title=title, leaderboard=leaderboard)


# ---------------------------------------------------------------- the executed submission


def _clean_notebook(nb) -> None:
    """Reduce a (validated) notebook to what the report shows: plain outputs of known types, no
    metadata that templates turn into attributes or file links, cell ids that say the cell number."""
    from nbformat import NotebookNode
    keep = {"text/plain", "text/html", "text/markdown", "text/latex", "image/png", "image/jpeg", "image/svg+xml"}
    nb.metadata = NotebookNode({"language_info": {"name": "python"}})
    for number_, cell in enumerate(nb.cells, 1):
        cell.id = f"cell-{number_}"
        cell.metadata = NotebookNode()
        cell.pop("attachments", None)
        if cell.cell_type == "raw":
            cell.cell_type, cell.source = "code", cell.source  # shown as (escaped) code, never as raw HTML
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type != "code":
            continue
        if not isinstance(cell.get("execution_count"), int):
            cell.execution_count = None
        outputs = []
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "stream":
                outputs.append(NotebookNode(output_type="stream", text=_joined(output.get("text", "")),
                                            name="stderr" if output.get("name") == "stderr" else "stdout"))
            elif kind == "error":
                outputs.append(NotebookNode(output_type="error", ename=str(output.get("ename", "")),
                                            evalue=str(output.get("evalue", "")),
                                            traceback=[str(t) for t in output.get("traceback", [])]))
            elif kind in ("display_data", "execute_result"):
                data = {}
                for mime, value in (output.get("data") or {}).items():
                    value = "".join(value) if isinstance(value, list) else value
                    if mime not in keep or not isinstance(value, str):
                        continue
                    if mime in ("image/png", "image/jpeg") and not _decodes(value):
                        data.setdefault("text/plain", f"[an {mime} output that is not a valid image: not shown]")
                        continue
                    data[mime] = value
                if data:
                    new = NotebookNode(output_type=kind, data=data, metadata=NotebookNode())
                    if kind == "execute_result":
                        new.execution_count = cell.execution_count
                    outputs.append(new)
        cell.outputs = outputs


def _joined(text) -> str:
    """A notebook's multi-line string: one string, or a list of strings to join (nbformat allows both)."""
    return "".join(str(t) for t in text) if isinstance(text, list) else str(text)


def _decodes(value: str) -> bool:
    """A base64 PNG or JPEG that Pillow can read."""
    from PIL import Image
    if not _BASE64.match(value):
        return False
    try:
        with Image.open(io.BytesIO(base64.b64decode(value))) as picture:
            picture.verify()
    except Exception:
        return False
    return True


def read_notebook(path: Path):
    """(notebook, None) or (None, why it cannot be shown): size-limited, nbformat-validated."""
    import nbformat
    try:
        if path.is_symlink() or not path.is_file():
            return None, "no executed notebook was kept for this run"
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            return None, f"the executed notebook is {size / 2**20:.1f} MB, above the {MAX_NOTEBOOK_BYTES // 2**20} MB shown"
        invalid: dict = {}  # reads validates already: its error is kept rather than validating twice
        nb = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4,
                            capture_validation_error=invalid)
        if "ValidationError" in invalid:
            raise invalid["ValidationError"]
    except Exception as exc:  # nbformat raises several unrelated types for broken files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return None, f"the executed notebook is not a valid notebook ({first}), so it is not shown"
    return nb, None


SAFE_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1",
             "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong",
             "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"}


def _safe_attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "title", "alt", "colspan", "rowspan", "align"):
        return True
    if tag == "a" and name == "href":
        return value.startswith(("#", "https://", "http://", "mailto:"))
    if tag == "img" and name == "src":
        return value.startswith(("data:image/png;", "data:image/jpeg;", "data:image/gif;"))
    return tag == "img" and name in ("width", "height") and value.isdigit()


def clean_html(element) -> str:
    """nbconvert's `clean_html` filter, stricter: a fixed set of tags, no style, no event handler, images
    only from data: URIs, links only to http(s), mail or anchors; anything else is dropped (its text kept)."""
    import bleach
    text = element.decode() if isinstance(element, bytes) else str(element)
    cleaned = bleach.clean(text, tags=SAFE_TAGS, attributes=_safe_attribute,
                           protocols={"http", "https", "mailto", "data"}, strip=True, strip_comments=True)
    return _NO_SOURCE.sub("[an image from outside the notebook: not shown]", cleaned)


def render_notebook(nb, heading: str, back: str) -> str:
    """The executed notebook as one self-contained page (harness.notebook_page: the harness's own
    template, HTML sanitised, no script of any kind)."""
    from harness import notebook_page
    _clean_notebook(nb)
    return notebook_page.render(nb, heading, back)


def _read_text(path: Path, limit: int) -> str | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... cut]" if len(data) > limit else "")


def render_module(code: str | None, name: str, output: str | None, heading: str, back: str) -> str:
    lines = code.splitlines() if code is not None else None
    return env().get_template("module.html.j2").render(heading=heading, back=back, name=name, lines=lines,
                                                       output=output)


# ---------------------------------------------------------------- reading a run folder


@dataclass(frozen=True)
class RecordFile:
    rec: Record
    path: Path

    @property
    def student_dir(self) -> str:
        return self.path.parent.name

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def evidence(self) -> Path:
        return self.path.with_suffix(".evidence")


def load_records(run_dir: Path) -> tuple[list[RecordFile], list[Path]]:
    found, unreadable = [], []
    for path in record_io.files(run_dir):
        try:
            found.append(RecordFile(record_io.load(path), path))
        except Exception:  # not a record, or one that no longer validates: listed, never fatal
            unreadable.append(path)
    return found, unreadable


def _entry_file(evidence: Path, rec: Record) -> Path | None:
    entry = None
    try:
        run = evidence / "run.json"
        if run.is_file() and not run.is_symlink() and run.stat().st_size < 2**20:
            entry = json.loads(run.read_text()).get("entry")
    except (OSError, ValueError):
        entry = None
    entry = entry if isinstance(entry, str) else rec.submission.entry
    if not entry:
        return None
    code = (evidence / "code").resolve()
    path = (code / entry).resolve()
    if code not in path.parents or path.is_symlink() or not path.is_file():
        return None
    return path


def _excerpts(rec: Record, entry: Path | None) -> dict[int, Excerpt]:
    if entry is None:
        return {}
    cells = None
    if entry.suffix == ".ipynb":
        nb, _ = read_notebook(entry)
        cells = [c.source for c in nb.cells] if nb is not None else None
        module = None
    else:
        module = _read_text(entry, MAX_CODE_BYTES)
    out = {}
    for i, finding in enumerate(rec.findings):
        kind, cell, line, filename = parse_where(finding.where)
        if kind == "cell" and cells is not None and 1 <= cell <= len(cells):
            out[i] = excerpt(cells[cell - 1], line, f"{entry.name}, cell {cell}, as handed in", f"cell-id=cell-{cell}")
        elif kind == "file" and module is not None and filename == entry.name:
            out[i] = excerpt(module, line, f"{filename}, as handed in", f"L{line}")
        elif kind == "file":  # a helper module handed in with the entry (not on the submission page)
            helper = _code_file(entry.parent, filename)
            text = _read_text(helper, MAX_CODE_BYTES) if helper else None
            if text is not None:
                out[i] = excerpt(text, line, filename, "")
    return out


def _code_file(code: Path, name: str) -> Path | None:
    """`name` inside the stored code folder, never outside it."""
    try:
        path = (code / name).resolve()
    except (OSError, ValueError):
        return None
    return path if code.resolve() in path.parents and path.is_file() and not path.is_symlink() else None


def _holdout_thumbs(rec: Record, loaded: LoadedAssignment | None, evidence: Path, data_root: Path | None
                    ) -> tuple[list[Thumb] | None, str | None, list[str] | None]:
    """(thumbnails of misclassified private images, why there are none, the holdout's classes)."""
    wrong = rec.metrics.misclassified
    if loaded is None:
        return None, "the assignment is unknown here, so its holdout data cannot be found", None
    from harness.data import providers
    spec = loaded.spec.data
    folder = providers.dataset_dir(spec.name, data_root)
    classes = sorted(spec.classes) if spec.source == "folders" else list(spec.classes)
    if not wrong:
        return None, None if wrong is None else "no holdout image was misclassified", classes
    try:
        meta = json.loads((folder / "holdout-labels.json").read_text())
        ids, labels, classes = list(meta["ids"]), list(meta["labels"]), list(meta["classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, (f"the holdout data of {spec.name!r} is not in {folder.parent}: the images cannot be "
                      f"shown (harness report --data-root DIR)"), classes
    index = {ident: k for k, ident in enumerate(ids)}
    predicted = _predicted(evidence, len(ids), classes)
    images = None
    array_file = folder / "holdout" / "images.npy"
    if array_file.is_file():
        try:
            images = np.load(array_file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            images = None
    thumbs = []
    for ident in wrong[:MAX_THUMBNAILS]:
        k = index.get(ident)
        uri = None
        if k is not None:
            try:
                if images is not None and ident.startswith("test-"):
                    uri = png_uri(np.asarray(images[k]))
                elif images is None and "/" not in ident and not ident.startswith("."):
                    from PIL import Image
                    with Image.open(folder / "holdout" / ident) as picture:
                        uri = _png(picture.convert("RGB"), 72)
            except Exception:
                uri = None
        true = classes[labels[k]] if k is not None and 0 <= labels[k] < len(classes) else "?"
        guess = predicted[k] if predicted is not None and k is not None else None
        thumbs.append(Thumb(id=ident, uri=uri, true=true,
                            predicted=classes[guess] if guess is not None and 0 <= guess < len(classes) else "?"))
    note = (f"the first {MAX_THUMBNAILS} of {len(wrong)} misclassified images" if len(wrong) > MAX_THUMBNAILS
            else None)
    return thumbs, note, classes


def _predicted(evidence: Path, n: int, classes: list[str]) -> np.ndarray | None:
    """Predicted class per holdout id from the trusted evaluation's raw outputs (`predictions.npy`,
    in holdout-labels.json order), mapped like the evaluation maps them."""
    path = evidence / "predictions.npy"
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PREDICTIONS_BYTES:
            return None
        raw = np.load(path, allow_pickle=False)
        from harness import evidence as evidence_io
        from harness.evaluate import _class_map, validate_predictions
        predicted, problem = validate_predictions(raw, n, len(classes))
        if problem:
            return None
        mapping = _class_map(evidence_io.read(evidence), classes)
        if mapping is not None:
            predicted = np.asarray(mapping)[np.clip(predicted, 0, len(mapping) - 1)]
        return predicted
    except Exception:
        return None


def gather(item: RecordFile, assignments: dict[str, LoadedAssignment], data_root: Path | None) -> Inputs:
    """Everything one record's pages show (the reading half; `render_record` is pure)."""
    rec = item.rec
    loaded = assignments.get(rec.assignment)
    entry = _entry_file(item.evidence, rec) if item.evidence.is_dir() else None
    thumbs, note, classes = _holdout_thumbs(rec, loaded, item.evidence, data_root)
    kind, sub_note = None, None
    if item.evidence.is_dir() and entry is not None:
        kind = "notebook" if entry.suffix == ".ipynb" else "module"
    elif rec.status != "invalid-submission":
        sub_note = "no stored run: the submission was not run"
    return Inputs(
        rec=rec, title=loaded.spec.title if loaded else rec.assignment,
        expected=loaded.expected if loaded else None,
        rules=loaded.spec.report if loaded else ReportRules(),
        curves=curves_svg(rec.history) if rec.history else None, classes=classes,
        thumbs=thumbs, thumbs_note=note, excerpts=_excerpts(rec, entry), submission=kind, submission_note=sub_note)


def _submission_page(item: RecordFile, kind: str, heading: str, back: str) -> tuple[str, str | None]:
    """(page, problem shown on the report)."""
    entry = _entry_file(item.evidence, item.rec)
    if kind == "notebook":
        nb, problem = read_notebook(item.evidence / "executed.ipynb")
        if nb is None:
            original, _ = read_notebook(entry) if entry else (None, None)
            if original is None:
                return render_module(None, "", _read_text(item.evidence / "output-tail.log", MAX_LOG_BYTES),
                                     heading, back), problem
            return render_notebook(original, heading + " (as handed in: " + problem + ")", back), problem
        return render_notebook(nb, heading, back), None
    return render_module(_read_text(entry, MAX_CODE_BYTES) if entry else None, entry.name if entry else "",
                         _read_text(item.evidence / "output-tail.log", MAX_LOG_BYTES), heading, back), None


def _safe(name: str) -> str:
    """A path component for an output file (the names come from folders of the run)."""
    cleaned = re.sub(r"[^\w. -]", "_", name).strip(". ") or "_"
    return cleaned[:120]


def _href(path: str) -> str:
    return quote(path, safe="/#=")


def _write_one(item: RecordFile, assignments: dict[str, LoadedAssignment], data_root: Path | None, out: Path,
               written: list[Path]) -> dict[str, Any]:
    """The pages of one record; returns its row of the index. A part that fails (the data, the
    notebook) is named on the page and the rest is still written."""
    rec = item.rec
    student, name = _safe(item.student_dir), _safe(item.name)
    try:
        inputs = gather(item, assignments, data_root)
    except Exception as exc:
        inputs = Inputs(rec=rec, title=rec.assignment, submission_note=f"part of this report could not be made "
                                                                        f"({type(exc).__name__}: {exc})"[:300])
    instructor = f"instructor/{student}/{name}.html"
    student_page = f"student/{student}/{name}.html"
    submission = f"instructor/{student}/{name}.submission.html" if inputs.submission else None
    if submission:
        try:
            page, problem = _submission_page(item, inputs.submission,
                                             f"{rec.student}: {rec.assignment} ({rec.submission.entry or ''})",
                                             _href(f"{name}.html"))
            write_atomic(out / submission, page)
            written.append(out / submission)
        except Exception as exc:
            submission, problem = None, f"the submission page could not be made ({type(exc).__name__}: {exc})"[:300]
        if problem:
            inputs = dataclasses.replace(inputs, submission_note=problem)
    links = {"index": "../../index.html", "submission": _href(f"{name}.submission.html") if submission else "",
             "student": _href(f"../../{student_page}")}
    write_atomic(out / instructor, render_record(inputs, "instructor", links))
    write_atomic(out / student_page, render_record(inputs, "student", {}))
    written += [out / instructor, out / student_page]
    return {"rec": rec, "instructor": _href(instructor), "student": _href(student_page),
            "submission": _href(submission) if submission else None, "problem": None}


def write_atomic(path: Path, text: str) -> None:
    """Replaces `path` at once (a temporary file renamed over it), without fsync: the pages are
    derived and made again from the records, so an fsync per page (a thousand for a class) buys nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


MANIFEST = ".pages.json"  # in the html folder: what each record's pages were rendered from
_RENDERER: str | None = None


def _renderer() -> str:
    """A hash of this module and the templates: pages made by other code are made again."""
    global _RENDERER
    if _RENDERER is None:
        digest = hashlib.sha256(Path(__file__).read_bytes())
        digest.update((Path(__file__).parent / "notebook_page.py").read_bytes())
        for path in sorted(TEMPLATES.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(TEMPLATES).as_posix().encode() + b"\0" + path.read_bytes())
        _RENDERER = digest.hexdigest()
    return _RENDERER


def _stat(path: Path) -> str:
    try:
        st = path.lstat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return f"{path}:-"


def fingerprint(item: RecordFile, assignments: dict[str, LoadedAssignment], data_root: Path | None) -> str:
    """What one record's pages are a function of: the record file's bytes, every file of its
    evidence folder (size and modification time), the assignment (spec, expected model), the holdout
    files the misclassified grid reads, and the renderer (`_renderer`). Equal fingerprints: equal pages."""
    digest = hashlib.sha256(_renderer().encode())
    digest.update(item.path.read_bytes())
    if item.evidence.is_dir():
        for path in sorted(item.evidence.rglob("*")):
            digest.update(_stat(path).encode())
    loaded = assignments.get(item.rec.assignment)
    digest.update(repr(loaded).encode())
    digest.update(str(data_root).encode())
    if loaded is not None and item.rec.metrics.misclassified:
        from harness.data import providers
        folder = providers.dataset_dir(loaded.spec.data.name, data_root)
        for path in (folder / "manifest.json", folder / "holdout-labels.json", folder / "holdout",
                     folder / "holdout" / "images.npy"):
            digest.update(_stat(path).encode())
    return digest.hexdigest()


def _read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    try:
        path = out / MANIFEST
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 64 * 2**20:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _unchanged(item: RecordFile, previous: dict[str, Any] | None, fp: str, out: Path) -> dict[str, Any] | None:
    """The index row of a record whose pages are on disk and were rendered from the same inputs."""
    if not previous or previous.get("fingerprint") != fp:
        return None
    pages = [previous.get("instructor"), previous.get("student")]
    submission = previous.get("submission")
    if submission is not None:
        pages.append(submission)
    if not all(isinstance(p, str) and (out / p).is_file() for p in pages):
        return None
    return {"rec": item.rec, "instructor": _href(pages[0]), "student": _href(pages[1]),
            "submission": _href(submission) if submission else None, "problem": None}


def write_run(run_dir: Path, assignments: dict[str, LoadedAssignment], data_root: Path | None = None,
              out: Path | None = None, force: bool = False) -> list[Path]:
    """Writes the HTML reports of every record in `run_dir` (default into RUN_DIR/html/); returns
    the files written. What `grade` calls at its end. A record whose pages are there and whose
    inputs (`fingerprint`) are unchanged since they were written is not rendered again (`force`
    renders every record)."""
    out = out or run_dir / HTML_DIR
    items, unreadable = load_records(run_dir)
    written: list[Path] = []
    rows = []
    manifest = {} if force else _read_manifest(out)
    kept: dict[str, dict[str, Any]] = {}
    for item in items:
        key = f"{_safe(item.student_dir)}/{_safe(item.name)}"
        try:
            fp = fingerprint(item, assignments, data_root)
        except Exception:
            fp = None
        row = _unchanged(item, manifest.get(key), fp, out) if fp else None
        if row is None:
            try:
                row = _write_one(item, assignments, data_root, out, written)
            except Exception as exc:  # one record the report fails on must not stop the others
                row = {"rec": item.rec, "instructor": None, "student": None, "submission": None,
                       "problem": f"the report could not be made ({type(exc).__name__}: {exc})"[:300]}
        if fp and row.get("instructor") and row.get("student"):
            kept[key] = {"fingerprint": fp, "instructor": unquote(row["instructor"]),
                         "student": unquote(row["student"]),
                         "submission": unquote(row["submission"]) if row.get("submission") else None}
        rows.append(row)
    write_atomic(out / MANIFEST, json.dumps(kept, indent=0, sort_keys=True))
    board = run_dir / "leaderboard" / "leaderboard.html"
    leaderboard = os.path.relpath(board, out) if board.is_file() else None
    rows.sort(key=lambda r: (r["rec"].student, r["rec"].assignment))
    write_atomic(out / "index.html", render_index(rows, f"Grading report: {run_dir.resolve().name}", leaderboard))
    written.append(out / "index.html")
    return written


def command(run_dir: Path, assignments_dir: Path, data_root: Path | None, out: Path | None) -> int:
    """`harness report RUN_DIR`: exit 0 when the pages are written; a usage error when there is nothing to render."""
    import sys
    from harness import spec
    from harness.errors import UsageError
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such folder of records")
    items, unreadable = load_records(run_dir)
    for path in unreadable:
        print(f"warning: {path} is not a valid record; left out", file=sys.stderr)
    if not items:
        raise UsageError(f"{run_dir}: holds no records")
    written = write_run(run_dir, spec.load_all(assignments_dir), data_root, out)
    print(f"{len(items)} record(s) -> {len(written)} page(s); open {(out or run_dir / HTML_DIR) / 'index.html'}")
    return 0
