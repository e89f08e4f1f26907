"""Evidence: what the probe and the driver left, read back as claims.

Everything here came from the untrusted process. Each line is parsed once into a frozen,
validated model of its kind (`extra="forbid"`, bounded numbers, strings and lists); a line that
is malformed, oversized, of an unknown kind or out of sequence becomes an entry in `problems`
(reported as an `evidence-mismatch` finding), never an exception. Consumers read the validated
events as plain JSON-safe dicts (`model_dump(by_alias=True)`), so every field has the type
its model says.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_EVENTS = 20000
MAX_LINE = 1_000_000
MAX_EVIDENCE_BYTES = 64 * 2**20
MAX_FILE_BYTES = 64 * 2**20   # one signature or file-hash file

# ---------------------------------------------------------------- the event models

Int = Annotated[int, Field(ge=-(2**53), le=2**53)]
Text = Annotated[str, Field(max_length=20_000)]
Short = Annotated[str, Field(max_length=2_000)]
Scalar = Union[bool, Int, float, Short, None]
Plain = Union[Scalar, Annotated[list[Scalar], Field(max_length=64)]]
ShapeDim = Union[Int, None]
Shape = Union[Annotated[list[ShapeDim], Field(max_length=16)],
              Annotated[list[Union[Annotated[list[ShapeDim], Field(max_length=16)], None]], Field(max_length=64)]]


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class Location(Claim):
    cell_run: Int | None = None
    file: Short | None = None
    line: Int | None = None


class LayerClaim(Claim):
    name: Short = ""
    type: Short
    output_shape: Shape | None = None
    params: Int | None = None
    trainable: bool = True
    config: dict[Short, Plain] = Field(default_factory=dict, max_length=64)


class ModelClaim(Claim):
    class_: Short | None = Field(default=None, alias="class")
    name: Short = ""
    built: bool = False
    layers: Annotated[list[LayerClaim], Field(max_length=5000)] = []
    total_params: Int | None = None
    trainable_params: Int | None = None
    input_shape: Shape | None = None


class OptimizerClaim(Claim):
    class_: Short = Field(alias="class")
    config: dict[Short, Union[Plain, dict[Short, Short]]] = Field(default_factory=dict, max_length=200)


class RandomMap(Claim):
    where: Location | None = None
    ops: Annotated[list[Short], Field(max_length=64)] = []


class Origin(Claim):
    what: Short
    where: Location | None = None
    subset: Plain = None
    seed: Plain = None
    validation_split: Plain = None
    shuffle: Plain = None
    image_size: Plain = None
    target_size: Plain = None
    interpolation: Plain = None
    crop_to_aspect_ratio: Plain = None
    pad_to_aspect_ratio: Plain = None
    color_mode: Plain = None
    directory: Short | None = None
    generator: dict[Short, Plain] | None = None


class DataClaim(Claim):
    kind: Literal["tuple", "array", "object", "unknown"]
    items: Annotated[list[Union["DataClaim", None]], Field(max_length=4)] | None = None
    type: Short | None = None
    shape: Shape | None = None
    dtype: Short | None = None
    min: float | None = None
    max: float | None = None
    directory: Short | None = None
    target_size: Plain = None
    class_mode: Plain = None
    batch_size: Plain = None
    subset: Plain = None
    n: Plain = None
    num_classes: Plain = None
    interpolation: Plain = None
    color_mode: Plain = None
    split: Plain = None
    seed: Plain = None
    class_indices: dict[Short, Int] | None = Field(default=None, max_length=10_000)
    generator: dict[Short, Plain] | None = None
    element_spec: Short | None = None
    sample_shape: Shape | None = None
    origin: Origin | None = None
    signatures: Short | None = None
    files: Short | None = None
    random_maps: Annotated[list[RandomMap], Field(max_length=64)] | None = None


class CallbackClaim(Claim):
    class_: Short = Field(alias="class")
    monitor: Plain = None
    restore_best_weights: Plain = None
    save_best_only: Plain = None
    patience: Plain = None
    factor: Plain = None
    mode: Plain = None
    filepath: Plain = None
    min_delta: Plain = None


class Event(Claim):
    seq: Int
    time: float | None = None


class ProbeStart(Event):
    kind: Literal["probe_start"]
    pid: Int | None = None
    quick: bool | None = None
    python: Short | None = None


class ProbeEnd(Event):
    kind: Literal["probe_end"]
    fits: Int | None = None
    events: Int | None = None


class ProbeError(Event):
    kind: Literal["probe_error"]
    context: Short | None = None
    error: Text | None = None


class Runtime(Event):
    kind: Literal["runtime"]
    keras: Short | None = None
    version: Short | None = None


class Seeded(Event):
    kind: Literal["seeded"]
    seed: Int


class FitStart(Event):
    kind: Literal["fit_start"]
    fit: Int
    api: Short | None = None
    where: Location | None = None
    model: ModelClaim | None = None
    optimizer: OptimizerClaim | None = None
    x: DataClaim | None = None
    y: DataClaim | None = None
    validation_data: DataClaim | None = None
    validation_split: Plain = None
    epochs: Plain = None
    batch_size: Plain = None
    steps_per_epoch: Plain = None
    callbacks: Annotated[list[CallbackClaim], Field(max_length=100)] = []


class FitEnd(Event):
    kind: Literal["fit_end"]
    fit: Int
    history: dict[Short, Annotated[list[float], Field(max_length=100_000)]] = Field(default_factory=dict,
                                                                                  max_length=200)
    model: ModelClaim | None = None


class ModelBuilt(Event):
    kind: Literal["model_built"]
    fit: Int | None = None
    model: ModelClaim


class QuickStopEvent(Event):
    kind: Literal["quick_stop"]
    fit: Int | None = None
    training_loop: Short | None = None


class ExceptionEvent(Event):
    kind: Literal["exception"]
    during: Short | None = None
    fit: Int | None = None
    type: Short | None = None
    message: Text | None = None
    where: Location | None = None


class Compile(Event):
    kind: Literal["compile"]
    where: Location | None = None
    model: ModelClaim | None = None
    optimizer: OptimizerClaim | None = None
    loss: Short | None = None
    metrics: Annotated[list[Short], Field(max_length=100)] | None = None


class Evaluate(Event):
    kind: Literal["evaluate"]
    where: Location | None = None
    claimed: Plain = None
    x: DataClaim | None = None


class Save(Event):
    kind: Literal["save"]
    where: Location | None = None
    path: Short | None = None


class Epoch(Event):
    kind: Literal["epoch"]
    epoch: Int
    logs: dict[Short, float] = Field(default_factory=dict, max_length=200)


class ModelSaved(Event):
    kind: Literal["model_saved"]
    file: Short | None = None
    model: ModelClaim | None = None
    chosen: Short | None = None
    training_loops: dict[Short, Int] | None = Field(default=None, max_length=16)


class TrainingLoop(Event):
    """The first training step of a kind outside fit (GradientTape: an optimizer applying gradients;
    train_on_batch): the model it trained, and the data the loop iterated over."""
    kind: Literal["training_loop"]
    api: Short
    where: Location | None = None
    model: ModelClaim | None = None
    x: DataClaim | None = None
    data: DataClaim | None = None


class ModelGraphSaved(Event):
    kind: Literal["model_graph_saved"]
    file: Short | None = None
    reasons: Annotated[list[Short], Field(max_length=20)] = []


class ModelGraphFailed(Event):
    kind: Literal["model_graph_failed"]
    reasons: Annotated[list[Short], Field(max_length=20)] = []
    error: Text | None = None


class ModelSaveFailed(Event):
    kind: Literal["model_save_failed"]
    error: Text | None = None


class StatisticsFit(Event):
    kind: Literal["statistics_fit"]
    what: Short
    where: Location | None = None
    data: DataClaim | None = None
    signatures: Short | None = None


class Note(Event):
    """A notebook habit the probe neutralised: a shell escape not run, a Colab or Kaggle Learn stand-in."""
    kind: Literal["note"]
    what: Short
    detail: Short | None = None
    where: Location | None = None
    present: Annotated[list[Short], Field(max_length=64)] | None = None
    missing: Annotated[list[Short], Field(max_length=64)] | None = None


AnyEvent = Annotated[Union[ProbeStart, ProbeEnd, ProbeError, Runtime, Seeded, FitStart, FitEnd, ModelBuilt,
                           QuickStopEvent, ExceptionEvent, Compile, Evaluate, Save, Epoch, ModelSaved,
                           ModelSaveFailed, StatisticsFit, TrainingLoop, ModelGraphSaved, ModelGraphFailed,
                           Note], Field(discriminator="kind")]
EVENT = TypeAdapter(AnyEvent)


class DriverLine(Claim):
    kind: Literal["start", "cell", "quick_stop", "cell_error", "kernel_died", "finish_failed", "end"]
    time: float | None = None
    cells: Int | None = None
    index: Int | None = None
    run: Int | None = None
    ename: Short | None = None
    evalue: Text | None = None
    message: Text | None = None
    code: Int | None = None


DRIVER = TypeAdapter(DriverLine)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"][:6])
    return f"{where}: {err['msg']}"[:200]


@dataclass(frozen=True)
class Fit:
    number: int
    start: dict[str, Any]
    end: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    built_model: dict[str, Any] | None = None

    def data(self, role: str) -> dict[str, Any] | None:
        """What this fit got as `role` ("x" or "validation_data"): the first item of an (x, y) tuple."""
        desc = self.start.get(role)
        if isinstance(desc, dict) and desc.get("kind") == "tuple":
            items = desc.get("items") or []
            return items[0] if items and isinstance(items[0], dict) else None
        return desc if isinstance(desc, dict) else None

    @property
    def model(self) -> dict[str, Any] | None:
        if self.end and self.end.get("model"):
            return self.end["model"]
        if self.built_model:
            return self.built_model
        return self.start.get("model")


@dataclass(frozen=True)
class Evidence:
    events: list[dict[str, Any]]
    driver: list[dict[str, Any]]
    fits: list[Fit]
    compiles: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    quick_stopped: bool
    model_file: Path | None
    problems: list[str] = field(default_factory=list)
    cell_index: dict[int, int] = field(default_factory=dict)
    folder: Path | None = None
    training_loops: list[dict[str, Any]] = field(default_factory=list)  # steps outside fit: GradientTape, train_on_batch
    graph_file: Path | None = None  # the saved model as a TensorFlow graph (Lambda / custom layers)

    def file(self, name: object) -> Path | None:
        """An evidence file the probe named (signatures, file hashes), if it is a plain file here
        and not larger than MAX_FILE_BYTES."""
        if not isinstance(name, str) or "/" in name or name.startswith(".") or self.folder is None:
            return None
        path = self.folder / name
        try:
            ok = path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_FILE_BYTES
        except OSError:
            return None
        return path if ok else None

    def where(self, loc: dict[str, Any] | None) -> str | None:
        """'cell 7, line 3' or 'train.py:12' from a probe location."""
        if not isinstance(loc, dict):
            return None
        line = loc.get("line")
        if "cell_run" in loc:
            index = self.cell_index.get(loc["cell_run"])
            cell = f"cell {index + 1}" if isinstance(index, int) else f"executed cell {loc['cell_run']}"
            return f"{cell}, line {line}" if line else cell
        if "file" in loc:
            return f"{loc['file']}:{line}" if line else str(loc["file"])
        return None

    def last_model(self) -> dict[str, Any] | None:
        """The layer table of the last fitted model, else of the last compiled one."""
        for fit in reversed(self.fits):
            if fit.model and fit.model.get("layers") is not None:
                return fit.model
        for event in reversed(self.events):  # a custom training loop: the model the probe saved or saw train
            model = event.get("model") if event.get("kind") in ("model_saved", "training_loop") else None
            if isinstance(model, dict) and model.get("layers") is not None:
                return model
        for compiled in reversed(self.compiles):
            model = compiled.get("model")
            if model and model.get("built"):
                return model
        return None

    def history(self) -> dict[str, list[float | None]]:
        for fit in reversed(self.fits):
            if fit.end and isinstance(fit.end.get("history"), dict):
                return _float_lists(fit.end["history"])
        curves: dict[str, list] = {}
        for epoch in self.epochs:  # a run cut short still has its per-epoch logs
            for key, value in (epoch.get("logs") or {}).items():
                if isinstance(value, (int, float)):
                    curves.setdefault(str(key), []).append(value)
        return _float_lists(curves)


def _float_lists(raw: dict) -> dict[str, list[float | None]]:
    """Curves as JSON-safe lists: NaN and infinities (a diverged run) become None."""
    out = {}
    for key, values in raw.items():
        if isinstance(values, list) and all(isinstance(v, (int, float)) for v in values):
            out[str(key)] = [float(v) if math.isfinite(v) else None for v in values]
    return out


def _read_jsonl(path: Path, problems: list[str], adapter: TypeAdapter) -> list[dict[str, Any]]:
    """Each line validated by `adapter`; returns the valid ones as JSON-safe dicts."""
    if not path.is_file() or path.is_symlink():
        return []
    out = []
    read = 0
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            number += 1
            read += len(raw)
            if number > MAX_EVENTS or read > MAX_EVIDENCE_BYTES:
                problems.append(f"{path.name}: more than {MAX_EVENTS} lines or {MAX_EVIDENCE_BYTES // 2**20} MB; "
                                f"the rest was ignored")
                break
            if len(raw) > MAX_LINE:
                problems.append(f"{path.name} line {number}: too long, ignored")
                while raw and not raw.endswith(b"\n"):  # skip the rest of that line
                    raw = fh.readline(MAX_LINE + 1)
                continue
            try:
                item = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
                problems.append(f"{path.name} line {number}: not JSON, ignored")
                continue
            if not isinstance(item, dict):
                problems.append(f"{path.name} line {number}: not an object, ignored")
                continue
            try:
                model = adapter.validate_python(item)
            except ValidationError as exc:
                kind = item.get("kind") if isinstance(item.get("kind"), str) else "?"
                problems.append(f"{path.name} line {number} ({kind[:40]!r}): malformed, ignored ({_first_error(exc)})")
                continue
            except (RecursionError, ValueError, TypeError, OverflowError) as exc:
                problems.append(f"{path.name} line {number}: malformed, ignored ({type(exc).__name__})")
                continue
            out.append(model.model_dump(by_alias=True, exclude_none=True))
    return out


def read(evidence_dir: Path) -> Evidence:
    problems: list[str] = []
    events = _read_jsonl(evidence_dir / "events.jsonl", problems, EVENT)
    driver = _read_jsonl(evidence_dir / "driver.jsonl", problems, DRIVER)

    seqs = [e.get("seq") for e in events]
    if any(not isinstance(s, int) for s in seqs) or seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        problems.append("the probe's events are out of order or duplicated")
    elif seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        problems.append("the probe's event sequence has gaps: some evidence was removed")
    if events and events[0].get("kind") != "probe_start":
        problems.append("the probe's first event is missing")
    end = next((e for e in events if e.get("kind") == "probe_end"), None)
    if end is not None and end.get("events") != len(events):
        problems.append("the probe counted a different number of events than were kept")
    for e in events:
        if e.get("kind") == "probe_error":
            problems.append(f"probe problem ({e.get('context')}): {e.get('error')}")

    fits: dict[int, dict[str, Any]] = {}
    for e in events:
        kind, number = e.get("kind"), e.get("fit")
        if not isinstance(number, int):
            continue
        slot = fits.setdefault(number, {})
        if kind == "fit_start":
            slot["start"] = e
        elif kind == "fit_end":
            slot["end"] = e
        elif kind == "model_built":
            slot["built_model"] = e.get("model")
        elif kind == "exception":
            slot["error"] = e
    fit_list = [Fit(number=n, **slot) for n, slot in sorted(fits.items()) if "start" in slot]

    cell_index = {}
    for d in driver:
        if d.get("kind") == "cell" and isinstance(d.get("run"), int) and isinstance(d.get("index"), int):
            cell_index[d["run"]] = d["index"]

    dropped = evidence_dir / "dropped.txt"  # written by the harness when it kept less than the run left
    if dropped.is_file() and not dropped.is_symlink():
        names = dropped.read_text(errors="replace").split()[:5]
        problems.append(f"the run left more evidence than the grader keeps; not kept: {', '.join(names)}")

    model_file = evidence_dir / "model.keras"
    graph_file = evidence_dir / "model-graph.zip"
    graph_saved = any(e.get("kind") == "model_graph_saved" for e in events)
    return Evidence(
        events=events,
        driver=driver,
        fits=fit_list,
        compiles=[e for e in events if e.get("kind") == "compile"],
        exceptions=[e for e in events if e.get("kind") == "exception"],
        epochs=[e for e in events if e.get("kind") == "epoch"],
        quick_stopped=any(e.get("kind") == "quick_stop" for e in events + driver),
        model_file=model_file if model_file.is_file() and not model_file.is_symlink() else None,
        problems=problems,
        cell_index=cell_index,
        folder=evidence_dir,
        training_loops=[e for e in events if e.get("kind") == "training_loop"],
        graph_file=graph_file if graph_saved and graph_file.is_file() and not graph_file.is_symlink() else None,
    )
