"""Trusted evaluation: score the saved model on the holdout, in a second sandbox.

The evaluation sandbox holds the model file, the holdout images (no labels), and the evaluator
script; no student code. It returns predictions; they are validated here and compared with
labels that never leave this process. What the student printed or `evaluate` returned is kept
only as `claimed_*` and never scored. This module never imports student code or the probe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from harness.evaluator.predict import PIL_METHODS, TF_METHODS
from harness.evidence import Evidence
from harness.record import Metrics
from harness.sandbox import Limits, Mount, Sandbox, SandboxRequest, SandboxResult
from harness.sandbox.base import numpy_env, tf_log_level
from harness.spec import LoadedAssignment

# numpy and the data providers are imported where they are used: a quick grade then starts its sandbox
# before loading them (they load while it runs)
if TYPE_CHECKING:
    import numpy as np

    from harness.data import providers

EVALUATOR = Path(__file__).resolve().parent / "evaluator" / "predict.py"
MAX_MISCLASSIFIED = 100


@dataclass(frozen=True)
class Preprocessing:
    scale: str  # none | x/255 | x/127.5-1
    interpolation: str  # pil:<method> (Keras's directory iterators) | tf:<method> (tf.image.resize)
    source: str
    resizing: str | None = None  # how the submission resized its images, in words, when it was seen

    def describe(self) -> str:
        text = f"{self.scale} ({self.source})"
        return f"{text}; images resized {self.resizing}" if self.resizing else text


class Evaluation(BaseModel):
    """What the trusted evaluation measured. Written by the harness next to the record
    (`evaluation.json`, predictions in `predictions.npy`) so a run can be judged again."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = 1
    metrics: Metrics
    error: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = {}
    loaded: bool = False                      # the model file loaded in the evaluation sandbox
    model: dict[str, Any] | None = None       # the layer table read from that file (trusted)
    model_error: str | None = None            # why no layer table could be read, where that differs from error
    model_file: str | None = None             # which file was read
    tensorflow_gpus: list[str] | None = None  # the GPUs TensorFlow saw in the evaluation sandbox (None: not told)


def _scale_from_range(low: float | None, high: float | None) -> str | None:
    if low is None or high is None:
        return None
    if high <= 2.0:  # scaled pixels; lanczos / bicubic resizing overshoots [0, 1] a little
        return "x/127.5-1" if low < -0.5 else "x/255"
    return "none"


def infer_preprocessing(loaded: LoadedAssignment, ev: Evidence) -> Preprocessing:
    """The preprocessing the submission used for its validation data (else its training data; for a
    custom training loop, the data it iterated over or the first batch train_on_batch got)."""
    pinned = loaded.spec.data.preprocessing
    default_interp = "pil:bilinear"
    if pinned:
        return Preprocessing(pinned, default_interp, "pinned by the assignment")
    for desc, what, passed in _data_seen(ev):
        interp, resizing = _resizing(desc)
        generator = desc.get("generator")
        if isinstance(generator, dict):
            rescale = generator.get("rescale")
            if isinstance(rescale, (int, float)) and abs(rescale * 255 - 1) < 1e-3:
                return Preprocessing("x/255", interp, f"ImageDataGenerator(rescale=1/255) on the {what}", resizing)
            if not rescale:
                return Preprocessing("none", interp, f"ImageDataGenerator without rescale on the {what}", resizing)
            return Preprocessing("x/255", interp, f"ImageDataGenerator(rescale={rescale}) on the {what}: "
                                                  f"not a standard scale, x/255 used", resizing)
        scale = _scale_from_range(desc.get("min"), desc.get("max"))
        if scale:
            return Preprocessing(scale, interp,
                                 f"the {what}{passed} had values in [{desc['min']:g}, {desc['max']:g}]", resizing)
    model = ev.last_model() or {}
    if any(isinstance(layer, dict) and layer.get("type") == "Rescaling" for layer in (model.get("layers") or [])[:3]):
        return Preprocessing("none", default_interp, "no evidence of the submission's scaling; the model "
                                                     "starts with a Rescaling layer: raw pixel values used")
    return Preprocessing("x/255", default_interp, "no evidence of the submission's scaling: x/255 assumed")


