"""The progress views of a class run: the plain log's lines, the rich view's running lines and summary,
epochs read defensively from a running job's events file, and a failing view never stops grading."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from harness import grade as grading
from harness import progress
from harness.discover import discover
from harness.grade import GradeOptions, grade_all
from harness.progress import EpochSeen, EventsTail, JobDone, JobRef, PlainLog, RichView, Summary, Tracker

from test_class_run import FakeSandbox, fake_record, make_class


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plain_log_prints_one_start_and_one_end_line_per_job_without_control_characters():
    out, clock = io.StringIO(), Clock()
    log = PlainLog(stream=out, epoch_every=30, clock=clock)
    evil = JobRef(progress.clean("eve\x1b[31m\r\nred"), "ox")
    ann = JobRef("ann", "fashion-mnist-cnn")
    log.run_started(3, 2, Path("reports"))
    log.job_started(ann)
    log.job_started(evil)
    log.epoch_seen(ann, EpochSeen(epoch=1, epochs=5, fit=1, loss=0.5, accuracy=0.81234))
    clock.now += 10
    log.epoch_seen(ann, EpochSeen(epoch=2, epochs=5, fit=1, loss=0.4))  # within 30 s of the last: not printed
    clock.now += 25
    log.epoch_seen(ann, EpochSeen(epoch=4, epochs=5, fit=1, loss=0.3))
    log.job_finished(JobDone(evil, "invalid-submission", 0, 0, cached=False, seconds=0.25))
    log.job_finished(JobDone(ann, "graded", 60, 60, cached=False, seconds=35.0))
    log.job_finished(JobDone(JobRef("bob", "ox"), "graded", 40, 60, cached=True, seconds=0))
    log.run_finished(interrupted=False)
    lines = out.getvalue().splitlines()
    assert lines[:7] == [
        "start ann/fashion-mnist-cnn",
        "start eve\\x1b[31m\\x0d\\x0ared/ox",
        "epoch ann/fashion-mnist-cnn: epoch 1/5 loss 0.5000 acc 0.8123",
        "epoch ann/fashion-mnist-cnn: epoch 4/5 loss 0.3000",
        "end   eve\\x1b[31m\\x0d\\x0ared/ox: invalid-submission, 0/0 (0.2 s) [1/3 done]",
        "end   ann/fashion-mnist-cnn: graded, 60/60 (35.0 s) [2/3 done]",
        "end   bob/ox: graded, 40/60 (unchanged, not run again) [3/3 done]",
    ]
    assert lines[7:9] == ["Finished: 3 of 3 job(s) in 0:00:35", "2 graded (1 with full marks), 1 invalid submission"]
    assert "Slowest: ann/fashion-mnist-cnn 35.0 s, eve" in out.getvalue()
    assert not any(ord(c) < 32 and c != "\n" for c in out.getvalue())


def _view(width: int = 120) -> tuple[RichView, Console, Clock]:
    clock = Clock()
    console = Console(record=True, width=width, color_system="truecolor", force_terminal=True)
    return RichView(console=console, live=False, clock=clock), console, clock


def test_rich_view_shows_each_running_job_with_its_stage_elapsed_time_and_latest_epoch():
    view, console, clock = _view()
    ann, bob, cid = JobRef("ann", "fashion-mnist-cnn"), JobRef("[bold]bob", "ox"), JobRef("cid", "ox")
    view.run_started(4, 2, Path("reports"))
    for job in (ann, bob, cid):
        view.job_started(job)
        clock.now += 5
    view.stage_changed(ann, "running")
    view.epoch_seen(ann, EpochSeen(epoch=3, epochs=5, fit=1, loss=0.41, accuracy=0.86))
    view.stage_changed(bob, "evaluating")
    view.job_finished(JobDone(cid, "graded", 60, 60, cached=False, seconds=20.0))
    clock.now += 65
    console.print(view.render())
    text = console.export_text()
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in ("ann", "[bold]bob")}
    assert "running" in rows["ann"] and "0:01:20" in rows["ann"] and "epoch 3/5 loss 0.4100 acc 0.8600" in rows["ann"]
    assert "evaluating" in rows["[bold]bob"] and "0:01:15" in rows["[bold]bob"] and "epoch" not in rows["[bold]bob"]
    assert "✓ cid/ox  graded 60/60  20.0 s" in text  # a finished job is printed above the live lines
    assert "1/4 done  2 running  elapsed 0:01:20" in text
    assert "ETA 0:04:00" in text  # 3 jobs left at one job per 80 s


def test_rich_view_summary_counts_match_the_records_of_a_class_run(tmp_path, assignments, monkeypatch):
    names = ["ann", "bob", "cid", "dan", "eve"]
    jobs = discover([make_class(tmp_path, names)], assignments)
    statuses = {"ann": "graded", "bob": "no-model", "cid": "graded", "dan": "timeout"}

    def fake_grade_job(job, assignments, sandbox, options):
        if job.student == "eve":
            raise RuntimeError("harness bug")
        time.sleep(0.01 * len(job.student))
        return fake_record(job, statuses[job.student])

    monkeypatch.setattr(grading, "grade_job", fake_grade_job)
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache", jobs=2)
    first, _ = grade_all(jobs, assignments, FakeSandbox(), options)
    (tmp_path / "class" / "ann" / "ox.py").write_text("x = 2\n")  # ann runs again, the others are unchanged
    view, console, _ = _view(width=200)
    records, internal = grade_all(jobs, assignments, FakeSandbox(), options, view)
    assert internal == 1 and len(records) == 5
    text = console.export_text()
    counts = Counter(r.status for r in records)
    assert counts == {"graded": 2, "no-model": 1, "timeout": 1, "error": 1}
    assert ("Finished: 5 of 5 job(s) in 0:00:00\n2 graded (2 with full marks), 1 no trained model, "
            "1 stopped with an error, 1 time limit reached\n") in text
    assert "3 job(s) unchanged since the last run" in text  # bob, cid and dan; eve's error is not kept
    assert f"Records and reports in {options.out}/" in text
    assert text.count("unchanged, not run again") == 3 and "✓ ann/ox" in text and "✗ eve/ox" in text


class Exploding(progress.Sink):
    def __init__(self, fail_in: str) -> None:
        self.fail_in, self.calls, self.closed = fail_in, [], False

    def __getattribute__(self, name):
        if name in ("run_started", "job_started", "stage_changed", "job_finished", "run_finished"):
            self.calls.append(name)
            if name == self.fail_in:
                raise ValueError("the terminal went away")
        return object.__getattribute__(self, name)

    def close(self) -> None:
        self.closed = True


def test_a_sink_that_raises_is_closed_and_grading_goes_on(tmp_path, assignments, monkeypatch, capsys):
    jobs = discover([make_class(tmp_path, ["ann", "bob", "cid"])], assignments)
    monkeypatch.setattr(grading, "grade_job", lambda job, *a: fake_record(job))
    for where in ("run_started", "job_started", "job_finished", "run_finished"):
        sink = Exploding(where)
        options = GradeOptions(quick=True, out=tmp_path / where, cache=tmp_path / "cache", jobs=2)
        records, internal = grade_all(jobs, assignments, FakeSandbox(), options, sink)
        assert internal == 0 and sorted(r.student for r in records) == ["ann", "bob", "cid"], where
        assert all((options.out / s / "ox.json").exists() for s in ("ann", "bob", "cid"))
        assert sink.closed and sink.calls[-1] == where, (where, sink.calls)  # never called again
        assert "the progress view failed (ValueError: the terminal went away)" in capsys.readouterr().err


def test_epochs_reach_the_view_from_the_running_jobs_events_file(tmp_path, assignments, monkeypatch):
    """The run stage names the evidence folder; the tracker's tick reads what the job appends."""
    jobs = discover([make_class(tmp_path, ["ann"])], assignments)
    seen: list[tuple[str, object]] = []

    class Recorder(progress.Sink):
        def stage_changed(self, job, stage):
            seen.append(("stage", stage))

        def epoch_seen(self, job, epoch):
            seen.append(("epoch", epoch.epoch))

    def fake_grade_job(job, assignments, sandbox, options):
        folder = tmp_path / "evidence"
        folder.mkdir()
        progress.report_stage(job, "running", folder)
        with open(folder / "events.jsonl", "a") as fh:
            fh.write(json.dumps({"seq": 1, "kind": "fit_start", "fit": 1, "epochs": 3}) + "\n")
            for epoch in range(3):
                fh.write(json.dumps({"seq": 2 + epoch, "kind": "epoch", "epoch": epoch, "logs": {"loss": 1.0}}) + "\n")
                fh.flush()
                time.sleep(0.25)
        progress.report_stage(job, "evaluating")
        return fake_record(job)

    monkeypatch.setattr(grading, "grade_job", fake_grade_job)
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.1)
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache")
    grade_all(jobs, assignments, FakeSandbox(), options, Recorder())
    epochs = [value for what, value in seen if what == "epoch"]
    assert ("stage", "running") in seen and ("stage", "evaluating") in seen
    assert epochs[-1] == 3 and epochs == sorted(epochs) and len(epochs) >= 2  # seen while it ran, the last one too
    assert seen.index(("stage", "evaluating")) > seen.index(("epoch", 3))


