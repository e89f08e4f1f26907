"""The benchmark leaderboard: a pure function of a run folder (records and the timings the trusted
evaluation stored next to them). No student code runs and no sandbox starts here.

A run folder is what `grade --out` writes: `<student>/<assignment>.json` (the record) and
`<student>/<assignment>.evidence/evaluation.json` (what the trusted evaluation measured, with its
timings). Two accuracies are shown, as on Kaggle: `public_accuracy` (the public part of the test
split: what a course shows during an assignment) and `private_accuracy` (the private part,
`metrics.holdout_accuracy`: it decides grades). The student-visible board (`public_view`) has no
private accuracy and no scores.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from harness import record as record_io
from harness.record import Layer, Record, write_atomic

EVALUATION_FILE = "evaluation.json"  # harness.execute.EVALUATION_FILE (not imported: it pulls in the sandbox)
MAX_EVALUATION_BYTES = 32 * 2**20
LEADERBOARD_DIR = "leaderboard"

COLUMNS = ["rank", "student", "assignment", "status", "score", "max_score", "private_accuracy", "public_accuracy",
           "params", "flops_per_image", "train_seconds", "images_per_second", "latency_ms", "peak_memory_mb",
           "gpu_seconds"]
OVERALL_COLUMNS = ["rank", "student", "assignments", "graded", "score", "max_score", "mean_private_accuracy",
                   "mean_public_accuracy", "train_seconds", "gpu_seconds"]
PUBLIC_COLUMNS = ["rank", "student", "assignment", "public_accuracy", "params", "flops_per_image",
                  "train_seconds", "images_per_second", "latency_ms", "peak_memory_mb", "gpu_seconds"]
LABELS = {
    "rank": "#", "student": "student", "assignment": "assignment", "status": "status", "score": "score",
    "max_score": "max", "private_accuracy": "private accuracy", "public_accuracy": "public accuracy",
    "params": "params", "flops_per_image": "FLOPs / image", "train_seconds": "training run s",
    "images_per_second": "inference images/s", "latency_ms": "ms / image", "peak_memory_mb": "peak MB",
    "gpu_seconds": "GPU s", "assignments": "assignments", "graded": "graded",
    "mean_private_accuracy": "mean private accuracy", "mean_public_accuracy": "mean public accuracy",
}


# ---- loading a run folder

@dataclass(frozen=True)
class Entry:
    """One job of a run: its record and the trusted evaluation's timings ({} when none were stored)."""

    record: Record
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    entries: list[Entry]
    unreadable: list[Path]  # files that looked like records but did not validate


