"""Leak findings from runtime evidence (probe lineage, signatures, file hashes), backed by a
static reading of the code. Each finding says what happened, why it matters, how to fix it,
and where. The `no-leaks` check turns error-severity leak findings into points.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from harness import fingerprints, static
from harness.checks import Context, Outcome, register
from harness.record import Check, Finding

LEAK_RULES = {"augmented-validation", "test-in-training", "test-for-selection", "split-overlap",
              "test-statistics", "label-mismatch"}
AUGMENTING = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "channel_shift_range",
              "horizontal_flip", "vertical_flip", "brightness_range")
SELECTING = {"EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau"}
LABEL_RANGE = re.compile(r"Received a label value of (\d+) which is outside the valid range of \[0, (\d+)\)")


def augmentations(generator: dict[str, Any] | None) -> list[str]:
    if not isinstance(generator, dict):
        return []
    out = [f"{k}={generator[k]}" for k in AUGMENTING if generator.get(k) not in (None, 0, 0.0, False, [])]
    zoom = generator.get("zoom_range")
    if zoom not in (None, 0, 0.0, [1.0, 1.0], [1, 1]):
        out.append(f"zoom_range={zoom}")
    return out


def _origin_where(ctx: Context, desc: dict, fallback: Any) -> str | None:
    origin = desc.get("origin") if isinstance(desc, dict) else None
    where = origin.get("where") if isinstance(origin, dict) else None
    return ctx.evidence.where(where) or ctx.evidence.where(fallback)


def _load_signatures(ctx: Context, desc: dict | None) -> np.ndarray | None:
    path = ctx.evidence.file(desc.get("signatures")) if isinstance(desc, dict) else None
    if path is None:
        return None
    try:
        sig = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        return None
    return sig if sig.ndim == 2 and sig.shape[1] == 2 + fingerprints.SIGNATURE_BANDS else None


def _load_hashes(ctx: Context, desc: dict | None) -> dict[str, str]:
    path = ctx.evidence.file(desc.get("files")) if isinstance(desc, dict) else None
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def augmented_validation(ctx: Context) -> list[Finding]:
    found = []
    seen = set()
    sources = [(f.start, f.data("validation_data"), "validation data") for f in ctx.evidence.fits]
    sources += [(e, e.get("x"), "test data passed to evaluate") for e in ctx.evidence.events
                if e.get("kind") == "evaluate"]
    for event, desc, role in sources:
        if not isinstance(desc, dict):
            continue
        augs = augmentations(desc.get("generator"))
        origin = desc.get("origin") or {}
        if augs:
            where = _origin_where(ctx, desc, event.get("where"))
            subset = " (the validation_split subset of an augmenting generator is augmented too)" \
                if origin.get("subset") == "validation" else ""
            message = (f"Your {role} comes from an ImageDataGenerator with random augmentation "
                       f"({', '.join(augs)}){subset}. Keras applies those random changes to every image, so the "
                       f"score measures distorted images and changes from run to run. Give the {role} its own "
                       f"generator that only rescales, e.g. ImageDataGenerator(rescale=1./255).")
            if (where, message) not in seen:
                seen.add((where, message))
                found.append(Finding(rule="augmented-validation", severity="error", message=message, where=where))
        for random_map in desc.get("random_maps") or []:
            ops = ", ".join(random_map.get("ops") or [])
            where = ctx.evidence.where(random_map.get("where"))
            message = (f"Your {role} pipeline applies random operations ({ops}) in a Dataset.map. Random "
                       f"augmentation belongs to the training data only; keep the {role} pipeline deterministic "
                       f"(or put augmentation layers inside the model, where Keras turns them off at inference).")
            if (where, message) not in seen:
                seen.add((where, message))
                found.append(Finding(rule="augmented-validation", severity="error", message=message, where=where))
    if not ctx.evidence.fits and not ctx.evidence.training_loops and ctx.entry:  # stopped before training: only the code can tell
        for hit in static.augmented_evaluation_generators(static.units(ctx.entry)):
            found.append(Finding(
                rule="augmented-validation", severity="warning", where=hit.where,
                message=(f"Seen in the code, not observed (the run stopped before its first fit): {hit.detail}. "
                         f"A validation or test generator made from an augmenting ImageDataGenerator applies random "
                         f"changes to every image, so its score measures distorted images. Give it its own "
                         f"generator that only rescales, e.g. ImageDataGenerator(rescale=1./255).")))
    return found


def _holdout_matches(ctx: Context, desc: dict | None) -> tuple[int, int]:
    """(rows of `desc` that are holdout samples, distinct holdout samples among them)."""
    sig = _load_signatures(ctx, desc)
    if sig is None or ctx.holdout_signatures is None:
        return 0, 0
    rows, refs = fingerprints.match(sig, ctx.holdout_signatures)
    return len(np.unique(rows)), len(np.unique(refs))


def test_in_training(ctx: Context) -> list[Finding]:
    found = []
    if ctx.holdout_signatures is None:
        return found
    size = len(ctx.holdout_signatures)
    for fit in ctx.evidence.fits:
        _, distinct = _holdout_matches(ctx, fit.data("x"))
        if distinct >= max(10, int(0.001 * size)):
            found.append(Finding(
                rule="test-in-training", severity="error", where=ctx.evidence.where(fit.start.get("where")),
                message=(f"{distinct:,} of the {size:,} test images are in the data this fit trains on. A model "
                         f"that has seen the test images scores them too well, so its test accuracy means nothing. "
                         f"Train on the training split only.")))
    return found


def test_for_selection(ctx: Context) -> list[Finding]:
    found = []
    if ctx.holdout_signatures is None:
        return found
    for fit in ctx.evidence.fits:
        desc = fit.data("validation_data")
        rows, _ = _holdout_matches(ctx, desc)
        total = (desc or {}).get("shape", [0])[0] if isinstance((desc or {}).get("shape"), list) else 0
        if not total or rows < 0.5 * total:
            continue
        selecting = [c for c in fit.start.get("callbacks") or [] if c.get("class") in SELECTING and (
            c.get("class") != "EarlyStopping" or c.get("restore_best_weights"))
            and (c.get("class") != "ModelCheckpoint" or c.get("save_best_only"))]
        where = ctx.evidence.where(fit.start.get("where"))
        if selecting:
            names = ", ".join(c["class"] for c in selecting)
            found.append(Finding(
                rule="test-for-selection", severity="error", where=where,
                message=(f"The test set is your validation data while {names} choose the model from it: the "
                         f"test score then picks the epoch, the learning rate or the checkpoint, and stops being an "
                         f"honest estimate. Split a validation set off the training data (validation_split=0.1).")))
        else:
            found.append(Finding(
                rule="test-for-selection", severity="info", where=where,
                message=("The test set is used as validation data. Nothing chooses the model from it here, so this "
                         "is only a note; looking at test scores while you tune would make it a leak.")))
    return found


def split_overlap(ctx: Context) -> list[Finding]:
    found = []
    for fit in ctx.evidence.fits:
        x, val = fit.data("x"), fit.data("validation_data")
        where = ctx.evidence.where(fit.start.get("where"))
        count, total = 0, 0
        a, b = _load_signatures(ctx, x), _load_signatures(ctx, val)
        if a is not None and b is not None:
            count, total = len(fingerprints.matched_rows(b, a)), len(b)
        files_a, files_b = _load_hashes(ctx, x), _load_hashes(ctx, val)
        if files_a and files_b:
            shared = set(files_a.values()) & set(files_b.values())
            count = sum(1 for h in files_b.values() if h in shared)
            total = len(files_b)
        if count:
            severity = "error" if count >= max(1, 0.01 * total) else "warning"
            found.append(Finding(
                rule="split-overlap", severity=severity, where=_origin_where(ctx, val or {}, fit.start.get("where")) or where,
                message=(f"{count:,} of the {total:,} validation images also appear in the training data. The "
                         f"validation score then rewards memorising them. Make the splits disjoint (the same seed "
                         f"for both image_dataset_from_directory subsets, or separate folders).")))
    for hit in static.split_overlaps(static.units(ctx.entry)) if ctx.entry else []:
        found.append(Finding(rule="split-overlap", severity="error", where=hit.where,
                             message=(f"The dataset splits overlap: {hit.detail}. Images in both are trained on and "
                                      f"validated on. Use ranges that do not overlap, e.g. train[:80%] and "
                                      f"train[80%:90%].")))
    return found


def test_statistics(ctx: Context) -> list[Finding]:
    found = []
    for event in ctx.evidence.events:
        if event.get("kind") != "statistics_fit":
            continue
        rows, _ = _holdout_matches(ctx, event)
        data = event.get("data") or {}
        total = data.get("shape", [0])[0] if isinstance(data.get("shape"), list) else 0
        if total and rows >= 0.5 * total:
            found.append(Finding(
                rule="test-statistics", severity="error", where=ctx.evidence.where(event.get("where")),
                message=(f"{event.get('what')} computes its normalisation statistics from the test images. The "
                         f"model then depends on the test data before it is tested. Fit the statistics on the "
                         f"training data and apply them to the test data.")))
    if not found and ctx.entry:
        for hit in static.test_statistics(static.units(ctx.entry)):
            found.append(Finding(
                rule="test-statistics", severity="error", where=hit.where,
                message=(f"Normalisation statistics come from test data ({hit.detail}). The model then depends on "
                         f"the test data before it is tested. Compute mean and std on the training data only.")))
    return found


def _loss_before(ctx: Context, seq: int) -> str:
    loss = ""
    for event in ctx.evidence.compiles:
        if isinstance(event.get("seq"), int) and event["seq"] < seq:
            loss = str(event.get("loss") or "")
    return loss.lower().replace("_", "")


def label_mismatch(ctx: Context) -> list[Finding]:
    classes = len(ctx.assignment.spec.data.classes)
    found = []
    for fit in ctx.evidence.fits[-1:]:
        model = fit.start.get("model") or {}
        layers = model.get("layers") or []
        shape = layers[-1].get("output_shape") if layers else None
        units = shape[-1] if isinstance(shape, list) and shape and isinstance(shape[-1], int) else None
        loss = _loss_before(ctx, fit.start.get("seq", 0))
        where = ctx.evidence.where(fit.start.get("where"))
        problem = None
        if units is None:
            continue
        if "categorical" in loss and units != classes:
            problem = f"the last layer has {units} output units and the loss is {loss}, but there are {classes} classes"
        elif "binary" in loss and classes > 2:
            problem = f"binary cross-entropy is for 2 classes, but there are {classes}"
        elif units == 1 and classes > 2:
            problem = f"the last layer has one output unit for {classes} classes"
        if problem:
            found.append(Finding(rule="label-mismatch", severity="error", where=where,
                                 message=(f"The model cannot fit the labels: {problem}. Use Dense({classes}, "
                                          f"activation='softmax') with sparse categorical cross-entropy "
                                          f"(or Dense(1, sigmoid) with binary cross-entropy for 2 classes).")))
    if not found:
        for e in ctx.evidence.exceptions:
            match = LABEL_RANGE.search(str(e.get("message", "")))
            if match:
                label, units = match.groups()
                found.append(Finding(
                    rule="label-mismatch", severity="error", where=ctx.evidence.where(e.get("where")),
                    message=(f"Training crashed because a label ({label}) is outside what the model can output "
                             f"({units} units): the data has {classes} classes. Make the last layer Dense({classes})"
                             f" so every class has an output unit.")))
                break
    return found


def ignored_argument(ctx: Context) -> list[Finding]:
    found = []
    if not ctx.entry:
        return found
    legacy = ctx.ran_under == "legacy"
    rates = [c.get("optimizer", {}).get("config", {}).get("learning_rate") for c in ctx.evidence.compiles
             if isinstance(c.get("optimizer"), dict)]
    actual = next((r for r in reversed(rates) if isinstance(r, (int, float))), None)
    for hit in static.optimizer_lr(static.units(ctx.entry)):
        if legacy:
            now = f" (the run trained at {actual:g})" if actual is not None else ""
            message = (f"{hit.detail}: tf-keras drops `lr=` (it only logs a deprecation warning), so the optimizer "
                       f"trained at its default learning rate{now}, not at the rate written here. `learning_rate=` "
                       f"is the argument's name now: write {hit.detail.replace('(lr=', '(learning_rate=', 1)}.")
        else:
            message = (f"{hit.detail}: Keras 3 does not accept `lr=` (it stops with \"Argument(s) not recognized\"). "
                       f"`learning_rate=` is the argument's name now: write "
                       f"{hit.detail.replace('(lr=', '(learning_rate=', 1)}.")
        found.append(Finding(rule="ignored-argument", severity="warning", where=hit.where, message=message))
    return found


def evidence_missing(ctx: Context) -> list[Finding]:
    ev, result = ctx.evidence, ctx.result
    found = []
    altered = [p for p in ev.problems if not p.startswith("probe problem")]
    if altered:
        found.append(Finding(rule="evidence-missing", severity="error",
                             message=("The grader's record of this run was altered or is incomplete: "
                                      + "; ".join(altered[:3]) + ". The run cannot be certified.")))
    if result.evidence_overflow:
        found.append(Finding(rule="evidence-missing", severity="error",
                             message="The run wrote more data into the grader's evidence folder than allowed and was "
                                     "stopped, so what it did cannot be certified. Do not write files into the "
                                     "grader's folders."))
    ended_normally = result.exit_code in (0, 5) and not result.timed_out and not result.memory_exceeded
    started = any(e.get("kind") == "probe_start" for e in ev.events)
    if ended_normally and not started:
        found.append(Finding(rule="evidence-missing", severity="error",
                             message="The grader's recorder did not run inside this submission (it was removed or "
                                     "disabled), so nothing it did can be certified."))
    elif ended_normally and not ev.fits and not ev.training_loops and not ctx.quick:
        found.append(Finding(rule="evidence-missing", severity="error",
                             message="The run finished but the grader saw no call to fit: either the model was "
                                     "never trained or the training was hidden from the grader."))
    for problem in ev.problems:
        if problem.startswith("probe problem"):
            found.append(Finding(rule="evidence-missing", severity="info",
                                 message=f"The grader's recorder had a problem of its own (not your fault): {problem}"))
    return found


def evidence_mismatch(ctx: Context) -> list[Finding]:
    """The probe's claim about the model against the model file the grader read and scored."""
    from harness.checks.architecture import claim_differences
    verified = ctx.verified_model
    claimed = ctx.evidence.last_model()
    for event in reversed(ctx.evidence.events):  # the claim about the very file that was saved
        if event.get("kind") == "model_saved" and isinstance(event.get("model"), dict):
            claimed = event["model"]
            break
    differences = claim_differences(claimed, verified)
    if not differences:
        return []
    return [Finding(rule="evidence-mismatch", severity="error",
                    message=("What the run reported about its model disagrees with the model file the grader read "
                             "and scored: " + "; ".join(differences) + ". Only the file counts; the run's own "
                             "report was altered or describes another model."))]