def _tail(folder: Path, *chunks: bytes) -> list[EpochSeen | None]:
    tail, found = EventsTail(folder), []
    for chunk in chunks:
        with open(folder / "events.jsonl", "ab") as fh:
            fh.write(chunk)
        found.append(tail.poll())
    return found


def test_the_events_tail_takes_only_numbers_and_survives_garbage(tmp_path):
    good = b'{"kind": "epoch", "epoch": 1, "logs": {"loss": 0.5, "accuracy": 0.9}}\n'
    found = _tail(tmp_path,
                  b'{"kind": "fit_start", "epochs": "[bold]5"}\n' + good[:20],  # a line arrives in two writes
                  good[20:],
                  b'not json epoch\n[1, "epoch"]\n{"kind": "epoch", "epoch": true}\n{"kind": "epoch", "epoch": -1}\n',
                  b'{"kind": "epoch", "epoch": 7, "logs": {"loss": NaN, "accuracy": "high", "val_loss": 1e999}}\n',
                  b'{"kind": "epoch", "epoch": 8, "x": "' + b"epoch" * 20_000 + b'"}\n' + good,  # too long: skipped
                  b"[" * 100_000,  # too long and not ended yet: its end is not a line of its own
                  b'{"kind": "epoch", "epoch": 40}\n')
    assert found[0] is None
    assert found[1] == EpochSeen(epoch=2, epochs=None, fit=1, loss=0.5, accuracy=0.9)
    assert found[2] is None
    assert found[3] == EpochSeen(epoch=8, epochs=None, fit=1)  # NaN, text and infinity are dropped
    assert found[4] == EpochSeen(epoch=2, epochs=None, fit=1, loss=0.5, accuracy=0.9)
    assert found[5] is None
    assert found[6] is None  # epoch 41 was the end of the long line, not a line of its own


