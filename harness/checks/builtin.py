"""The built-in checks: completes, architecture (holdout-accuracy and no-leaks build on these)."""

from __future__ import annotations

import re

from harness import runtime
from harness.checks import Context, Outcome, register
from harness.checks import architecture as arch
from harness.record import Check, Finding


def _skip(check_id: str, message: str) -> Outcome:
    return Outcome(Check(id=check_id, status="skip", points=0, max_points=0, message=message))


def ending(ctx: Context) -> tuple[str | None, str | None]:
    """(what stopped the run, where) in plain words, or (None, None) when it ran to the end."""
    result, ev = ctx.result, ctx.evidence
    if result.timed_out:
        return f"it was stopped after the time limit of {result.timeout_seconds:g} s", None
    if result.evidence_overflow:
        return "it wrote more data into the grader's evidence folder than allowed and was stopped", None
    if result.memory_exceeded:
        return "it used more memory than the limit allows", None
    errors = [e for e in ev.exceptions if e.get("during") == "run"] or ev.exceptions
    for d in ev.driver:
        if d.get("kind") == "cell_error":
            where = f"cell {d.get('index', 0) + 1}"
            located = ev.where(errors[-1].get("where")) if errors else None
            text = f"{d.get('ename')}: {d.get('evalue')}"
            return text + hint(ctx, text), located or where
        if d.get("kind") == "kernel_died":
            return f"the Python kernel died in cell {d.get('index', 0) + 1} (often: out of memory)", None
    if errors:
        e = errors[-1]
        text = f"{e.get('type')}: {e.get('message')}"
        return text + hint(ctx, text), ev.where(e.get("where"))
    if result.exit_code not in (0, 5) and not ev.quick_stopped:
        return f"it exited with code {result.exit_code}", None
    return None, None


FOREIGN_PATH = re.compile(r"""['"]?((?:[A-Za-z]:[\\/]|/Users/|/home/|/root/|/content/|/kaggle/|/mnt/|/input/|~/|"""
                          r"""\.{1,2}/input/)[^'"\n]*)""")
ARCHIVE = re.compile(r"\.(zip|tar|tgz|tar\.gz|gz|7z|rar)$", re.IGNORECASE)
MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")


def hint(ctx: Context, message: str) -> str:
    """What to do about an error that comes from the grading environment, not the model."""
    data = ctx.assignment.spec.data
    path = FOREIGN_PATH.search(message)
    if path and ("No such file" in message or "not found" in message.lower() or "NotFound" in message
                 or "does not exist" in message.lower()):
        if data.source == "folders":
            where = ", ".join(f"data/{data.name}/{s}" for s in data.served_splits)
            served = f"the grader serves the data read-only at {where} (also under $HARNESS_DATA)"
            if data.tfds_name:
                served += f", and offline as tfds.load({data.tfds_name!r})"
        else:
            served = f"the grader serves keras.datasets.{data.name}.load_data() offline"
        found = path.group(1).strip().rstrip(".,;:)")
        tail = found.rstrip("/").split("/")
        if data.holdout_split in tail:
            why = (f"it is the {data.holdout_split!r} split, which the grader holds out (it scores your saved model "
                   f"on it itself); ")
        elif ARCHIVE.search(found):
            why = "it is a download to unpack; the images are already unpacked here: "
        else:
            why = "it exists only on your machine: "
        return f" The path {found!r} cannot be served: {why}{served}."
    explained = runtime.explain(message, ctx.ran_under)
    if explained is not None:
        if explained.would_run:
            return (f" The {explained.would_run} runtime would run it: this run used {runtime.NAMES[ctx.ran_under]} "
                    f"(see the runtime-mismatch finding).")
        return " Neither Keras 3 nor tf-keras has it any more (see the removed-api finding)."
    module = MISSING_MODULE.search(message)
    if module:
        name = module.group(1).split(".")[0]
        pip = any(e.get("kind") == "note" and e.get("what") == "pip" and e.get("missing")
                  for e in ctx.evidence.events)
        return (f" The grading runtime has no module {name!r}: it has TensorFlow 2.21 with Keras 3 (or tf-keras), "
                f"tensorflow-datasets, numpy, pandas, matplotlib and Pillow"
                f"{' (`!pip install` does not run in the grader: it is offline)' if pip else ''}. If {name} is your "
                f"own helper file, hand in {name}.py next to the notebook.")
    return ""


