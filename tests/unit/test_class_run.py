"""A class run always finishes: every per-job step is guarded, the resume key holds every setting."""

import json
from pathlib import Path


from harness import grade as grading
from harness import reports
from harness.discover import discover
from harness.grade import GradeOptions, assignment_digest, grade_all, record_path
from harness.resources import GpuAsk
from harness.progress import Sink
from harness.run import submission_files
from harness.record import Metrics, Record, RunInfo, SubmissionInfo


class FakeSandbox:
    name = "fake"
    isolates = True


def fake_record(job, status="graded"):
    return Record(harness_version="0", created_at="2026-01-01T00:00:00+00:00", student=job.student,
                  assignment=job.assignment, status=status, score=1, max_score=1, summary="Graded.", checks=[],
                  findings=[], model=None, metrics=Metrics(), history={},
                  run=RunInfo(sandbox="fake", runtime="keras3", mode="quick", wall_seconds=0, peak_memory_mb=None,
                              exit_code=0),
                  submission=SubmissionInfo(entry=job.entry.name,
                                            files=submission_files(job.folder) if job.folder.is_dir() else {}))


def make_class(tmp_path, names):
    for name in names:
        folder = tmp_path / "class" / name
        folder.mkdir(parents=True)
        (folder / "ox.py").write_text("x = 1\n")
    return tmp_path / "class"


def test_a_failing_step_costs_one_record_never_the_class(tmp_path, assignments, monkeypatch):
    jobs = discover([make_class(tmp_path, ["ann", "[bold]x", "boom", "mdfail", "zed"])], assignments)

    def fake_grade_job(job, assignments, sandbox, options):
        if job.student == "boom":
            raise RuntimeError("harness bug")
        return fake_record(job)

    real_markdown = reports.write_markdown

    def flaky_markdown(rec, path, rules=None):
        if rec.student == "mdfail":
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed")
        real_markdown(rec, path, rules)

    printed = []

    class Progress(Sink):
        def job_finished(self, done):
            printed.append(done.job.student)

    monkeypatch.setattr(grading, "grade_job", fake_grade_job)
    monkeypatch.setattr(reports, "write_markdown", flaky_markdown)
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache")
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options, Progress())
    by_student = {r.student: r for r in records}
    assert set(by_student) == {"ann", "[bold]x", "boom", "mdfail", "zed"}
    assert internal == 2
    assert by_student["boom"].status == "error" and "not the student's fault" in by_student["boom"].summary
    assert by_student["mdfail"].status == "error"
    for student in by_student:
        assert record_path(options.out, student, "ox").exists(), student
    assert sorted(printed) == sorted(by_student)


def test_a_dataset_that_is_not_prepared_gets_an_error_record_and_the_rest_are_graded(tmp_path, assignments,
                                                                                      monkeypatch):
    folder = make_class(tmp_path, ["ann"])
    (folder / "bob").mkdir()
    (folder / "bob" / "mnist-cnn.py").write_text("x = 1\n")
    jobs = discover([folder], assignments)
    ran = []
    monkeypatch.setattr(grading, "grade_job", lambda job, *a: ran.append(job.student) or fake_record(job))
    options = GradeOptions(quick=False, out=tmp_path / "out", cache=tmp_path / "cache", data_root=tmp_path / "empty")
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options)
    by_student = {r.student: r for r in records}
    assert internal == 2 and ran == []  # ox and mnist are both unprepared in an empty root: nothing runs
    assert "harness data prepare mnist" in by_student["bob"].summary
    assert "harness data prepare ox" in by_student["ann"].summary