def test_the_events_tail_follows_no_symlink_blocks_on_no_fifo_and_stops_when_truncated(tmp_path):
    line = b'{"kind": "epoch", "epoch": 0}\n'
    host = tmp_path / "host.jsonl"
    host.write_bytes(line)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "events.jsonl").symlink_to(host)
    assert EventsTail(linked).poll() is None
    real = tmp_path / "real"
    real.mkdir()
    (real / "events.jsonl").write_bytes(line)
    (tmp_path / "folder-link").symlink_to(real, target_is_directory=True)
    assert EventsTail(real).poll() == EpochSeen(epoch=1)
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "events.jsonl")
    started = time.monotonic()
    assert EventsTail(fifo).poll() is None and EventsTail(tmp_path / "folder-link").poll() is None
    assert time.monotonic() - started < 1
    shrinking = tmp_path / "shrinking"
    shrinking.mkdir()
    tail = EventsTail(shrinking)
    assert tail.poll() is None  # not written yet
    (shrinking / "events.jsonl").write_bytes(line * 2)
    assert tail.poll() == EpochSeen(epoch=1)
    (shrinking / "events.jsonl").write_bytes(line)  # replaced by something shorter: stop reading
    assert tail.poll() is None and tail.stopped


def test_summary_and_eta_are_pure_over_the_finished_jobs():
    a, b, c = JobRef("a", "ox"), JobRef("b", "ox"), JobRef("c", "ox")
    done = [JobDone(a, "graded", 1, 1, False, 30), JobDone(b, "graded", 1, 1, True, 0)]
    assert progress.eta(4, done, 60) == 120  # one job ran in 60 s; two are left
    assert progress.eta(4, done[1:], 60) is None and progress.eta(2, done, 60) == 0
    summary = Summary.of(5, [*done, JobDone(c, "interrupted", 0, 0, False, 3)], interrupted=True)
    assert summary.counts == {"graded": 2, "interrupted": 1} and summary.full_marks == 2 and summary.cached == 1
    assert [d.job for d in summary.slowest] == [a, c]
    lines = summary.lines(75, None)
    assert lines[0].startswith("Interrupted: 3 of 5 job(s) in 0:01:15")
    assert "2 job(s) not graded: run grade again and it resumes with them" in lines


