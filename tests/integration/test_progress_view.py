"""`grade --progress plain` on a real small class: one start and one end line per job, the epochs of a
job that trains in full, and no control character from a hostile folder name."""

from __future__ import annotations

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.integration


def test_plain_progress_prints_one_start_and_one_end_line_per_job_and_the_epochs(student, grade, tmp_path,
                                                                                 data_root, capfd):
    student("ann", {"fashion-mnist-cnn.py": FIXTURES / "evaluation" / "trains_briefly.py"})
    student("bob", {"fashion-mnist-cnn.py": "import tensorflow as tf\nmodel = (\n"})
    student("eve\x1b[2J\x1b[31m", {"fashion-mnist-cnn.py": "def broken(:\n"})
    code, records = grade("--progress", "plain", "--jobs", "2", "--data-root", str(data_root),
                          str(tmp_path / "submissions"))
    assert records[("ann", "fashion-mnist-cnn")]["status"] == "graded"
    assert records[("bob", "fashion-mnist-cnn")]["status"] == "invalid-submission"
    out = capfd.readouterr().out
    lines = [line for line in out.splitlines() if line.split(" ", 1)[0] in ("start", "end", "epoch")]
    names = ["ann/fashion-mnist-cnn", "bob/fashion-mnist-cnn", "eve\\x1b[2J\\x1b[31m/fashion-mnist-cnn"]
    for name in names:
        assert [line for line in lines if line == f"start {name}"] == [f"start {name}"], out
        ends = [line for line in lines if line.startswith(f"end   {name}: ")]
        assert len(ends) == 1, out
    assert "end   ann/fashion-mnist-cnn: graded, " in out
    assert "end   bob/fashion-mnist-cnn: invalid-submission, 0/0" in out
    epochs = [line for line in lines if line.startswith("epoch ann/fashion-mnist-cnn: epoch ")]
    assert epochs and all("/2 loss " in line and " acc " in line for line in epochs), out
    assert lines.index(epochs[0]) < lines.index(next(e for e in lines if e.startswith("end   ann/")))
    assert not any("\x1b" in line for line in lines)
    assert "Finished: 3 of 3 job(s)" in out and "2 invalid submission" in out
    assert code == 1
