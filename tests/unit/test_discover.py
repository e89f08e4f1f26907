import pytest

from harness.discover import UNKNOWN, discover
from harness.errors import UsageError


def touch(path, text="x = 1\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_class_folder_student_folder_and_file(tmp_path, assignments):
    touch(tmp_path / "class" / "alice" / "mnist-cnn.py")
    touch(tmp_path / "class" / "alice" / "ox.ipynb")
    touch(tmp_path / "class" / "alice" / "helpers.py")
    touch(tmp_path / "class" / "bob" / "ox.py")
    jobs = discover([tmp_path / "class"], assignments)
    assert sorted((j.student, j.assignment) for j in jobs) == [("alice", "mnist-cnn"), ("alice", "ox"), ("bob", "ox")]
    assert [j.assignment for j in discover([tmp_path / "class" / "bob"], assignments)] == ["ox"]
    single = discover([tmp_path / "class" / "alice" / "ox.ipynb"], assignments)
    assert [(j.student, j.assignment) for j in single] == [("alice", "ox")]


def test_notebook_preferred_over_module(tmp_path, assignments):
    touch(tmp_path / "s" / "ox.ipynb")
    touch(tmp_path / "s" / "ox.py")
    (job,) = discover([tmp_path / "s"], assignments)
    assert job.entry.name == "ox.ipynb"


def test_misnamed_file_gets_a_rename_hint(tmp_path, assignments):
    touch(tmp_path / "frank" / "Fashion MNIST CNN.ipynb")
    (job,) = discover([tmp_path / "frank"], assignments)
    assert job.assignment == "fashion-mnist-cnn" and job.entry is None
    assert "rename it to fashion-mnist-cnn.ipynb" in job.problem


def test_empty_student_folder_is_a_result(tmp_path, assignments):
    (tmp_path / "ghost").mkdir()
    (job,) = discover([tmp_path / "ghost"], assignments)
    assert job.assignment == UNKNOWN and "no notebook or module" in job.problem


def test_usage_errors(tmp_path, assignments):
    with pytest.raises(UsageError, match="no such file"):
        discover([tmp_path / "missing"], assignments)
    touch(tmp_path / "random.py")
    with pytest.raises(UsageError, match="matches no assignment"):
        discover([tmp_path / "random.py"], assignments)