def test_make_picks_plain_when_the_output_is_not_a_terminal():
    assert isinstance(progress.make("auto", stream=io.StringIO()), PlainLog)
    assert isinstance(progress.make("rich", stream=io.StringIO()), RichView)
    assert progress.make("none") is None


def test_ctrl_c_ends_the_view_with_an_interrupted_summary(tmp_path, assignments, monkeypatch):
    import pytest
    from harness.sandbox import base
    jobs = discover([make_class(tmp_path, ["ann", "bob"])], assignments)

    def interrupted(job, *a):
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread, raised here from the job instead

    monkeypatch.setattr(grading, "grade_job", interrupted)
    view, console, _ = _view()
    options = GradeOptions(quick=True, out=tmp_path / "out", cache=tmp_path / "cache")
    try:
        with pytest.raises(KeyboardInterrupt):
            grade_all(jobs, assignments, FakeSandbox(), options, view)
    finally:
        base.STOPPING.clear()
    text = console.export_text()
    assert "Interrupted: 0 of 2 job(s)" in text
    assert "2 job(s) not graded: run grade again and it resumes with them" in text


def test_a_narrow_terminal_cuts_the_epoch_never_the_name_stage_or_time():
    view, console, clock = _view(width=64)
    job = JobRef("alice", "fashion-mnist-cnn")
    view.run_started(1, 1, Path("reports"))
    view.job_started(job)
    view.stage_changed(job, "running")
    view.epoch_seen(job, EpochSeen(epoch=5, epochs=5, fit=1, loss=0.1689, accuracy=0.9367, val_accuracy=0.9168))
    clock.now += 838
    console.print(view)  # as the live display draws it
    lines = console.export_text().splitlines()
    row = next(line for line in lines if line.startswith("  alice"))
    assert row.split()[:4] == ["alice", "fashion-mnist-cnn", "running", "0:13:58"]
    assert row.endswith("…") and "epoch 5/5 lo" in row
    assert all(len(line) <= 64 for line in lines)


def test_a_huge_loss_keeps_the_epoch_text_short():
    from harness.progress import EpochSeen, epoch_text
    text = epoch_text(EpochSeen(epoch=1, epochs=2, loss=1e308, accuracy=0.5))
    assert text == "epoch 1/2 loss 1e+308 acc 0.5000"


# ---- waiting for resources, and progress relayed from another machine


class Recording(progress.Sink):
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def stage_changed(self, job, stage):
        self.seen.append(("stage", stage))

    def epoch_seen(self, job, epoch):
        self.seen.append(("epoch", epoch))


class Job(tuple):
    """A job as the tracker needs it: hashable, with a student and an assignment."""

    student = property(lambda self: self[0])
    assignment = property(lambda self: self[1])


def test_a_job_waiting_for_the_local_pool_shows_waiting_until_it_has_its_resources(tmp_path):
    from harness.executors.base import ExecutorSettings
    from harness.executors.local import LocalExecutor
    from harness.resources import Capacity, JobRequest
    executor = LocalExecutor(ExecutorSettings(), Capacity(cpus=1, memory_mb=1000))
    first, second = Job(("ann", "ox")), Job(("bob", "ox"))
    sink = Recording()
    tracker = Tracker(sink, [first, second], 1, tmp_path)
    request, release = JobRequest(cpus=1, memory_mb=800), threading.Event()
    tracker.started(first)
    holder = threading.Thread(target=executor.run, args=(request, lambda task, held: release.wait(5), None,
                                                         lambda item: tracker.relayed(first, item)))
    holder.start()
    time.sleep(0.2)
    tracker.started(second)
    ran = []
    waiter = threading.Thread(target=executor.run, args=(request, lambda task, held: ran.append(held), None,
                                                         lambda item: tracker.relayed(second, item)))
    waiter.start()
    time.sleep(0.3)
    assert sink.seen == [("stage", "preparing")] * 2 + [("stage", "waiting")] and not ran
    release.set()
    holder.join(5)
    waiter.join(5)
    assert sink.seen[-1] == ("stage", "preparing") and len(ran) == 1  # it had its resources, then ran
    assert sink.seen.count(("stage", "waiting")) == 1  # the job that fitted at once never waited


