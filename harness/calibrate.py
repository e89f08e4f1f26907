"""Calibration: derive what a correct submission looks like from the reference solution.

The expected layer table is taken from a quick run of the reference in the sandbox (the model file
it saves, read by the same trusted code that reads submissions; never `summary()` text) and written to `assignments/<id>/expected-model.json`.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from harness import evidence
from harness.checks.builtin import ending
from harness.checks import Context
from harness.discover import Job
from harness.errors import InfrastructureError, SpecError
from harness.evaluate import describe
from harness.record import write_atomic
from harness.run import RunOptions, prepare, run, sha256
from harness.sandbox import Sandbox
from harness.spec import Calibration, CalibrationRun, ExpectedModel, LoadedAssignment

EXPECTED_FILE = "expected-model.json"
CALIBRATION_FILE = "calibration.json"


def reference_path(loaded: LoadedAssignment) -> Path:
    path = (loaded.folder.parent.parent / loaded.spec.reference).resolve()
    if not path.is_file():
        raise SpecError(f"{loaded.folder / 'assignment.toml'}: field reference: {path} does not exist")
    return path


def derive_expected(loaded: LoadedAssignment, sandbox: Sandbox, cache: Path, timeout: float | None) -> ExpectedModel:
    ref = reference_path(loaded)
    job = Job(student="reference", assignment=loaded.id, folder=ref.parent, entry=ref)
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp:
        prepared = prepare(job, Path(tmp))
        result = run(job, loaded, sandbox, prepared, RunOptions(quick=True, timeout=timeout, cache=cache))
        ev = evidence.read(prepared.job_dir / "evidence")
        saved = prepared.job_dir / "evidence" / "model.keras"
        # the expected table is read from the saved file by the same trusted code that reads submissions
        read = describe(loaded, saved if saved.is_file() else None, sandbox)
        table = read.model
        if table is None or table.get("total_params") is None:
            what, where = ending(Context(assignment=loaded, evidence=ev, result=result, quick=True))
            raise InfrastructureError(
                f"the reference {ref} produced no built model in a quick run"
                f"{': ' + what if what else ''}{' at ' + where if where else ''}"
                f"{' (' + read.error + ')' if read.error else ''}. Output:\n{result.output_tail[-1500:]}")
    total, trainable = int(table["total_params"]), int(table["trainable_params"])
    expected = ExpectedModel(
        schema_version=1, assignment=loaded.id, derived_from=str(ref.relative_to(loaded.folder.parent.parent)),
        reference_sha256=sha256(ref), total_params=total, trainable_params=trainable,
        non_trainable_params=total - trainable,
        layers=[{"type": layer["type"], "output_shape": layer.get("output_shape"), "params": layer.get("params"),
                 "config": layer.get("config") or {}} for layer in table["layers"]])
    write_atomic(loaded.folder / EXPECTED_FILE, json.dumps(expected.model_dump(mode="json"), indent=2) + "\n")
    return expected


def propose(accuracies: list[float], holdout_size: int) -> dict[str, float]:
    """Threshold and floor that allow for run-to-run variance and the binomial error of the holdout.

    sigma = sqrt(std^2 + p(1-p)/n); threshold = mean - 2 sigma; floor = threshold - max(0.05, 4 sigma);
    anything above max + 3 sigma is far outside what the reference reaches and is flagged for review.
    """
    values = np.asarray(accuracies, dtype=float)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    sigma = math.sqrt(std ** 2 + mean * (1 - mean) / max(holdout_size, 1))
    threshold = math.floor((mean - 2 * sigma) * 1000) / 1000
    floor = math.floor(max(0.0, threshold - max(0.05, 4 * sigma)) * 1000) / 1000
    review = math.ceil(min(1.0, float(values.max()) + 3 * sigma) * 1000) / 1000
    return {"mean": round(mean, 4), "std": round(std, 4), "min": round(float(values.min()), 4),
            "max": round(float(values.max()), 4), "proposed_threshold": threshold, "proposed_floor": floor,
            "review_above": review}


def calibrate_runs(loaded: LoadedAssignment, sandbox: Sandbox, cache: Path, data_root: Path | None,
                   runs: int, timeout: float | None, first_seed: int = 1000) -> Calibration:
    """Train and evaluate the reference `runs` times with logged seeds; write calibration.json."""
    from harness.grade import GradeOptions, grade_job

    ref = reference_path(loaded)
    job = Job(student="reference", assignment=loaded.id, folder=ref.parent, entry=ref)
    results: list[CalibrationRun] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-runs-") as out:
        for i in range(runs):
            seed = first_seed + i
            options = GradeOptions(quick=False, out=Path(out), cache=cache, timeout=timeout,
                                   data_root=data_root, seed=seed)
            rec = grade_job(job, {loaded.id: loaded}, sandbox, options)
            accuracy = rec.metrics.holdout_accuracy
            if accuracy is None:
                raise InfrastructureError(f"calibration run {i + 1} (seed {seed}) of the reference {ref} gave no "
                                          f"holdout score: {rec.summary}")
            size = rec.metrics.holdout_size or size
            results.append(CalibrationRun(seed=seed, holdout_accuracy=accuracy, wall_seconds=rec.run.wall_seconds))
            print(f"  run {i + 1}/{runs} seed {seed}: holdout accuracy {accuracy:.4f} ({rec.run.wall_seconds:.0f} s)")
    stats = propose([r.holdout_accuracy for r in results], size)
    calibration = Calibration(schema_version=1, assignment=loaded.id, holdout_size=size, runs=results, **stats)
    write_atomic(loaded.folder / CALIBRATION_FILE, json.dumps(calibration.model_dump(mode="json"), indent=2) + "\n")
    return calibration