def _data_seen(ev: Evidence):
    """(description, what it was, how it was passed) of the data the submission trained and validated
    on, the most telling first: the last fit's validation data, its training data, earlier fits, then
    custom training loops."""
    for fit in reversed(ev.fits):
        for role in ("validation_data", "x"):
            desc = fit.data(role)
            if desc:
                yield desc, ("validation data" if role == "validation_data" else "training data"), " passed to fit"
    for loop in reversed(ev.training_loops):
        api = str(loop.get("api"))[:30]
        if isinstance(loop.get("data"), dict):
            yield loop["data"], f"data the {api} loop iterated over", ""
        if isinstance(loop.get("x"), dict):
            yield loop["x"], "first batch", f" passed to {api}"


def _resizing(desc: dict) -> tuple[str, str | None]:
    """How the submission's pipeline resized its images: (evaluator interpolation, in words).
    Directory iterators (flow_from_directory) resize with PIL, `image_dataset_from_directory` with
    tf.image.resize; each with its own default. Anything else: PIL bilinear, not described."""
    origin = desc.get("origin") if isinstance(desc.get("origin"), dict) else {}
    if isinstance(desc.get("generator"), dict) or origin.get("what") == "flow_from_directory":
        method = str(desc.get("interpolation") or origin.get("interpolation") or "nearest").lower()
        if method not in PIL_METHODS:
            return "pil:nearest", f"with PIL, 'nearest' (the interpolation {method[:30]!r} is not one PIL has)"
        return f"pil:{method}", f"with PIL, interpolation {method!r}, as the submission's directory iterator did"
    if origin.get("what") == "image_dataset_from_directory":
        method = str(origin.get("interpolation") or "bilinear").lower()
        if method not in TF_METHODS:
            return "tf:bilinear", f"with tf.image.resize, 'bilinear' (the interpolation {method[:30]!r} is unknown)"
        return f"tf:{method}", (f"with tf.image.resize, method {method!r}, as the submission's "
                                f"image_dataset_from_directory did")
    return "pil:bilinear", None


def _class_map(ev: Evidence, classes: list[str]) -> list[int] | None:
    """Model output index → holdout class index, from the class_indices the submission trained with."""
    for fit in reversed(ev.fits):
        desc = fit.data("x")
        indices = desc.get("class_indices") if isinstance(desc, dict) else None
        if isinstance(indices, dict) and sorted(indices) == sorted(classes):
            mapping = [0] * len(classes)
            for name, out_index in indices.items():
                if not isinstance(out_index, int) or not 0 <= out_index < len(classes):
                    return None
                mapping[out_index] = classes.index(name)
            return mapping
    return None


PROBABILITY_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "softmax")


def binary_threshold(output_activation: str | None, values: np.ndarray) -> float:
    """Where a single output unit is decided. Read from the scored model's own config (trusted),
    never from the loss the submission claims: a sigmoid gives a probability (0.5); any other
    activation (linear: logits trained with from_logits=True; tanh) is decided at 0. When the
    activation cannot be told (a Lambda or custom output layer), outputs outside [0, 1] are logits."""
    if output_activation in PROBABILITY_ACTIVATIONS:
        return 0.5
    if isinstance(output_activation, str):
        return 0.0
    return 0.5 if values.size and float(values.min()) >= 0.0 and float(values.max()) <= 1.0 else 0.0


