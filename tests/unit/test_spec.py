from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.spec import load_all, load_assignment

GOOD = """schema_version = 1
id = "demo"
title = "Demo"
reference = "reference/demo.py"
[data]
source = "keras"
name = "mnist"
classes = ["0", "1"]
image_shape = [28, 28]
[accuracy]
threshold = 0.9
floor = 0.8
"""


def write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "assignment.toml").write_text(text)
    return folder


def test_valid_assignment_loads_with_defaults(tmp_path):
    loaded = load_assignment(write(tmp_path, GOOD))
    assert loaded.spec.id == "demo"
    assert loaded.spec.runtime == "auto"  # no pin: chosen per submission from its code (harness.runtime)
    assert loaded.spec.entry_names()[:2] == ["demo.ipynb", "demo.py"]
    assert loaded.expected is None


def test_misspelt_field_names_file_and_field(tmp_path):
    folder = write(tmp_path, GOOD.replace("title =", "titel ="))
    with pytest.raises(SpecError) as err:
        load_assignment(folder)
    text = str(err.value)
    assert str(folder / "assignment.toml") in text
    assert "titel" in text and "title" in text


def test_wrong_type_names_the_field(tmp_path):
    folder = write(tmp_path, GOOD.replace("threshold = 0.9", 'threshold = "high"'))
    with pytest.raises(SpecError, match=r"accuracy\.threshold"):
        load_assignment(folder)


def test_floor_above_threshold_is_rejected(tmp_path):
    with pytest.raises(SpecError, match="floor"):
        load_assignment(write(tmp_path, GOOD.replace("floor = 0.8", "floor = 0.95")))


def test_bad_toml_syntax(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        load_assignment(write(tmp_path, GOOD + "\n[[["))


def test_id_must_match_folder(tmp_path):
    with pytest.raises(SpecError, match="folder"):
        load_assignment(write(tmp_path, GOOD, name="other"))


def test_spec_is_frozen(tmp_path):
    loaded = load_assignment(write(tmp_path, GOOD))
    with pytest.raises(Exception):
        loaded.spec.title = "changed"


def test_shipped_assignments_load_and_are_calibrated(root):
    loaded = load_all(root / "assignments")
    assert {"mnist-cnn", "fashion-mnist-cnn", "cats-vs-dogs", "dogs-vs-cats-small", "car-or-truck", "ox"} <= set(loaded)
    for assignment in loaded.values():
        assert assignment.expected is not None, f"{assignment.id} has no expected-model.json"
        assert (root / assignment.spec.reference).is_file()


@pytest.mark.parametrize("aid,total", [
    ("mnist-cnn", 3_156_098), ("fashion-mnist-cnn", 3_156_098), ("cats-vs-dogs", 13_132_322),
    ("dogs-vs-cats-small", 3_453_121), ("car-or-truck", 291_405), ("ox", 3_464_257)])
def test_derived_totals_are_pinned(assignments, aid, total):
    expected = assignments[aid].expected
    assert expected.total_params == total
    assert sum(layer.params for layer in expected.layers) == total


def test_expected_models_are_derived_from_the_current_references(root, assignments):
    from harness.run import sha256
    for assignment in assignments.values():
        assert assignment.expected.reference_sha256 == sha256(root / assignment.spec.reference), (
            f"{assignment.id}: the reference changed since calibration; run `harness calibrate {assignment.id}`")


def test_an_assignments_folder_handed_in_with_a_submission_is_not_the_grading_spec(tmp_path, monkeypatch):
    """`grade .` inside a student's folder is documented: an `assignments/` folder the student handed in there
    (points, thresholds, expected model of their own) must not be what grades them."""
    from harness.spec import PROJECT_ROOT, default_assignments
    course = tmp_path / "course"
    alice = course / "submissions" / "alice"
    (alice / "assignments" / "fashion-mnist-cnn").mkdir(parents=True)
    (course / "assignments").mkdir()
    monkeypatch.chdir(alice)
    assert default_assignments([Path(".")]) == PROJECT_ROOT / "assignments"
    assert default_assignments([alice / "fashion-mnist-cnn.py"]) == PROJECT_ROOT / "assignments"
    monkeypatch.chdir(course)  # the instructor's own course folder: its assignments are used
    assert default_assignments([Path("submissions")]) == course / "assignments"