@register("completes")
def completes(ctx: Context) -> Outcome:
    """Rests on what the harness saw: the exit code, and (full runs) a model file that loads."""
    max_points = ctx.assignment.spec.points.completes
    what, where = ending(ctx)
    if ctx.quick and ctx.evidence.quick_stopped and what is None:
        return _skip("completes", "quick check: the run stopped at the first fit on purpose")
    if what is not None:
        at = f" at {where}" if where else ""
        return Outcome(Check(id="completes", status="fail", points=0, max_points=max_points,
                             message=f"The submission did not run to the end{at}: {what}"))
    if ctx.quick and not ctx.evidence.fits and not ctx.evidence.training_loops:
        return Outcome(Check(id="completes", status="fail", points=0, max_points=max_points,
                             message="The submission ran to the end without training a model: no fit or training "
                                     "step was reached."))
    if not ctx.quick and not getattr(ctx.evaluation, "loaded", False):
        why = getattr(ctx.evaluation, "error", None) or "no model file was saved"
        return Outcome(Check(id="completes", status="fail", points=0, max_points=max_points,
                             message=f"The submission ran to the end but left no trained model the grader could "
                                     f"load: {why}."))
    return Outcome(Check(id="completes", status="pass", points=max_points, max_points=max_points,
                         message="The submission ran to the end."))


@register("architecture")
def architecture(ctx: Context) -> Outcome:
    """Compares the layer table read from the model file (trusted), never the probe's claim."""
    spec, expected = ctx.assignment.spec, ctx.assignment.expected
    max_points = spec.points.architecture
    model = ctx.verified_model
    if expected is None:
        return Outcome(Check(id="architecture", status="error", points=0, max_points=max_points,
                             message=f"The assignment has no expected model yet: the instructor must run "
                                     f"`harness calibrate {spec.id}`."))
    if model is None or model.get("total_params") is None:
        why = getattr(ctx.evaluation, "model_error", None) or getattr(ctx.evaluation, "error", None)
        claimed = " (the run's own report of a model does not count)" if ctx.evidence.last_model() else ""
        return Outcome(Check(id="architecture", status="fail", points=0, max_points=max_points,
                             message=f"The grader could not read a built model from the model file{claimed}: "
                                     f"{why or 'the run ended before a model was built and saved'}."))
    verdict = arch.compare(expected, model, spec.architecture.check_output_shapes)
    points = arch.points(verdict, max_points, spec.architecture.partial_credit)
    if verdict.exact:
        return Outcome(Check(id="architecture", status="pass", points=points, max_points=max_points,
                             message=f"The model matches the reference: {verdict.expected_layers} layers, "
                                     f"{expected.total_params:,} params."))
    listed = "; ".join(verdict.differences[:8])
    more = f" (and {len(verdict.differences) - 8} more)" if len(verdict.differences) > 8 else ""
    return Outcome(Check(id="architecture", status="fail", points=points, max_points=max_points,
                         message=f"The model differs from the reference: {listed}{more}."))


@register("holdout-accuracy")
def holdout_accuracy(ctx: Context) -> Outcome:
    spec = ctx.assignment.spec
    max_points = spec.points.holdout_accuracy
    if ctx.quick:
        return _skip("holdout-accuracy", "quick check: nothing was trained, so there is no holdout score")
    evaluation = ctx.evaluation
    if evaluation is None or evaluation.error or evaluation.metrics.holdout_accuracy is None:
        why = evaluation.error if evaluation is not None and evaluation.error else "the model was not evaluated"
        return Outcome(Check(id="holdout-accuracy", status="fail", points=0, max_points=max_points,
                             message=f"No holdout score: {why}."))
    metrics = evaluation.metrics
    accuracy, threshold, floor = metrics.holdout_accuracy, spec.accuracy.threshold, spec.accuracy.floor
    if accuracy >= threshold:
        points, status = max_points, "pass"
    elif accuracy <= floor:
        points, status = 0.0, "fail"
    else:
        points, status = round(max_points * (accuracy - floor) / (threshold - floor), 2), "fail"
    message = (f"Accuracy on {metrics.holdout_size:,} held-out images you never saw: {accuracy:.4f} "
               f"(full marks from {threshold:g}, none at or below {floor:g}).")
    if metrics.claimed_accuracy is not None and abs(metrics.claimed_accuracy - accuracy) > 0.02:
        message += (f" Your code reported {metrics.claimed_accuracy:.4f}; only the score measured by the "
                    f"grader counts.")
    findings = []
    calibration = ctx.assignment.calibration
    if calibration is not None and accuracy > calibration.review_above:
        findings.append(Finding(
            rule="accuracy-review", severity="warning",
            message=(f"The held-out accuracy {accuracy:.4f} is far above what the reference solution reaches "
                     f"({calibration.mean:.4f} on average, at most {calibration.max:.4f} over "
                     f"{len(calibration.runs)} runs). An instructor will look at this submission.")))
    return Outcome(Check(id="holdout-accuracy", status=status, points=points, max_points=max_points,
                         message=message), findings)
