"""Publishing, pure parts: solution stripping, the starter, the student README, scaffolding, validation verdicts."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from harness import publish
from harness.errors import SpecError, UsageError
from harness.spec import load_assignment

from sample_run import check, make

ROOT = Path(__file__).resolve().parent.parent.parent
REFERENCES = sorted((ROOT / "reference").iterdir())


def distinctive_solution_lines(reference: Path) -> list[str]:
    """Solution lines that appear nowhere outside the regions (so their absence is meaningful)."""
    text = publish.reference_code(reference)
    inside = [line.strip() for line in publish.solution_lines(text)]
    outside, _ = publish.strip_solutions(text)
    kept = {line.strip() for line in outside.splitlines()}
    return [line for line in inside if line and line not in kept and len(line) > 3]


# ---------------------------------------------------------------- strip_solutions


def test_a_region_becomes_a_placeholder_that_runs_and_keeps_the_indentation():
    text = ("x = 1\n"
            "def build():\n"
            "    ### BEGIN SOLUTION: build the model\n"
            "    secret = 42\n"
            "    return secret\n"
            "    ### END SOLUTION\n"
            "y = 2\n")
    stripped, regions = publish.strip_solutions(text)
    assert regions == 1
    assert stripped == ("x = 1\n"
                        "def build():\n"
                        "    # YOUR CODE HERE\n"
                        "    raise NotImplementedError('build the model here')\n"
                        "y = 2\n")
    namespace: dict = {}
    exec(compile(stripped, "starter", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="build the model here"):
        namespace["build"]()


def test_plain_markers_get_a_default_message_and_several_regions_are_counted():
    text = "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n### BEGIN SOLUTION\nc = 3\n### END SOLUTION"
    stripped, regions = publish.strip_solutions(text)
    assert regions == 2
    assert "a = 1" not in stripped and "c = 3" not in stripped and "b = 2" in stripped
    assert stripped.count("raise NotImplementedError('write your code here')") == 2
    assert not stripped.endswith("\n")  # the text's own ending is kept


@pytest.mark.parametrize("text, line, says", [
    ("### BEGIN SOLUTION\na = 1\n", 1, "never closed"),
    ("a = 1\n### END SOLUTION\n", 2, "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", 2, "inside the region opened at line 1"),
])
def test_unpaired_or_nested_markers_are_refused_with_the_line(text, line, says):
    with pytest.raises(SpecError, match=rf"ref\.py, line {line}: .*{says}"):
        publish.strip_solutions(text, "ref.py")


def test_text_without_markers_is_unchanged():
    text = "import os\nprint(os.getcwd())\n"
    assert publish.strip_solutions(text) == (text, 0)


# ---------------------------------------------------------------- starters from the shipped references


@pytest.fixture(scope="module")
def shipped():
    from harness import spec
    return spec.load_all(ROOT / "assignments")


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda p: p.name)
def test_every_reference_is_marked_and_its_starter_holds_no_solution_line(reference, shipped):
    loaded = shipped[reference.stem]
    solution = distinctive_solution_lines(reference)
    assert solution, f"{reference.name} has no marked solution region"
    files = publish.bundle_files(loaded, reference)
    assert set(files) == {f"{loaded.id}{reference.suffix}", "README.md"}
    starter = files[f"{loaded.id}{reference.suffix}"]
    for line in solution:
        assert line not in starter, f"solution line {line!r} leaked into the starter"
        assert line not in files["README.md"]
    assert "### BEGIN SOLUTION" not in starter and "### END SOLUTION" not in starter
    assert "raise NotImplementedError(" in starter
    if reference.suffix == ".ipynb":
        nb = nbformat.reads(starter, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].cell_type == "markdown" and f"`{loaded.id}.ipynb`" in nb.cells[0].source
        assert "reference" not in nb.cells[0].source.lower()
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code)
        for cell in code:
            ast.parse(cell.source)  # every cell is still valid Python
    else:
        tree = ast.parse(starter)
        assert f"`{loaded.id}.py`" in ast.get_docstring(tree)
        assert "reference" not in ast.get_docstring(tree).lower()


def test_the_starter_is_the_same_every_time(shipped):
    reference = ROOT / "reference" / "ox.ipynb"
    assert publish.bundle_files(shipped["ox"], reference) == publish.bundle_files(shipped["ox"], reference)


def test_a_reference_without_regions_is_not_published(shipped, tmp_path):
    reference = tmp_path / "ox.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("model = build()")])
    reference.write_text(nbformat.writes(nb))
    with pytest.raises(SpecError, match="would hand out the solution"):
        publish.bundle_files(shipped["ox"], reference)


def test_publish_refuses_a_folder_that_is_not_empty(shipped, tmp_path):
    (tmp_path / "ox").mkdir()
    (tmp_path / "ox" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        publish.publish(shipped["ox"], ROOT / "reference" / "ox.ipynb", tmp_path)
    assert sorted(p.name for p in (tmp_path / "ox").iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------- the README


PRIVATE = re.compile(r"holdout-labels|images\.npy|manifest\.json|calibration|\bh\d{6}\.|private-\d|review")


@pytest.mark.parametrize("aid", ["ox", "mnist-cnn", "fashion-mnist-cnn", "dogs-vs-cats-small"])
def test_readme_lists_the_expected_model_grading_leaks_data_and_quick_check(aid, shipped):
    loaded = shipped[aid]
    text = publish.readme(loaded)
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(rows) == len(loaded.expected.layers)
    for row, layer in zip(rows, loaded.expected.layers):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == layer.type
        assert cells[2] == "(" + ", ".join("None" if d is None else str(d) for d in layer.output_shape) + ")"
        assert cells[3] == f"{layer.params:,}"
    assert f"Total params: {loaded.expected.total_params:,}" in text
    accuracy = loaded.spec.accuracy
    assert f"at least {accuracy.threshold:g}" in text and f"at or below {accuracy.floor:g}" in text
    for rule in ("augmented-validation", "test-in-training", "test-for-selection", "split-overlap",
                 "test-statistics", "label-mismatch"):
        assert f"| `{rule}` |" in text
    entry = f"{aid}.py" if loaded.spec.reference.endswith(".py") else f"{aid}.ipynb"
    assert f"grade --quick {entry}" in text
    data = loaded.spec.data
    if data.source == "folders":
        assert f"`data/{data.name}/train/`" in text and f"`{data.holdout_split}` split is not served" in text
    else:
        assert f"keras.datasets.{data.name}.load_data()" in text
    assert not PRIVATE.search(text), PRIVATE.search(text)


def test_readme_shows_no_calibration_figure(shipped):
    loaded = shipped["fashion-mnist-cnn"]
    assert loaded.calibration is not None
    text = publish.readme(loaded)
    public = {f"{loaded.spec.accuracy.threshold:g}", f"{loaded.spec.accuracy.floor:g}"}
    for value in (loaded.calibration.mean, loaded.calibration.max, loaded.calibration.review_above,
                  *(run.holdout_accuracy for run in loaded.calibration.runs)):
        if f"{value:g}" not in public:
            assert f"{value:g}" not in text


def test_readme_of_an_uncalibrated_assignment_is_refused(shipped):
    loaded = shipped["ox"].model_copy(update={"expected": None})
    with pytest.raises(SpecError, match="harness calibrate ox"):
        publish.readme(loaded)


# ---------------------------------------------------------------- harness new (scaffold)


def test_scaffold_writes_a_valid_assignment_and_copies_the_reference(tmp_path, shipped):
    source = tmp_path / "elsewhere" / "my_solution.py"
    source.parent.mkdir()
    source.write_text((ROOT / "reference" / "mnist-cnn.py").read_text())
    root = tmp_path / "course" / "assignments"
    loaded = publish.scaffold(root, "digits", source, shipped, title="Digits")
    assert loaded.spec.id == "digits" and loaded.spec.title == "Digits" and loaded.expected is None
    assert loaded.spec.reference == "reference/digits.py"
    assert (tmp_path / "course" / "reference" / "digits.py").read_text() == source.read_text()
    assert loaded.spec.data == shipped["mnist-cnn"].spec.data  # guessed from `datasets.mnist`
    assert loaded.spec.runtime == "auto"  # Keras 3 code: each submission's own code decides
    text = (root / "digits" / "assignment.toml").read_text()
    assert "harness calibrate digits --runs" in text  # the thresholds are placeholders and say so
    assert tomllib.loads(text)["accuracy"] == {"threshold": 0.9, "floor": 0.5}
    assert load_assignment(root / "digits") == loaded


def test_scaffold_guesses_folder_datasets_and_the_legacy_runtime(tmp_path, shipped):
    root = tmp_path / "assignments"
    loaded = publish.scaffold(root, "pets", ROOT / "reference" / "dogs-vs-cats-small.ipynb", shipped)
    assert loaded.spec.data == shipped["dogs-vs-cats-small"].spec.data
    assert loaded.spec.runtime == "legacy"


def test_scaffold_refuses_to_overwrite_and_bad_input(tmp_path, shipped):
    root = tmp_path / "assignments"
    (root / "taken").mkdir(parents=True)
    (root / "taken" / "assignment.toml").write_text("keep me")
    reference = ROOT / "reference" / "ox.ipynb"
    with pytest.raises(UsageError, match="already exists"):
        publish.scaffold(root, "taken", reference, shipped)
    assert (root / "taken" / "assignment.toml").read_text() == "keep me"
    with pytest.raises(UsageError, match="lower-case"):
        publish.scaffold(root, "Bad_Id", reference, shipped)
    with pytest.raises(UsageError, match="no such notebook"):
        publish.scaffold(root, "nothing", tmp_path / "missing.ipynb", shipped)
    with pytest.raises(UsageError, match="--classes"):
        publish.scaffold(root, "flowers", reference, shipped, dataset="flowers")
    unknown = tmp_path / "unknown.py"
    unknown.write_text("print('no data here')\n")
    with pytest.raises(UsageError, match="--dataset"):
        publish.scaffold(root, "unknown", unknown, shipped)
    assert sorted(p.name for p in root.iterdir()) == ["taken"]  # nothing half-written
    assert not (tmp_path / "reference").exists()


def test_scaffold_of_a_new_folder_dataset_takes_classes_and_shape(tmp_path):
    reference = tmp_path / "flowers.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "ds = tf.keras.utils.image_dataset_from_directory('data/flowers/train')")])
    reference.write_text(nbformat.writes(nb))
    loaded = publish.scaffold(tmp_path / "assignments", "flowers", reference, {},
                              classes=["daisy", "rose"], image_shape=[96, 96, 3])
    data = loaded.spec.data
    assert (data.source, data.name, data.classes, data.image_shape) == ("folders", "flowers", ["daisy", "rose"],
                                                                         [96, 96, 3])


# ---------------------------------------------------------------- harness validate (the verdict)


def test_full_marks_without_error_findings_validate():
    from harness.record import Finding
    rec = make("reference", "ox", checks=[check("architecture", "pass", 40, 40, "ok"),
                                          check("holdout-accuracy", "pass", 40, 40, "ok")],
               findings=[Finding(rule="not-converged", severity="info", message="still improving")])
    assert publish.problems(rec) == []


def test_anything_below_full_marks_or_an_error_finding_fails_validation_and_says_what():
    from harness.record import Finding
    rec = make("reference", "ox", checks=[
        check("architecture", "pass", 40, 40, "ok"),
        check("holdout-accuracy", "fail", 12.5, 40, "Accuracy 0.85 (full marks from 0.93)"),
        check("no-leaks", "fail", 0, 10, "a leak")],
        findings=[Finding(rule="augmented-validation", severity="error", message="augmented", where="cell 2, line 1"),
                  Finding(rule="overfitting", severity="warning", message="gap")])
    found = publish.problems(rec)
    assert len(found) == 3
    assert found[0].startswith("check holdout-accuracy (12.5/40): Accuracy 0.85")
    assert found[2] == "finding augmented-validation (error) at cell 2, line 1: augmented"
    assert publish.problems(make("reference", "ox", status="timeout", summary="The run hit the time limit.")) == [
        "status timeout: The run hit the time limit."]


def test_new_validate_publish_are_harness_commands():
    from harness.cli import harness_main
    assert harness_main(["publish", "no-such-assignment", "/tmp/x", "--assignments", str(ROOT / "assignments")]) == 4
    assert harness_main(["new", "x"]) == 4  # --reference is required: a usage error, not argparse's exit 2


def test_starter_cell_json_is_valid_nbformat_4(shipped):
    text = publish.bundle_files(shipped["car-or-truck"], ROOT / "reference" / "car-or-truck.ipynb")["car-or-truck.ipynb"]
    data = json.loads(text)
    assert data["nbformat"] == 4 and [c["id"] for c in data["cells"]][:2] == ["starter-0", "starter-1"]
    placeholders = [c for c in data["cells"] if "raise NotImplementedError" in "".join(c["source"])]
    assert len(placeholders) == 2  # build the model; compile it


def test_scaffold_uses_a_reference_already_in_the_reference_folder_where_it_is(tmp_path, shipped):
    (tmp_path / "reference").mkdir()
    reference = tmp_path / "reference" / "ox-solution.ipynb"
    reference.write_text((ROOT / "reference" / "ox.ipynb").read_text())
    loaded = publish.scaffold(tmp_path / "assignments", "ox-two", reference, shipped)
    assert loaded.spec.reference == "reference/ox-solution.ipynb"
    assert sorted(p.name for p in (tmp_path / "reference").iterdir()) == ["ox-solution.ipynb"]
