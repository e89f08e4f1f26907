"""Path rules (records under --out, duplicates, `grade .`) and symlinks, which are never followed on the host."""

import os
from pathlib import Path

import pytest

from harness.discover import UNKNOWN, Job, discover
from harness.errors import UsageError
from harness.grade import record_path, submission_problem, _entry_problem
from harness.run import prepare, scan, submission_files


def touch(path, text="x = 1\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_record_path_is_under_out(tmp_path):
    out = tmp_path / "reports"
    assert record_path(out, "alice", "ox") == out / "alice" / "ox.json"
    for student in ("..", ".", "", "a/b", "/etc"):
        with pytest.raises(UsageError, match="outside"):
            record_path(out, student, "ox")


def test_record_path_through_a_symlinked_student_folder_is_refused(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "alice").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="outside"):
        record_path(out, "alice", "ox")


def test_two_inputs_for_one_student_and_assignment_are_a_usage_error(tmp_path, assignments):
    touch(tmp_path / "a" / "alice" / "ox.py")
    touch(tmp_path / "b" / "alice" / "ox.py")
    with pytest.raises(UsageError, match="both give student 'alice' assignment 'ox'"):
        discover([tmp_path / "a" / "alice", tmp_path / "b" / "alice"], assignments)
    with pytest.raises(UsageError, match="both give"):
        discover([tmp_path / "a", tmp_path / "b"], assignments)


def test_the_same_submission_twice_is_one_job(tmp_path, assignments):
    touch(tmp_path / "class" / "alice" / "ox.py")
    touch(tmp_path / "class" / "bob" / "ox.py")
    jobs = discover([tmp_path / "class", tmp_path / "class" / "alice", tmp_path / "class" / "alice" / "ox.py"],
                    assignments)
    assert sorted(j.student for j in jobs) == ["alice", "bob"]


def test_grade_dot_inside_a_student_folder(tmp_path, assignments, monkeypatch):
    touch(tmp_path / "class" / "alice" / "ox.py")
    monkeypatch.chdir(tmp_path / "class" / "alice")
    (job,) = discover([Path(".")], assignments)
    assert (job.student, job.assignment) == ("alice", "ox")
    assert record_path(tmp_path / "out", job.student, job.assignment) == tmp_path / "out" / "alice" / "ox.json"
    (job,) = discover([Path("ox.py")], assignments)
    assert job.student == "alice"
    monkeypatch.chdir(tmp_path / "class" / "alice")
    jobs = discover([Path("..")], assignments)
    assert [j.student for j in jobs] == ["alice"]


def test_several_misnamed_files_for_one_assignment_share_one_record(tmp_path, assignments):
    touch(tmp_path / "frank" / "Fashion MNIST CNN.ipynb")
    touch(tmp_path / "frank" / "fashion_mnist_cnn.py")
    (job,) = discover([tmp_path / "frank"], assignments)
    assert job.assignment == "fashion-mnist-cnn" and job.problem.count("rename it") == 2


def test_non_utf8_names_become_printable(tmp_path, assignments):
    raw = os.fsencode(str(tmp_path / "class")) + b"/\xffbob"
    os.makedirs(raw)
    with open(raw + b"/ox.py", "w") as fh:
        fh.write("x = 1\n")
    with open(raw + b"/caf\xe9.txt", "w") as fh:
        fh.write("notes\n")
    (job,) = discover([tmp_path / "class"], assignments)
    assert job.student == "\\xffbob"
    files = submission_files(job.folder)
    assert set(files) == {"ox.py", "caf\\xe9.txt"}
    prepared = prepare(job, tmp_path / "job")
    assert set(prepared.files) == set(files)


def test_symlinked_student_folder_in_a_class_is_invalid_and_not_followed(tmp_path, assignments):
    touch(tmp_path / "host" / "ox.py")
    touch(tmp_path / "class" / "alice" / "ox.py")
    (tmp_path / "class" / "mallory").symlink_to(tmp_path / "host")
    jobs = {j.student: j for j in discover([tmp_path / "class"], assignments)}
    assert jobs["mallory"].assignment == UNKNOWN and "symbolic link" in jobs["mallory"].problem
    assert jobs["alice"].assignment == "ox"


def _fifo(path: Path) -> Path:
    """A target that would hang whoever opens it: proof that a symlink to it was never followed."""
    os.mkfifo(path)
    return path


@pytest.mark.timeout(20)
def test_symlinked_entry_is_refused_without_opening_its_target(tmp_path, assignments):
    folder = tmp_path / "mallory"
    folder.mkdir()
    (folder / "ox.ipynb").symlink_to(_fifo(tmp_path / "pipe"))
    (job,) = discover([folder], assignments)
    assert job.entry == folder / "ox.ipynb"
    problem = submission_problem(job, assignments["ox"])
    assert "symbolic link" in problem and "not opened" in problem
    assert "not a regular file" in _entry_problem(job.entry)  # even if asked, it is not followed


@pytest.mark.timeout(20)
def test_helper_symlinks_are_skipped_and_never_opened(tmp_path, assignments):
    folder = tmp_path / "eve"
    touch(folder / "ox.py")
    (folder / "helper.py").symlink_to(_fifo(tmp_path / "pipe"))
    (folder / "data").symlink_to(tmp_path)
    _fifo(folder / "a-fifo")
    found = scan(folder)
    assert found.files == ["ox.py"] and sorted(found.symlinks) == ["data", "helper.py"] and found.others == ["a-fifo"]
    assert list(submission_files(folder)) == ["ox.py"]
    (job,) = discover([folder], assignments)
    prepared = prepare(job, tmp_path / "job")
    assert sorted(p.name for p in prepared.stage.iterdir()) == ["ox.py"]
    assert submission_problem(job, assignments["ox"]) is None


def test_submission_over_the_size_limit_says_how_big(tmp_path, assignments):
    folder = tmp_path / "big"
    touch(folder / "ox.py")
    (folder / "weights.bin").write_bytes(b"\0" * (3 * 2**20))
    loaded = assignments["ox"]
    assert loaded.spec.max_submission_mb == 200
    small = loaded.model_copy(update={"spec": loaded.spec.model_copy(update={"max_submission_mb": 2})})
    (job,) = discover([folder], assignments)
    problem = submission_problem(job, small)
    assert "3.0 MB" in problem and "limit of 2 MB" in problem
    assert submission_problem(job, loaded) is None


def test_a_folder_nested_past_the_depth_limit_is_listed_not_walked(tmp_path):
    """os.walk recurses once per level: a submission 1,100 folders deep raised RecursionError in every job
    stage that lists it, so it never got a record (an internal error at each run, blamed on the grader)."""
    folder = tmp_path / "alice"
    touch(folder / "ox.py")
    fds = [os.open(folder, os.O_RDONLY)]
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=fds[-1])
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        os.close(os.open("x.py", os.O_WRONLY | os.O_CREAT, dir_fd=fds[-1]))
        found = scan(folder)
        assert found.files == ["ox.py"]
        assert any(name.startswith("d/d/") for name in found.others)
        job = Job(student="alice", assignment="ox", folder=folder, entry=folder / "ox.py")
        assert prepare(job, tmp_path / "job").files.keys() == {"ox.py"}
    finally:  # removed here, level by level: pytest's own clean-up of old tmp folders recurses too
        os.unlink("x.py", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
        os.close(fds.pop())