def validate_predictions(raw: Any, n: int, n_classes: int,
                         output_activation: str | None = None) -> tuple[np.ndarray | None, str | None]:
    """(predicted class indices, None) or (None, what is wrong)."""
    import numpy as np
    if not isinstance(raw, np.ndarray):
        return None, "the evaluator returned no array"
    if raw.dtype.kind not in "fiu":
        return None, f"predictions have dtype {raw.dtype}, not numbers"
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim not in (1, 2) or raw.shape[0] != n:
        return None, f"predictions have shape {raw.shape}; expected ({n}, classes)"
    if not np.all(np.isfinite(raw)):
        return None, "the model predicted NaN or infinite values"
    if raw.ndim == 1:
        if n_classes != 2:
            return None, f"the model has one output unit for {n_classes} classes"
        return (raw > binary_threshold(output_activation, raw)).astype(int), None
    return np.argmax(raw, axis=1).astype(int), None


def score(predicted: np.ndarray, labels: np.ndarray, ids: list[str], classes: list[str],
          preprocessing: str, private: np.ndarray | None = None) -> Metrics:
    """Holdout metrics on the private part; the public part's accuracy alongside."""
    import numpy as np
    private = np.ones(len(labels), dtype=bool) if private is None else np.asarray(private, dtype=bool)
    n = len(classes)
    correct = predicted == labels
    mine, theirs = labels[private], predicted[private]
    confusion = np.zeros((n, n), dtype=int)
    for t, p in zip(mine, theirs):
        if 0 <= p < n:
            confusion[t, p] += 1
    right = correct[private]
    per_class = {classes[c]: round(float(right[mine == c].mean()), 4) for c in range(n) if (mine == c).any()}
    private_ids = [ids[i] for i in np.flatnonzero(private)]
    wrong = [private_ids[i] for i in np.flatnonzero(~right)[:MAX_MISCLASSIFIED]]
    public = ~private
    return Metrics(holdout_accuracy=round(float(right.mean()), 4) if right.size else None,
                   holdout_size=int(private.sum()), per_class_accuracy=per_class,
                   confusion_matrix=confusion.tolist(), misclassified=wrong, preprocessing=preprocessing,
                   public_accuracy=round(float(correct[public].mean()), 4) if public.any() else None,
                   public_size=int(public.sum()))


def claimed_accuracy(ev: Evidence) -> float | None:
    """What the submission's own `evaluate` said: kept as a claim, never scored."""
    for event in reversed([e for e in ev.events if e.get("kind") == "evaluate"]):
        claimed = event.get("claimed")
        if isinstance(claimed, list) and len(claimed) >= 2 and isinstance(claimed[1], (int, float)):
            return float(claimed[1])
        if isinstance(claimed, (int, float)):
            return None
    return None


def _request(loaded: LoadedAssignment, sandbox: Sandbox, job_dir: Path, model: str, extra_args: list[str],
             mounts: list[Mount], timeout: float, gpus: tuple[str, ...] = ()) -> SandboxRequest:
    """The evaluator in a sandbox that holds no student code: the model file (and holdout images
    without labels) only. `model` is the path inside; `job_dir/stage` holds predict.py."""
    layout = sandbox.layout(job_dir)
    ws = layout.workspace
    shutil.copyfile(EVALUATOR, job_dir / "stage" / "predict.py")
    shutil.copyfile(EVALUATOR.with_name("config_shapes.py"), job_dir / "stage" / "config_shapes.py")
    python_bin = str(Path(layout.python).parent)
    return SandboxRequest(
        argv=[layout.python, f"{ws}/predict.py", "--model", model.replace("{ws}", ws), "--out", layout.evidence,
              "--runtime", loaded.spec.runtime, *[a.replace("{ws}", ws) for a in extra_args]],
        job_dir=job_dir, stage=job_dir / "stage",
        mounts=[Mount(m.source, m.target.replace("{ws}", ws), m.writable) for m in mounts],
        env={"PATH": f"{python_bin}:/usr/bin:/bin", "HOME": layout.home, "LANG": "C.UTF-8",
             "HARNESS_WORKSPACE": ws, "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": tf_log_level(gpus),
             "KERAS_HOME": f"{layout.home}/.keras", **numpy_env()},
        timeout=timeout, limits=Limits(memory_mb=loaded.spec.memory_mb), log=job_dir / "output.log", gpus=gpus,
        label="evaluation")


