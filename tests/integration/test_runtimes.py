"""Runtimes chosen from the code, end to end in the real sandbox: a Chollet-style Keras 2 notebook handed in
for an `auto` (Keras 3) assignment is detected as legacy, runs and is graded, with the dropped `lr=` reported
and the reason in the record; forced onto the wrong runtime, a run that stops on an API that runtime lacks
says which runtime would run it. Also: the table of APIs in harness.runtime against the installed packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import FIXTURES, as_notebook, docker_missing

pytestmark = pytest.mark.integration
RUNTIMES = FIXTURES / "runtimes"


def _notebook(student, fixture: str, name: str = "ox"):
    notebook, _ = as_notebook((RUNTIMES / fixture).read_text())
    return student(Path(fixture).stem, {f"{name}.ipynb": notebook}), nbformat.reads(notebook, as_version=4)


def _where(nb, needle: str) -> str:
    """'cell N, line M' of the first line holding `needle` outside a comment."""
    for index, cell in enumerate(nb.cells):
        for number, line in enumerate(cell.source.splitlines(), 1):
            if needle in line.split("#")[0]:
                return f"cell {index + 1}, line {number}"
    raise AssertionError(needle)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_chollet_notebook_for_a_keras3_assignment_runs_under_legacy(student, grade, assignments, backend):
    if backend == "docker" and docker_missing():
        pytest.skip(f"no Docker Engine can run here: {docker_missing()}")
    assert assignments["ox"].spec.runtime == "auto"
    folder, nb = _notebook(student, "chollet_keras2_for_ox.py")
    code, records = grade("--quick", "--sandbox", backend, str(folder))
    rec = records[(folder.name, "ox")]
    assert rec["run"]["sandbox"] == backend
    assert rec["status"] == "graded" and rec["run"]["exit_code"] == 5, rec["summary"]  # reached fit_generator
    assert rec["run"]["runtime"] == "legacy"
    reason = rec["run"]["runtime_reason"]
    assert f"fit_generator at ox.ipynb {_where(nb, 'fit_generator(')}" in reason, reason
    assert f"RMSprop(lr=...) at ox.ipynb {_where(nb, 'lr=')}" in reason, reason
    architecture = next(c for c in rec["checks"] if c["id"] == "architecture")
    assert architecture["status"] == "pass", architecture  # the model file tf-keras saved, read under tf-keras
    (dropped,) = [f for f in rec["findings"] if f["rule"] == "ignored-argument"]
    assert dropped["where"] == _where(nb, "lr=") and dropped["severity"] == "warning"
    assert "tf-keras drops `lr=`" in dropped["message"] and "RMSprop(learning_rate=0.0001)" in dropped["message"]
    assert "the run trained at 0.001" in dropped["message"]  # the default, not the 1e-4 written
    assert not [f for f in rec["findings"] if f["rule"] in ("runtime-mismatch", "removed-api")]
    markdown = (folder.parent.parent / "reports" / folder.name / "ox.md").read_text()
    assert "Runtime `legacy`: detected from the code" in markdown


def test_forced_keras3_stops_and_says_legacy_would_run_it(student, grade):
    folder, nb = _notebook(student, "chollet_keras2_for_ox.py")
    code, records = grade("--quick", "--runtime", "keras3", str(folder))
    rec = records[(folder.name, "ox")]
    assert rec["status"] == "error" and rec["run"]["runtime"] == "keras3"
    assert rec["run"]["runtime_reason"] == "chosen on the command line (--runtime keras3)"
    (mismatch,) = [f for f in rec["findings"] if f["rule"] == "runtime-mismatch"]
    assert mismatch["where"] == _where(nb, "import ImageDataGenerator")
    assert "keras.preprocessing.image.ImageDataGenerator" in mismatch["message"]
    assert "the legacy runtime would run this code" in mismatch["message"]
    assert "`grade --runtime legacy`" in mismatch["message"]
    assert "The legacy runtime would run it: this run used Keras 3" in rec["summary"]


def test_forced_legacy_stops_on_a_keras3_layer_and_says_keras3_would_run_it(student, grade):
    folder, nb = _notebook(student, "keras3_only_for_ox.py")
    code, records = grade("--quick", "--runtime", "legacy", str(folder))
    rec = records[(folder.name, "ox")]
    assert rec["status"] == "error" and rec["run"]["runtime"] == "legacy", rec["summary"]
    (mismatch,) = [f for f in rec["findings"] if f["rule"] == "runtime-mismatch"]
    assert mismatch["where"] == _where(nb, "RandAugment(")
    assert "layers.RandAugment" in mismatch["message"] and "the keras3 runtime would run this code" in mismatch["message"]
    assert "The keras3 runtime would run it" in rec["summary"]


PROBE = r"""
import importlib, json, os, sys
if sys.argv[1] == "legacy":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras
else:
    import keras


def has(path):
    obj = keras
    for part in path.split("."):
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(obj.__name__ + "." + part)
                continue
            except Exception:
                return False
        obj = getattr(obj, part)
    return True


out = {p: has(p) for p in json.loads(sys.argv[2])}
try:  # accepted (tf-keras drops it: the optimizer keeps its default rate) or refused (Keras 3)
    out["lr"], out["lr rate"] = True, float(keras.optimizers.RMSprop(lr=1e-4).learning_rate.numpy())
except Exception:
    out["lr"] = False
try:
    i = keras.Input((4,))
    keras.Model(input=i, output=keras.layers.Dense(1)(i))
    out["Model(input=, output=)"] = True
except Exception:
    out["Model(input=, output=)"] = False
print(json.dumps(out))
"""
# where each key of harness.runtime.API lives in the packages (lr= and Model(input=) are tried for real)
PATHS = {"fit_generator": "Model.fit_generator", "evaluate_generator": "Model.evaluate_generator",
         "predict_generator": "Model.predict_generator", "predict_classes": "Model.predict_classes",
         "predict_proba": "Model.predict_proba", "ImageDataGenerator": "preprocessing.image.ImageDataGenerator",
         "experimental": "layers.experimental.preprocessing", "np_utils": "utils.np_utils", "ops": "ops",
         "random": "random", "config": "config", "PyDataset": "utils.PyDataset"}
TRIED = ("lr", "Model(input=, output=)")


@pytest.mark.parametrize("name", ["keras3", "legacy"])
def test_the_api_table_matches_the_installed_runtime(name, tmp_path):
    from harness import runtime
    paths = {key: PATHS.get(key, f"layers.{key}") for key in runtime.API if key not in TRIED}
    modules = [f"layers.{m}" for m in runtime.KERAS2_MODULES]
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", PROBE, name, json.dumps([*paths.values(), *modules])],
                         capture_output=True, text=True, env=env, check=True)
    seen = json.loads(run.stdout.splitlines()[-1])
    for key, api in runtime.API.items():
        present = seen[key] if key in TRIED else seen[paths[key]]
        assert present == (name in api.runtimes), (name, key, api.runtimes)
    assert not any(seen[m] for m in modules)  # keras.layers.core and friends: in neither runtime
    if name == "legacy":
        assert seen["lr rate"] == pytest.approx(0.001)  # lr=1e-4 dropped: RMSprop's default rate (ignored-argument)