DETECTORS = (augmented_validation, test_in_training, test_for_selection, split_overlap, test_statistics,
             label_mismatch, ignored_argument, evidence_missing, evidence_mismatch)


@register("no-leaks")
def no_leaks(ctx: Context) -> Outcome:
    findings: list[Finding] = []
    for detect in DETECTORS:
        findings += detect(ctx)
    max_points = ctx.assignment.spec.points.no_leaks
    blocking = [f for f in findings if f.severity == "error"
                and (f.rule in LEAK_RULES or f.rule in ("evidence-missing", "evidence-mismatch"))]
    if blocking:
        rules = sorted({f.rule for f in blocking})
        return Outcome(Check(id="no-leaks", status="fail", points=0, max_points=max_points,
                             message=f"Leaks or missing evidence found: {', '.join(rules)} (see findings)."), findings)
    if not ctx.evidence.fits and not ctx.evidence.training_loops:
        # no fit (nor custom training step) was reached: nothing was observed, so there is no verdict and no points (the judge counts a
        # skip that keeps its max_points as 0 of them)
        return Outcome(Check(id="no-leaks", status="skip", points=0, max_points=max_points,
                             message="No leak verdict: the run stopped before its first fit, so the grader observed "
                                     "no training data. Make the code reach model.fit to earn these points."),
                       findings)
    return Outcome(Check(id="no-leaks", status="pass", points=max_points, max_points=max_points,
                         message="No data leak was found in what the grader observed."), findings)