def test_the_rich_view_shows_a_waiting_job_as_waiting_not_running():
    view, console, clock = _view()
    ann, bob = JobRef("ann", "ox"), JobRef("bob", "ox")
    view.run_started(2, 1, Path("reports"))
    for job in (ann, bob):
        view.job_started(job)
    view.stage_changed(ann, "running")
    view.stage_changed(bob, "waiting")
    clock.now += 3
    console.print(view.render())
    text = console.export_text()
    assert "0/2 done  1 running, 1 waiting  elapsed 0:00:03" in text
    assert [line.split()[:2] for line in text.splitlines() if line.split()[:1] == ["bob"]] == [["bob", "ox"]]
    assert "waiting" in next(line for line in text.splitlines() if line.split()[:1] == ["bob"])


def test_the_plain_log_names_a_wait_only_when_it_was_long():
    out, clock = io.StringIO(), Clock()
    log = PlainLog(stream=out, clock=clock, wait_logged=5)
    ann, bob = JobRef("ann", "ox"), JobRef("bob", "ox")
    log.run_started(2, 1, Path("reports"))
    for job in (ann, bob):
        log.job_started(job)
        log.stage_changed(job, "preparing")
        log.stage_changed(job, "waiting")
    clock.now += 2
    log.stage_changed(ann, "preparing")  # a short wait: not worth a line in a CI log
    clock.now += 10
    log.stage_changed(bob, "preparing")
    log.stage_changed(bob, "running")
    assert out.getvalue().splitlines() == ["start ann/ox", "start bob/ox",
                                           "wait  bob/ox: waited 12 s for its resources, now preparing"]


def test_a_relay_sends_stages_and_the_latest_epoch_as_plain_values_and_the_tracker_checks_them(tmp_path):
    relay = progress.Relay()
    folder = tmp_path / "evidence"
    folder.mkdir()
    with progress.relaying(relay):
        progress.report_stage(object(), "running", folder)  # no tracker follows it here: the relay takes it
        progress.report_stage(object(), "not a stage")
    with open(folder / "events.jsonl", "w") as fh:
        fh.write(json.dumps({"kind": "fit_start", "epochs": 2}) + "\n")
        for epoch in range(2):
            fh.write(json.dumps({"kind": "epoch", "epoch": epoch, "logs": {"loss": 0.5, "note": "x" * 999}}) + "\n")
    progress.report_stage(object(), "evaluating")  # outside `relaying`: nobody follows it
    items = relay.take()
    assert items == [("stage", "running"),
                     ("epoch", {"epoch": 2, "epochs": 2, "fit": 1, "loss": 0.5, "accuracy": None, "val_loss": None,
                                "val_accuracy": None})]  # epochs coalesced to the latest; no text
    assert relay.take() == []
    for stage in ("waiting",) * 100:
        relay.stage(None, stage)
    assert len(relay.take()) == progress.RELAY_MAX_ITEMS  # a caller that never reads costs a bounded list

    sink, job = Recording(), Job(("ann", "ox"))
    tracker = Tracker(sink, [job], 1, tmp_path)
    tracker.started(job)
    for item in [*items, ("stage", "x" * 10_000), ("stage", ["running"]), ("epoch", {"epoch": "1"}),
                 ("epoch", {"epoch": 3, "loss": float("nan"), "fit": True}), ("epoch", "1"), "running", None,
                 ("stage", "evaluating", "extra")]:
        tracker.relayed(job, item)
    assert sink.seen == [("stage", "preparing"), ("stage", "running"),
                         ("epoch", EpochSeen(epoch=2, epochs=2, fit=1, loss=0.5)), ("epoch", EpochSeen(epoch=3))]