def test_resume_key_changes_with_every_setting(tmp_path, assignments, data_root):
    loaded = assignments["fashion-mnist-cnn"]
    base = GradeOptions(quick=False, out=tmp_path, cache=tmp_path, data_root=data_root)
    key = assignment_digest(loaded, base, FakeSandbox())
    changed = [
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "quick": True}), FakeSandbox()),
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "timeout": 5}), FakeSandbox()),
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "memory_mb": 1024}), FakeSandbox()),
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "data_root": tmp_path / "other"}), FakeSandbox()),
        assignment_digest(loaded, base, type("Other", (), {"name": "process"})()),
        assignment_digest(assignments["mnist-cnn"], base, FakeSandbox()),
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "gpus": GpuAsk(count=0)}), FakeSandbox()),
        assignment_digest(loaded, base.__class__(**{**base.__dict__, "gpus": GpuAsk(ids=("all",))}), FakeSandbox()),
    ]
    assert key == assignment_digest(loaded, base, FakeSandbox())
    assert len({key, *changed}) == len(changed) + 1


def test_resume_key_follows_the_prepared_dataset(tmp_path, assignments):
    from harness.data import providers
    loaded = assignments["fashion-mnist-cnn"]
    options = GradeOptions(quick=False, out=tmp_path, cache=tmp_path, data_root=tmp_path / "root")
    manifest = providers.dataset_dir("fashion_mnist", options.data_root) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"prepared_at": "1"}))
    first = assignment_digest(loaded, options, FakeSandbox())
    manifest.write_text(json.dumps({"prepared_at": "2"}))
    assert assignment_digest(loaded, options, FakeSandbox()) != first


def test_console_table_prints_markup_as_text():
    from rich.console import Console
    # a folder name cannot hold "/", so "[/]" (which rich refuses) comes from the summary, e.g. an exception
    job = type("J", (), {"student": "[bold]mallory", "assignment": "ox", "entry": Path("ox.py"), "folder": Path("/nonexistent")})()
    rec = fake_record(job).model_copy(update={"summary": "ValueError: [bold red]:smile: [/] done"})
    console = Console(record=True, width=200)
    console.print(reports.console_table([rec]))
    text = console.export_text()
    assert "[bold]mallory" in text and "[bold red]:smile: [/] done" in text


def test_resume_reuses_a_record_only_under_the_same_settings(tmp_path, assignments, monkeypatch):
    jobs = discover([make_class(tmp_path, ["ann"])], assignments)
    ran = []
    status = {"value": "graded"}
    monkeypatch.setattr(grading, "grade_job", lambda job, *a: ran.append(job.student) or fake_record(job, status["value"]))
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache")
    grade_all(jobs, assignments, FakeSandbox(), options)
    grade_all(jobs, assignments, FakeSandbox(), options)
    assert ran == ["ann"]
    grade_all(jobs, assignments, FakeSandbox(), GradeOptions(**{**options.__dict__, "timeout": 7}))
    grade_all(jobs, assignments, FakeSandbox(), GradeOptions(**{**options.__dict__, "memory_mb": 1024}))
    assert ran == ["ann"] * 3
    status["value"] = "interrupted"
    grade_all(jobs, assignments, FakeSandbox(), options)
    grade_all(jobs, assignments, FakeSandbox(), options)
    assert ran == ["ann"] * 5, "an interrupted record is graded again"


def _asking(loaded, gpus=0, memory_mb=None):
    from harness.spec import Resources
    update = {"resources": Resources(gpus=gpus)}
    if memory_mb:
        update["memory_mb"] = memory_mb
    return loaded.model_copy(update={"spec": loaded.spec.model_copy(update=update)})


def test_the_pool_gives_each_running_job_its_own_gpus_and_never_more_than_the_machine(tmp_path, assignments,
                                                                                      monkeypatch):
    import threading
    import time
    jobs = discover([make_class(tmp_path, [f"s{i}" for i in range(6)])], assignments)
    assignments = {**assignments, "ox": _asking(assignments["ox"], gpus=1, memory_mb=1024)}
    running, seen, lock = set(), [], threading.Lock()

    def fake_grade_job(job, assignments, sandbox, options):
        with lock:
            assert not running & set(options.gpu_ids), "two running jobs share a GPU"
            running.update(options.gpu_ids)
            seen.append((len(running), options.gpu_ids))
        time.sleep(0.2)
        with lock:
            running.difference_update(options.gpu_ids)
        return fake_record(job)

    monkeypatch.setattr(grading, "grade_job", fake_grade_job)
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache", jobs=None,
                           machine_gpus=("0", "1"))
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options)
    assert internal == 0 and len(records) == 6
    assert all(len(ids) == 1 and ids[0] in ("0", "1") for _, ids in seen)
    from harness.resources import machine_cpus
    assert max(n for n, _ in seen) == min(2, int(machine_cpus())), "two GPUs: two jobs at once, not more"
    assert {r.run.gpus[0] for r in records} == {"0", "1"}  # the record says which GPU the job had


