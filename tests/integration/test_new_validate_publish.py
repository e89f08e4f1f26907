"""`harness new | validate | publish` end to end: real references, real bubblewrap, real TensorFlow."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_grade
from harness import publish
from harness.cli import harness_main

pytestmark = pytest.mark.integration


def harness(*args: str) -> int:
    return harness_main([*args])


def bundle_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("aid, where", [("ox", "cell 3, line 2"), ("mnist-cnn", "mnist-cnn.py:16")])
def test_published_bundle_has_no_solution_no_holdout_and_its_starter_says_the_model_is_not_built(
        aid, where, tmp_path, data_root, assignments):
    code = harness("publish", aid, str(tmp_path / "bundle"), "--assignments", str(ROOT / "assignments"))
    assert code == 0
    folder = tmp_path / "bundle" / aid
    entry = f"{aid}{Path(assignments[aid].spec.reference).suffix}"
    assert sorted(p.name for p in folder.rglob("*")) == sorted([entry, "README.md"])
    text = bundle_text(folder)

    reference = ROOT / assignments[aid].spec.reference
    inside = [line.strip() for line in publish.solution_lines(publish.reference_code(reference))]
    for line in inside:
        if line and len(line) > 3 and line not in {"])", "model.summary()"}:  # also outside the regions
            assert line not in text, f"solution line {line!r} is in the bundle"
    assert "BEGIN SOLUTION" not in text
    for secret in ("holdout-labels.json", "holdout-labels", "images.npy", "manifest.json", "holdout/",
                   str(data_root)):
        assert secret not in text, secret
    labels_file = data_root / assignments[aid].spec.data.name / "holdout-labels.json"
    if labels_file.exists():  # the prepared holdout of this data root: none of its ids or its label list
        labels = json.loads(labels_file.read_text())
        assert not any(ident in text for ident in labels["ids"])
        assert json.dumps(labels["labels"]) not in text
    assert not re.search(r"\bh\d{6}\.(png|jpg)", text)

    # the starter as handed out, checked the way a student does: a clear "not built yet", no crash
    started = time.monotonic()
    code, records = run_grade(["--quick", str(folder / entry)], tmp_path / "reports")
    rec = records[(aid, aid)]
    assert code == 1, "below full marks; not an infrastructure error"
    assert rec["status"] == "no-model"
    assert rec["summary"].startswith(f"The model is not built yet: the run stopped at {where} on a placeholder"), rec["summary"]
    assert "build and compile the model here" in rec["summary"]
    checks = {c["id"]: c for c in rec["checks"]}
    assert checks["architecture"]["status"] == "fail" and checks["architecture"]["points"] == 0
    assert not any(c["status"] == "error" for c in rec["checks"]), "no check may crash on a starter"
    assert time.monotonic() - started < 120


def test_publish_refuses_unknown_assignments_and_non_empty_folders(tmp_path, capsys):
    assignments = str(ROOT / "assignments")
    assert harness("publish", "no-such", str(tmp_path), "--assignments", assignments) == 4
    (tmp_path / "ox").mkdir()
    (tmp_path / "ox" / "mine.txt").write_text("x")
    assert harness("publish", "ox", str(tmp_path), "--assignments", assignments) == 4
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "ox").iterdir()) == ["mine.txt"]


def test_new_scaffolds_calibrates_and_never_overwrites(tmp_path, capsys):
    course = tmp_path / "course"
    (course / "assignments").mkdir(parents=True)
    shutil.copytree(ROOT / "assignments" / "mnist-cnn", course / "assignments" / "mnist-cnn")
    (course / "reference").mkdir()
    shutil.copyfile(ROOT / "reference" / "mnist-cnn.py", course / "reference" / "mnist-cnn.py")
    source = tmp_path / "solution.py"
    shutil.copyfile(ROOT / "reference" / "mnist-cnn.py", source)
    root = str(course / "assignments")

    assert harness("new", "digits", "--reference", str(source), "--title", "Digits", "--assignments", root) == 0
    from harness.spec import load_assignment
    loaded = load_assignment(course / "assignments" / "digits")
    assert loaded.spec.reference == "reference/digits.py" and loaded.spec.data.name == "mnist"
    assert loaded.expected is not None and loaded.expected.total_params == 3_156_098
    shipped = json.loads((ROOT / "assignments" / "mnist-cnn" / "expected-model.json").read_text())
    assert loaded.expected.model_dump(mode="json")["layers"] == shipped["layers"]
    assert "harness validate digits" in capsys.readouterr().out

    before = (course / "assignments" / "digits" / "assignment.toml").read_text()
    assert harness("new", "digits", "--reference", str(source), "--assignments", root) == 4
    assert "already exists" in capsys.readouterr().err
    assert (course / "assignments" / "digits" / "assignment.toml").read_text() == before
    assert harness("new", "flowers", "--reference", str(source), "--dataset", "flowers", "--assignments", root) == 4
    assert not (course / "assignments" / "flowers").exists()

    # the new assignment publishes: its reference carries the solution markers
    assert harness("publish", "digits", str(tmp_path / "bundle"), "--assignments", root) == 0
    assert sorted(p.name for p in (tmp_path / "bundle" / "digits").iterdir()) == ["README.md", "digits.py"]


def test_validate_refuses_unknown_assignments_and_unprepared_data(tmp_path, capsys):
    assignments = str(ROOT / "assignments")
    assert harness("validate", "no-such", "--assignments", assignments) == 4
    empty = tmp_path / "data"
    empty.mkdir()
    assert harness("validate", "ox", "--assignments", assignments, "--data-root", str(empty)) == 3
    assert "harness data prepare ox" in capsys.readouterr().err


def _course_with(tmp_path: Path, aid: str, threshold: float, floor: float) -> Path:
    course = tmp_path / "course"
    (course / "assignments").mkdir(parents=True)
    shutil.copytree(ROOT / "assignments" / aid, course / "assignments" / aid)
    shutil.copytree(ROOT / "reference", course / "reference")
    toml = course / "assignments" / aid / "assignment.toml"
    text = re.sub(r"(?m)^threshold = .*$", f"threshold = {threshold}", toml.read_text())
    toml.write_text(re.sub(r"(?m)^floor = .*$", f"floor = {floor}", text))
    return course / "assignments"


@pytest.mark.slow
def test_validate_trains_the_ox_reference_in_full_and_passes_only_with_full_marks(tmp_path, data_root, capsys):
    # the test data root's ox images are noise: any accuracy must pass, so the threshold is 0 here
    root = _course_with(tmp_path, "ox", 0.0, 0.0)
    out = tmp_path / "validate"
    code = harness("validate", "ox", "--assignments", str(root), "--data-root", str(data_root), "--out", str(out))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "ox: the reference validates" in captured.out and "no error finding" in captured.out
    rec = json.loads((out / "reference" / "ox.json").read_text())
    assert rec["run"]["mode"] == "full" and rec["status"] == "graded"
    assert rec["score"] == rec["max_score"] > 0
    assert rec["metrics"]["holdout_accuracy"] is not None
    assert not [f for f in rec["findings"] if f["severity"] == "error"]
    assert "warning" not in captured.err  # its expected model is current and its solution is marked


def test_new_with_a_reference_that_builds_no_model_keeps_the_files_and_says_to_calibrate(tmp_path, capsys):
    source = tmp_path / "unfinished.py"
    source.write_text("from tensorflow.keras import datasets\n(x, y), _ = datasets.mnist.load_data()\n"
                      "raise NotImplementedError('not written yet')\n")
    root = tmp_path / "course" / "assignments"
    assert harness("new", "unfinished", "--reference", str(source), "--assignments", str(root)) == 3
    err = capsys.readouterr().err
    assert "not calibrated" in err and "harness calibrate unfinished" in err
    assert "produced no built model" in err
    assert (root / "unfinished" / "assignment.toml").is_file()
    assert not (root / "unfinished" / "expected-model.json").exists()