def read_timings(evidence: Path) -> dict[str, float]:
    """`timings` of `<evidence>/evaluation.json` (predict_seconds, n, ...), {} when absent or malformed."""
    path = evidence / EVALUATION_FILE
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_EVALUATION_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    timings = data.get("timings") if isinstance(data, dict) else None
    if not isinstance(timings, dict):
        return {}
    return {str(k): float(v) for k, v in timings.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def load_run(run_dir: Path) -> Run:
    """Every record under `run_dir` (`<student>/<assignment>.json`, validated) with its timings."""
    entries, unreadable = [], []
    for path in record_io.files(run_dir):
        try:
            rec = record_io.load(path)
        except Exception:  # not a record, or one that no longer validates: listed, never fatal
            unreadable.append(path)
            continue
        entries.append(Entry(rec, read_timings(path.with_suffix(".evidence"))))
    return Run(entries, unreadable)


# ---- measured figures

def _positions(shape: list | None) -> int | None:
    """Product of the dimensions between the batch and the channel axis (1 for a (None, units) output)."""
    if not isinstance(shape, list) or len(shape) < 2 or (shape and isinstance(shape[0], list)):
        return None
    inner = shape[1:-1]
    if not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return None
    return math.prod(inner) if inner else 1


def _elements(shape: list | None) -> int | None:
    positions = _positions(shape)
    return None if positions is None else positions * shape[-1]


NO_ARITHMETIC = {"InputLayer", "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                 "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                 "Activation", "ReLU", "LeakyReLU", "Softmax", "ELU", "PReLU",
                 "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                 "RandomCrop", "RandomBrightness", "RandomHeight", "RandomWidth"}
WEIGHTED = {"Conv2D", "Convolution2D", "Dense"}
POOLING = {"MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D"}
GLOBAL_POOLING = {"GlobalMaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPool2D", "GlobalAvgPool2D"}
AFFINE = {"BatchNormalization", "Rescaling", "Normalization"}


def flops_per_image(layers: Iterable[Layer]) -> int | None:
    """Floating-point operations to classify one image, counted from the layer table alone
    (type, output shape, params), channels-last as Keras and TensorFlow's CPU convolutions use.

    Counting rule (FLOPs = 2 × multiply-accumulates, plus one per comparison or addition):
    - `Conv2D`, `Dense`: 2 FLOPs per parameter per output position, where the positions are the
      output's dimensions between batch and channels (H × W for Conv2D, 1 for a Dense on a flat
      input). Each weight is one multiply and one add at each position; a bias is counted the same
      way (one multiply-add by 1), so the figure does not depend on `use_bias`.
    - `MaxPooling2D`, `AveragePooling2D`: one FLOP per value read by each window: output values ×
      (pool height × pool width), the window inferred as round(input size / output size) per axis,
      which is exact for Keras's default strides (= pool size).
    - `GlobalMaxPooling2D`, `GlobalAveragePooling2D`: one FLOP per input value.
    - `BatchNormalization`, `Rescaling`, `Normalization` (inference: a scale and a shift): 2 FLOPs
      per output value.
    - No arithmetic at inference, 0 FLOPs: `InputLayer`, `Flatten`, `Reshape`, `Dropout` and the
      other noise layers, `Random*` augmentation layers, and activation layers (activations are not
      counted anywhere, also not inside Conv2D/Dense).
    Any other layer type, a missing parameter count or output shape, or a pooling layer whose input
    shape is unknown makes the whole figure None: never a wrong number.
    """
    total = 0
    previous: list | None = None
    for layer in layers:
        kind, shape, params = layer.type, layer.output_shape, layer.params
        if kind in NO_ARITHMETIC:
            cost = 0
        elif kind in WEIGHTED:
            positions = _positions(shape)
            if positions is None or not isinstance(params, int) or params < 0 or params % shape[-1]:
                return None
            cost = 2 * params * positions
        elif kind in POOLING:
            out = _elements(shape)
            if out is None or _positions(previous) is None or len(previous) != 4 or len(shape) != 4:
                return None
            window = max(1, round(previous[1] / shape[1])) * max(1, round(previous[2] / shape[2]))
            cost = out * window
        elif kind in GLOBAL_POOLING:
            cost = _elements(previous)
            if cost is None:
                return None
        elif kind in AFFINE:
            out = _elements(shape)
            if out is None:
                return None
            cost = 2 * out
        else:
            return None
        total += cost
        previous = shape
    return total


def inference(timings: dict[str, float]) -> tuple[float | None, float | None]:
    """(images per second, milliseconds per image) of the trusted evaluation's `model.predict` over
    the holdout, in batches of `harness.evaluator.predict.BATCH_SIZE` after warm-up batches that are
    not timed (as `benchmarks/evaluation_throughput.py` measures it): the median rate over stretches of
    batches where the evaluation stored it (older records: the whole pass). The latency is the batch time
    shared out per image, not a single-image round trip. (None, None) when no timing was stored."""
    steady = timings.get("steady_images_per_second")
    if steady and steady > 0:
        return steady, 1000.0 / steady
    seconds, n = timings.get("predict_seconds"), timings.get("n")
    if not seconds or not n or seconds <= 0 or n <= 0:
        return None, None
    return n / seconds, 1000.0 * seconds / n


def gpu_seconds(entry: Entry) -> float | None:
    """GPU time of the job: its wall time (run and trusted evaluation) times the GPUs it held. Empty when it
    held none, or held some that TensorFlow did not see (nothing ran on them)."""
    run = entry.record.run
    if not run.gpus or not run.wall_seconds or run.tensorflow_gpus == []:
        return None
    held = len(run.tensorflow_gpus) if "all" in run.gpus and run.tensorflow_gpus else len(run.gpus)
    return (run.wall_seconds + (run.evaluation_seconds or 0.0)) * held


# ---- tables

def frame(entries: Iterable[Entry]) -> pd.DataFrame:
    """One row per job, every column, unranked."""
    rows = []
    for entry in entries:
        rec = entry.record
        rate, latency = inference(entry.timings)
        rows.append({
            "student": rec.student, "assignment": rec.assignment, "status": rec.status,
            "score": rec.score, "max_score": rec.max_score,
            "private_accuracy": rec.metrics.holdout_accuracy, "public_accuracy": rec.metrics.public_accuracy,
            "params": rec.model.total_params if rec.model else None,
            "flops_per_image": flops_per_image(rec.model.layers) if rec.model and rec.model.layers else None,
            "train_seconds": rec.run.wall_seconds if rec.run.wall_seconds else None,
            "images_per_second": rate, "latency_ms": latency,
            "peak_memory_mb": rec.run.peak_memory_mb, "gpu_seconds": gpu_seconds(entry),
        })
    df = pd.DataFrame(rows, columns=COLUMNS[1:])
    for column in ("params", "flops_per_image"):
        df[column] = df[column].astype("Int64")
    for column in ("score", "max_score", "private_accuracy", "public_accuracy", "train_seconds",
                   "images_per_second", "latency_ms", "peak_memory_mb", "gpu_seconds"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


def _ranked(df: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Sorted by `keys` (descending, missing values last, then student); equal keys share a rank."""
    df = df.sort_values([*keys, "student"], ascending=[False] * len(keys) + [True], na_position="last",
                        kind="mergesort").reset_index(drop=True)
    ranks, previous = [], None
    for i, key in enumerate(df[keys].itertuples(index=False, name=None)):
        key = tuple(None if pd.isna(v) else v for v in key)
        ranks.append(ranks[-1] if key == previous else i + 1)
        previous = key
    df.insert(0, "rank", pd.array(ranks, dtype="Int64"))
    return df[columns]


def per_assignment(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The board of each assignment: score first (what grades), then private accuracy."""
    return {aid: _ranked(part, ["score", "private_accuracy"], COLUMNS)
            for aid, part in sorted(df.groupby("assignment", sort=True), key=lambda kv: kv[0])}


def overall(df: pd.DataFrame) -> pd.DataFrame:
    """One row per student over every assignment: total score, mean accuracies, total time."""
    if df.empty:
        return pd.DataFrame(columns=OVERALL_COLUMNS)
    grouped = df.groupby("student", sort=True)
    out = pd.DataFrame({
        "assignments": grouped.size(),
        "graded": grouped["status"].apply(lambda s: int((s == "graded").sum())),
        "score": grouped["score"].sum(), "max_score": grouped["max_score"].sum(),
        "mean_private_accuracy": grouped["private_accuracy"].mean(),
        "mean_public_accuracy": grouped["public_accuracy"].mean(),
        "train_seconds": grouped["train_seconds"].sum(min_count=1),
        "gpu_seconds": grouped["gpu_seconds"].sum(min_count=1),
    }).reset_index()
    return _ranked(out, ["score", "mean_private_accuracy"], OVERALL_COLUMNS)


def public_view(board: pd.DataFrame) -> pd.DataFrame:
    """What students may see during an assignment: ranked by public accuracy, no private accuracy, no scores."""
    return _ranked(board.drop(columns=["rank"]), ["public_accuracy"], PUBLIC_COLUMNS)


# ---- rendering

def _cell(column: str, value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("private_accuracy", "public_accuracy", "mean_private_accuracy", "mean_public_accuracy"):
        return f"{value:.4f}"
    if column in ("params", "flops_per_image"):
        return f"{int(value):,}"
    if column in ("score", "max_score"):
        return f"{value:g}"
    if column in ("train_seconds", "gpu_seconds", "peak_memory_mb", "images_per_second"):
        return f"{value:,.1f}"
    if column == "latency_ms":
        return f"{value:.3f}"
    return str(value)


def to_csv(board: pd.DataFrame) -> str:
    return board.to_csv(index=False, lineterminator="\n", float_format="%.6g")


def to_markdown(board: pd.DataFrame, title: str | None = None) -> str:
    columns = list(board.columns)
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(LABELS.get(c, c) for c in columns) + " |",
              "|" + "|".join("---:" if c not in ("student", "assignment", "status") else "---" for c in columns) + "|"]
    for row in board.itertuples(index=False, name=None):
        cells = [_cell(c, v).replace("|", "\\|") for c, v in zip(columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    if board.empty:
        lines.append("| " + " | ".join("" for _ in columns) + " |")
    return "\n".join(lines) + "\n"


SORT_SCRIPT = """<script>
document.querySelectorAll("table.leaderboard th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], index = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.cells[index], raw = cell.getAttribute("data-value");
      if (raw === null || raw === "") return null;
      var number = Number(raw);
      return isNaN(number) ? raw.toLowerCase() : number;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null) return y === null ? 0 : 1;
      if (y === null) return -1;
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
</script>"""


def _html_table(board: pd.DataFrame) -> str:
    columns = list(board.columns)
    head = "".join(f'<th scope="col" title="click to sort">{html.escape(LABELS.get(c, c))}</th>' for c in columns)
    rows = []
    for row in board.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(columns, row):
            text = _cell(column, value)
            raw = "" if text == "" else (repr(float(value)) if isinstance(value, float) else str(value))
            cells.append(f'<td data-value="{html.escape(raw)}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="leaderboard">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>")


def to_html(sections: dict[str, pd.DataFrame], title: str = "Leaderboard") -> str:
    """One page, one sortable table per section (click a column header to sort)."""
    body = []
    for name, board in sections.items():
        body += [f"<h2>{html.escape(name)}</h2>", _html_table(board)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n"
            "body { font-family: sans-serif; margin: 2em; }\n"
            "table.leaderboard { border-collapse: collapse; margin-bottom: 2em; }\n"
            "table.leaderboard th, table.leaderboard td { border: 1px solid #ccc; padding: 0.25em 0.6em; }\n"
            "table.leaderboard td { text-align: right; }\n"
            "table.leaderboard th { cursor: pointer; background: #f3f3f3; }\n"
            "table.leaderboard th[aria-sort=ascending]::after { content: \" \\25B2\"; }\n"
            "table.leaderboard th[aria-sort=descending]::after { content: \" \\25BC\"; }\n"
            f"</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            + "\n".join(body) + "\n" + SORT_SCRIPT + "\n</body>\n</html>\n")


NOTES = ("Private accuracy is measured on the private part of the test split and decides grades; public "
         "accuracy is measured on the public part. FLOPs per image are counted from the scored model's "
         "layer table; inference images/s and ms/image come from the trusted evaluation's batched predict. "
         "An empty cell was not measured.")
PUBLIC_NOTES = ("Public accuracy is measured on the public part of the test split. Grades are decided on "
                "a private part that is not shown here. An empty cell was not measured.")


def boards(entries: list[Entry], public: bool = False) -> dict[str, pd.DataFrame]:
    """The sections of a run's leaderboard: 'overall' (not in the public view), then one per assignment."""
    df = frame(entries)
    sections = {} if public else {"overall": overall(df)}
    for aid, board in per_assignment(df).items():
        sections[aid] = public_view(board) if public else board
    return sections


def write(run_dir: Path, entries: list[Entry], formats: Iterable[str] = ("csv", "md", "html"),
          public: bool = False) -> list[Path]:
    """Writes `RUN_DIR/leaderboard/` (`public/` inside it for the student view): one CSV per section,
    one Markdown file and one HTML page with every section. Returns the files written."""
    folder = run_dir / LEADERBOARD_DIR / ("public" if public else "")
    sections = boards(entries, public)
    title = "Public leaderboard" if public else "Leaderboard"
    written = []
    formats = set(formats)
    if "csv" in formats:
        for name, board in sections.items():
            path = folder / f"{name}.csv"
            write_atomic(path, to_csv(board), durable=False)
            written.append(path)
    if "md" in formats:
        text = f"# {title}\n\n{PUBLIC_NOTES if public else NOTES}\n\n" + "\n".join(
            to_markdown(board, name) for name, board in sections.items())
        write_atomic(folder / "leaderboard.md", text, durable=False)
        written.append(folder / "leaderboard.md")
    if "html" in formats:
        write_atomic(folder / "leaderboard.html", to_html(sections, title), durable=False)
        written.append(folder / "leaderboard.html")
    return written
