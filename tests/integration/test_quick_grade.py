"""`grade --quick` end to end: real notebooks and modules, real bubblewrap, real TensorFlow."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.integration

PINNED = {"mnist-cnn": 3_156_098, "fashion-mnist-cnn": 3_156_098, "cats-vs-dogs": 13_132_322,
          "dogs-vs-cats-small": 3_453_121, "car-or-truck": 291_405, "ox": 3_464_257}


def test_references_get_full_architecture_marks_with_the_pinned_totals(root, tmp_path, grade):
    folder = tmp_path / "references"
    shutil.copytree(root / "reference", folder)
    code, records = grade("--quick", str(folder))
    assert {a for (_, a) in records} == set(PINNED)
    for (_, aid), rec in records.items():
        arch = next(c for c in rec["checks"] if c["id"] == "architecture")
        assert arch["status"] == "pass" and arch["points"] == arch["max_points"] > 0, (aid, arch)
        assert rec["model"]["total_params"] == PINNED[aid], aid
        assert rec["status"] == "graded" and rec["run"]["sandbox"] == "bwrap"
        assert rec["score"] == rec["max_score"]
    assert code == 0
    legacy = records[("references", "dogs-vs-cats-small")]
    assert legacy["run"]["runtime"] == "legacy"


def test_dense_256_fails_and_names_both_numbers(root, tmp_path, grade, student):
    notebook = json.loads((root / "reference" / "cats-vs-dogs.ipynb").read_text())
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = source.replace("layers.Dense(512, activation='relu')", "layers.Dense(256, activation='relu')")
    folder = student("bob", {"cats-vs-dogs.ipynb": json.dumps(notebook)})
    code, records = grade("--quick", str(folder))
    rec = records[("bob", "cats-vs-dogs")]
    arch = next(c for c in rec["checks"] if c["id"] == "architecture")
    assert arch["status"] == "fail" and 0 < arch["points"] < arch["max_points"]
    assert "6,553,856 params where 13,107,712 were expected" in arch["message"]
    assert "units 256 vs 512" in arch["message"]
    assert code == 1
    markdown = (tmp_path / "reports" / "bob" / "cats-vs-dogs.md").read_text()
    assert "13,107,712" in markdown and "FAILED" in markdown


def test_crash_in_the_middle_names_cell_and_line(root, grade):
    code, records = grade("--quick", str(root / "submissions" / "carol"))
    rec = records[("carol", "fashion-mnist-cnn")]
    assert rec["status"] == "error"
    assert "cell 5, line 2" in rec["summary"] and "NameError" in rec["summary"]
    arch = next(c for c in rec["checks"] if c["id"] == "architecture")
    assert arch["status"] == "pass", "the model was compiled before the crash"


def test_missing_helper_module_is_named(root, grade):
    code, records = grade("--quick", str(root / "submissions" / "erin"))
    rec = records[("erin", "mnist-cnn")]
    assert rec["status"] == "error" and "No module named 'helpers'" in rec["summary"]
    assert "mnist-cnn.py:4" in rec["summary"]


def test_broken_notebook_is_invalid_and_says_what_to_do(grade, student):
    folder = student("zoe", {"ox.ipynb": '{"cells": [ this is not json'})
    code, records = grade("--quick", str(folder))
    rec = records[("zoe", "ox")]
    assert rec["status"] == "invalid-submission"
    assert "ox.ipynb" in rec["summary"] and "Save it again" in rec["summary"]
    assert code == 1


def test_a_notebook_nbformat_refuses_is_invalid_though_its_check_overlaps_the_run(grade, student, tmp_path):
    """Quick mode validates a notebook while its sandbox starts (`_LaterCheck`): JSON that is not a valid
    notebook (a code cell without outputs) still gets the invalid-submission record, and no stored run."""
    cell = {"cell_type": "code", "source": "print('ran anyway')", "metadata": {}}
    folder = student("yan", {"ox.ipynb": json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                                                     "cells": [cell]})})
    code, records = grade("--quick", str(folder))
    rec = records[("yan", "ox")]
    assert rec["status"] == "invalid-submission" and "Save it again" in rec["summary"]
    assert code == 1
    assert (tmp_path / "reports" / "yan" / "ox.json").is_file()
    assert not (tmp_path / "reports" / "yan" / "ox.evidence").exists(), "the thrown-away run left its evidence"


def test_process_sandbox_only_on_request_and_warns(root, grade, capfd):
    code, records = grade("--quick", "--sandbox", "process", str(root / "submissions" / "erin"))
    assert records[("erin", "mnist-cnn")]["run"]["sandbox"] == "process"
    assert "isolates nothing" in capfd.readouterr().err


def test_unchanged_submissions_are_not_run_twice(root, grade, student):
    folder = student("repeat", {"mnist-cnn.py": root / "reference" / "mnist-cnn.py"})
    _, first = grade("--quick", str(folder))
    _, second = grade("--quick", str(folder))
    assert second[("repeat", "mnist-cnn")]["created_at"] == first[("repeat", "mnist-cnn")]["created_at"]
    assert second[("repeat", "mnist-cnn")]["run"] == first[("repeat", "mnist-cnn")]["run"]
    (folder / "mnist-cnn.py").write_text((folder / "mnist-cnn.py").read_text() + "\n# changed\n")
    _, third = grade("--quick", str(folder))
    assert third[("repeat", "mnist-cnn")]["submission"]["files"] != first[("repeat", "mnist-cnn")]["submission"]["files"]
    _, forced = grade("--quick", "--force", str(folder))
    assert forced[("repeat", "mnist-cnn")]["run"] != third[("repeat", "mnist-cnn")]["run"]


def test_grade_writes_the_html_reports_at_its_end(root, grade, tmp_path):
    code, records = grade("--quick", "--html", str(root / "submissions" / "bob"))
    html = tmp_path / "reports" / "html"
    index = (html / "index.html").read_text()
    assert "bob" in index and "cats-vs-dogs" in index and "mnist-cnn" in index
    page = (html / "student" / "bob" / "cats-vs-dogs.html").read_text()
    assert "13,107,712" in page and "Content-Security-Policy" in page


def test_json_that_is_no_notebook_is_invalid_in_quick_mode_though_it_is_read_before_its_check(grade, student, tmp_path):
    """Quick mode checks a notebook while its sandbox runs (`_LaterCheck`), but the runtime's detection reads
    the notebook's code before the run: a JSON list, or cells that are no list, once raised there and gave an
    internal error. The submission is invalid, as before any run."""
    for name, text in (("una", "[]"), ("vic", '{"nbformat": 4, "cells": 5}')):
        folder = student(name, {"ox.ipynb": text})
        code, records = grade("--quick", str(folder))
        rec = records[(name, "ox")]
        assert rec["status"] == "invalid-submission" and "Save it again" in rec["summary"], rec["summary"]
        assert code == 1