def _job_dir(tmp: str) -> Path:
    job_dir = Path(tmp)
    (job_dir / "stage").mkdir()
    (job_dir / "evidence").mkdir()
    return job_dir


def gpus_seen(status: dict) -> list[str] | None:
    """The evaluator's list of the GPUs TensorFlow saw, validated (it ran beside a model)."""
    gpus = status.get("gpus")
    if not isinstance(gpus, list) or len(gpus) > 64 or not all(isinstance(g, str) for g in gpus):
        return None
    return [g[:100] for g in gpus]


def _outputs(out: Path, want_predictions: bool) -> tuple[dict, dict[str, Any] | None, np.ndarray | None]:
    import numpy as np
    status = _read_json(out / "status.json")
    table = _model_table(out / "model.json") if status.get("stage") not in ("load", "describe") else None
    raw = None
    pred_file = out / "predictions.npy"
    if want_predictions and status.get("ok") and pred_file.is_file():
        try:
            raw = np.load(pred_file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            status = {"ok": False, "stage": "read", "message": f"predictions unreadable: {exc}"}
    return status, table, raw


def _run_evaluator(loaded: LoadedAssignment, model_file: Path, sandbox: Sandbox, timeout: float,
                   extra_args: list[str], holdout: providers.Holdout | None = None, gpus: tuple[str, ...] = ()):
    """Run the evaluator on `model_file`. Returns (sandbox result, status, layer table, raw predictions)."""
    with tempfile.TemporaryDirectory(prefix="harness-eval-") as tmp:
        job_dir = _job_dir(tmp)
        shutil.copyfile(model_file, job_dir / "stage" / "model.keras")
        graph = model_file.parent / "model-graph.zip"  # the probe's export: used when Keras refuses the model
        if model_file.name == "model.keras" and graph.is_file() and not graph.is_symlink():
            shutil.copyfile(graph, job_dir / "stage" / "model-graph.zip")
        mounts, args = [], list(extra_args)
        if holdout is not None:
            (job_dir / "stage" / "ids.json").write_text(json.dumps(holdout.ids))
            mounts.append(Mount(holdout.folder, "{ws}/holdout"))
            args += ["--images", "{ws}/holdout", "--ids", "{ws}/ids.json"]
        result = sandbox.run(_request(loaded, sandbox, job_dir, "{ws}/model.keras", args, mounts, timeout, gpus))
        status, table, raw = _outputs(job_dir / "evidence", holdout is not None)
    return result, status, table, raw


class ModelReader:
    """A model-reading sandbox started (`start`) once the student's run has started: its start-up and
    imports overlap the run, and the model file is handed in afterwards through a folder the harness
    alone writes (bound read-only inside). Quick mode's architecture check then costs little more than
    the run."""

    def __init__(self, loaded: LoadedAssignment, sandbox: Sandbox, wait: float, timeout: float = 300,
                 gpus: tuple[str, ...] = ()):
        """`wait`: how long the student's run may take; `timeout`: how long reading the file may take."""
        self._timeout, self._closed = wait + timeout, False
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-read-")
        self._job_dir = _job_dir(self._tmp.name)
        self._inbox = self._job_dir / "inbox"
        self._inbox.mkdir()
        request = _request(loaded, sandbox, self._job_dir, "{ws}/inbox/model.keras",
                           ["--describe-only", "--wait", f"{wait + 60:g}"], [Mount(self._inbox, "{ws}/inbox")],
                           self._timeout, gpus)
        self._result = None
        self._thread = threading.Thread(target=self._run, args=(sandbox, request), daemon=True)
        self._lock = threading.Lock()  # start and close, from the job's thread and the reader's caller

    def start(self) -> None:
        """Start the reading sandbox (once; `read` starts it when nothing did)."""
        with self._lock:
            if not self._closed and self._thread.ident is None:
                self._thread.start()

    def _run(self, sandbox: Sandbox, request: SandboxRequest) -> None:
        try:
            self._result = sandbox.run(request)
        except Exception as exc:  # reported by read()
            self._result = exc

    def read(self, model_file: Path | None) -> Evaluation:
        """Hand `model_file` (or nothing) to the waiting sandbox and return what it read."""
        began = time.monotonic()
        try:
            if model_file is None:
                return Evaluation(metrics=Metrics(), error=NO_MODEL_FILE)
            self.start()
            shutil.copyfile(model_file, self._inbox / ".model.keras")
            os.replace(self._inbox / ".model.keras", self._inbox / "model.keras")
            (self._inbox / "ready").write_text("model")
            self._thread.join(self._timeout + 60)
            result = self._result
            if not isinstance(result, SandboxResult):
                raise result if isinstance(result, Exception) else RuntimeError("the model reader did not finish")
            status, table, _ = _outputs(self._job_dir / "evidence", False)
            return _described(result, status, table, model_file, round(time.monotonic() - began, 3))
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not (self._inbox / "ready").exists():
            (self._inbox / "ready").write_text("none")
        if self._thread.ident is not None:
            self._thread.join(self._timeout + 60)
        self._tmp.cleanup()


def _model_table(path: Path) -> dict[str, Any] | None:
    """The evaluator's layer table, validated like any other boundary data (it ran beside a model)."""
    from pydantic import ValidationError
    from harness.evidence import ModelClaim
    raw = _read_json(path)
    try:
        return ModelClaim.model_validate(raw).model_dump(by_alias=True, exclude_none=True) if raw else None
    except ValidationError:
        return None


def _read_json(path: Path, limit: int = 32 * 2**20) -> dict:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > limit:
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


NO_MODEL_FILE = "no model file was saved, so the grader could not read the model"


def _described(result: SandboxResult, status: dict, table: dict[str, Any] | None, model_file: Path,
               seconds: float) -> Evaluation:
    """What a model-reading sandbox (describe-only) measured, as an Evaluation without scores."""
    if result.timed_out:
        return Evaluation(metrics=Metrics(), model_file=model_file.name, seconds=seconds,
                          error="reading the model file took too long")
    ok = bool(status.get("ok")) and table is not None
    return Evaluation(metrics=Metrics(), error=None if ok else _explain_failure(status, result.output_tail),
                      seconds=seconds, loaded=bool(status) and status.get("stage") != "load",
                      model=table if ok else None, model_file=model_file.name, tensorflow_gpus=gpus_seen(status))


def describe(loaded: LoadedAssignment, model_file: Path | None, sandbox: Sandbox,
             timeout: float = 300, gpus: tuple[str, ...] = ()) -> Evaluation:
    """Read the layer table of a model file with trusted code in a sandbox, without scoring it
    (a run cut short: the model saved at its first fit; calibration: the reference's model)."""
    if model_file is None:
        return Evaluation(metrics=Metrics(), error=NO_MODEL_FILE)
    result, status, table, _ = _run_evaluator(loaded, model_file, sandbox, timeout, ["--describe-only"], gpus=gpus)
    return _described(result, status, table, model_file, result.wall_seconds)


def evaluate(loaded: LoadedAssignment, ev: Evidence, sandbox: Sandbox, data_root: Path | None,
             timeout: float = 900, model_file: Path | None = None,
             gpus: tuple[str, ...] = ()) -> tuple[Evaluation, np.ndarray | None]:
    """Score the model file on the holdout: (what was measured, the raw predictions)."""
    import numpy as np
    from harness.data import providers
    spec = loaded.spec
    model_file = model_file or ev.model_file
    claimed = claimed_accuracy(ev)
    if model_file is None:
        return Evaluation(metrics=Metrics(claimed_accuracy=claimed),
                          error="no trained model was saved, so nothing could be evaluated"), None
    holdout = providers.holdout(spec.data, data_root)
    prep = infer_preprocessing(loaded, ev)
    result, status, table, raw = _run_evaluator(
        loaded, model_file, sandbox, timeout,
        ["--scale", prep.scale, "--interpolation", prep.interpolation], holdout, gpus)
    timings = {k: float(status[k]) for k in ("load_seconds", "prepare_seconds", "warmup_seconds", "predict_seconds",
                                             "n", "batch_size", "steady_images_per_second")
               if isinstance(status.get(k), (int, float))}
    base = dict(seconds=result.wall_seconds, timings=timings, model_file=model_file.name,
                loaded=bool(status) and status.get("stage") != "load", model=table, tensorflow_gpus=gpus_seen(status))
    if result.timed_out:
        return Evaluation(metrics=Metrics(claimed_accuracy=claimed),
                          error=f"the evaluation of the model took longer than {timeout:g} s", **base), None
    if not status.get("ok"):
        return Evaluation(metrics=Metrics(claimed_accuracy=claimed, preprocessing=prep.describe()),
                          error=_explain_failure(status, result.output_tail), **base), None
    activation = status.get("output_activation")
    predicted, problem = validate_predictions(raw, len(holdout.ids), len(holdout.classes),
                                              activation if isinstance(activation, str) else None)
    if problem:
        return Evaluation(metrics=Metrics(claimed_accuracy=claimed, preprocessing=prep.describe()),
                          error=f"the model's predictions were unusable: {problem}", **base), raw
    mapping = _class_map(ev, holdout.classes)
    if mapping is not None:
        predicted = np.asarray(mapping)[np.clip(predicted, 0, len(mapping) - 1)]
    metrics = score(predicted, holdout.labels, holdout.ids, holdout.classes, prep.describe(), holdout.private)
    return Evaluation(metrics=metrics.model_copy(update={"claimed_accuracy": claimed}), **base), raw


CUSTOM_CLASS = re.compile(r"(?:Could not locate class|Unknown layer:?|unknown class)\s*'?([A-Za-z_][\w.]*)")


def _explain_failure(status: dict, output: str) -> str:
    message = str(status.get("message") or "").strip()
    stage = status.get("stage")
    if stage == "load" and ("Lambda" in message or CUSTOM_CLASS.search(message)):
        custom = CUSTOM_CLASS.search(message)
        what = (f"the layer class {custom.group(1)!r} is defined in your code" if custom and "Lambda" not in message
                else "it contains a Lambda layer, which is arbitrary Python code")
        if status.get("graph_error"):
            graph = (f" The TensorFlow graph exported from your run could not be used either "
                     f"({str(status['graph_error'])[:300]}).")
        elif status.get("graph"):
            graph = ""
        else:
            graph = " No TensorFlow graph of it could be exported from your run (see the run's output)."
        return (f"the trusted evaluation did not load the model with Keras: {what}, and it is not run outside "
                f"your sandbox.{graph} Use built-in layers (for example Rescaling(1/255) instead of "
                f"Lambda(lambda x: x / 255)), or make every custom layer's call() use TensorFlow operations only "
                f"(no NumPy, no files, no tf.py_function) so that its graph can be exported and scored")
    if stage == "load":
        return (f"the trusted evaluation could not load the saved model ({status.get('error')}: {message[:300]}). "
                f"Custom layers defined in your code cannot be loaded without it: use built-in layers.")
    if stage:
        return f"the trusted evaluation failed while {stage}ing ({status.get('error')}: {message[:300]})"
    tail = output.strip().splitlines()[-1:] or ["no output"]
    return f"the trusted evaluation crashed before reporting ({tail[0][:300]})"
