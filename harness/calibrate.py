"""Calibration: derive what a correct submission looks like from the reference solution.

The expected layer table is taken from a quick run of the reference in the sandbox (the probe's
layer table, never `summary()` text) and written to `assignments/<id>/expected-model.json`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness import evidence
from harness.checks.builtin import ending
from harness.checks import Context
from harness.discover import Job
from harness.errors import InfrastructureError, SpecError
from harness.record import write_atomic
from harness.run import RunOptions, prepare, run, sha256
from harness.sandbox import Sandbox
from harness.spec import ExpectedModel, LoadedAssignment

EXPECTED_FILE = "expected-model.json"


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
        table = ev.last_model()
        if table is None or table.get("total_params") is None:
            what, where = ending(Context(assignment=loaded, evidence=ev, result=result, quick=True))
            raise InfrastructureError(
                f"the reference {ref} produced no built model in a quick run"
                f"{': ' + what if what else ''}{' at ' + where if where else ''}. Output:\n{result.output_tail[-1500:]}")
    total, trainable = int(table["total_params"]), int(table["trainable_params"])
    expected = ExpectedModel(
        schema_version=1, assignment=loaded.id, derived_from=str(ref.relative_to(loaded.folder.parent.parent)),
        reference_sha256=sha256(ref), total_params=total, trainable_params=trainable,
        non_trainable_params=total - trainable,
        layers=[{"type": layer["type"], "output_shape": layer.get("output_shape"), "params": layer.get("params"),
                 "config": layer.get("config") or {}} for layer in table["layers"]])
    write_atomic(loaded.folder / EXPECTED_FILE, json.dumps(expected.model_dump(mode="json"), indent=2) + "\n")
    return expected