def test_the_gpus_option_names_the_devices_each_job_gets_over_the_assignment(tmp_path, assignments, monkeypatch):
    import threading
    import time
    from harness.resources import parse_gpus
    jobs = discover([make_class(tmp_path, ["ann", "bob", "cid"])], assignments)
    assignments = {**assignments, "ox": _asking(assignments["ox"], gpus=1, memory_mb=1024)}
    running, most, lock = [0], [0], threading.Lock()

    def fake_grade_job(job, assignments, sandbox, options):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return fake_record(job)

    monkeypatch.setattr(grading, "grade_job", fake_grade_job)
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache", jobs=None,
                           machine_gpus=("0", "1", "2"), gpus=parse_gpus("2,0"))
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options)
    assert internal == 0 and [r.run.gpus for r in records] == [["2", "0"]] * 3
    assert most[0] == 1, "jobs naming the same GPUs run one at a time"
    every = GradeOptions(quick=True, out=tmp_path / "all", cache=tmp_path / "cache", jobs=None,
                         machine_gpus=("0", "1"), gpus=parse_gpus("all"))
    records, _ = grade_all(jobs, assignments, FakeSandbox(), every)
    assert [r.run.gpus for r in records] == [["0", "1"]] * 3
    none = GradeOptions(quick=True, out=tmp_path / "none", cache=tmp_path / "cache", jobs=None,
                        machine_gpus=("0",), gpus=parse_gpus("0"))
    records, _ = grade_all(jobs, assignments, FakeSandbox(), none)
    assert [r.run.gpus for r in records] == [[]] * 3, "--gpus 0: CPU only, although the assignment asks for one"
    missing = GradeOptions(quick=True, out=tmp_path / "missing", cache=tmp_path / "cache", jobs=None,
                           machine_gpus=("0",), gpus=parse_gpus("device=3"))
    records, internal = grade_all(jobs, assignments, FakeSandbox(), missing)
    assert internal == 3 and all(r.status == "error" and "has no GPU 3" in r.summary for r in records)


def test_a_job_asking_for_more_gpus_than_the_machine_has_gets_an_error_record_at_once(tmp_path, assignments,
                                                                                        monkeypatch):
    jobs = discover([make_class(tmp_path, ["ann", "bob"])], assignments)
    assignments = {**assignments, "ox": _asking(assignments["ox"], gpus=2)}
    ran = []
    monkeypatch.setattr(grading, "grade_job", lambda job, *a: ran.append(job.student) or fake_record(job))
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache", jobs=None, machine_gpus=("0",))
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options)
    assert ran == [] and internal == 2
    for rec in records:
        assert rec.status == "error"
        assert "asks for 2 GPU(s) per job and this machine has 1" in rec.summary
        assert "not the student's fault" in rec.summary
    again, _ = grade_all(jobs, assignments, FakeSandbox(), options)
    assert [r.status for r in again] == ["error", "error"] and ran == [], "an error record is not a cached grade"


def test_a_record_whose_report_a_kill_prevented_gets_its_report_without_a_new_run(tmp_path, assignments,
                                                                                  monkeypatch):
    jobs = discover([make_class(tmp_path, ["ann"])], assignments)
    ran = []
    monkeypatch.setattr(grading, "grade_job", lambda job, *a: ran.append(job.student) or fake_record(job))
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache")
    grade_all(jobs, assignments, FakeSandbox(), options)
    report = record_path(options.out, "ann", "ox").with_suffix(".md")
    report.unlink()
    grade_all(jobs, assignments, FakeSandbox(), options)
    assert ran == ["ann"] and report.is_file()
