"""Grade jobs: the run stage (`execute`: sandboxed run, trusted reading and scoring of the model
file) → the judge stage (`judge`: checks → record) → reports. One module per stage; this file only
joins them. One broken or hostile submission never stops a class run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness import __version__, record, reports
from harness.discover import Job, printable
from harness.errors import HarnessError, UsageError
from harness.execute import execute
from harness.progress import ProgressSink, Tracker, report_stage
from harness.record import Metrics, Record, RunInfo, SubmissionInfo
from harness.resources import GpuAsk
from harness.run import RunOptions, scan, submission_files
from harness.sandbox import Sandbox
from harness.sandbox.base import STOPPING, Interrupted, stop_all
from harness.spec import LoadedAssignment


@dataclass(frozen=True)
class GradeOptions:
    quick: bool
    out: Path
    cache: Path
    timeout: float | None = None
    data_root: Path | None = None
    jobs: int | None = 1  # jobs at once; None: what the machine (or cluster) holds
    seed: int | None = None
    force: bool = False
    memory_mb: int | None = None
    runtime: str | None = None  # `--runtime keras3|legacy`: over the assignment and the code
    executor: str = "local"  # where jobs run (harness.executors): local or ray
    address: str | None = None  # the Ray cluster's address
    gpus: GpuAsk | None = None  # `--gpus`: each job's GPU request, over the assignment's `[resources] gpus`
    machine_gpus: tuple[str, ...] | None = None  # `--machine-gpus`: this machine's GPU ids, over what is detected
    gpu_ids: tuple[str, ...] = ()  # set per job by the executor: the GPUs this job alone may use
    preload: tuple[str, ...] = ()  # modules needed after the jobs (the HTML reports): imported while a job runs


def record_path(out: Path, student: str, assignment: str) -> Path:
    """`<out>/<student>/<assignment>.json`, refused unless it resolves under `out`."""
    path = out / student / f"{assignment}.json"
    base = os.path.realpath(out)
    inside = all(part not in ("", ".", "..") and "/" not in part and "\0" not in part for part in (student, assignment))
    if not inside or os.path.realpath(path.parent) != os.path.join(base, student):
        raise UsageError(f"the record of student {student!r}, assignment {assignment!r} would be written outside "
                         f"{out} ({path}); rename the student folder")
    return path


def _invalid(job: Job, message: str, sandbox: Sandbox, options: GradeOptions, runtime: str = "") -> Record:
    from harness.judge import now
    files = submission_files(job.folder) if job.folder.is_dir() else {}
    return Record(
        harness_version=__version__, created_at=now(), student=job.student, assignment=job.assignment,
        status="invalid-submission", score=0, max_score=0, summary=message, checks=[], findings=[],
        model=None, metrics=Metrics(), history={},
        run=RunInfo(sandbox=sandbox.name, runtime=runtime, mode="quick" if options.quick else "full",
                    wall_seconds=0, peak_memory_mb=None, exit_code=None),
        submission=SubmissionInfo(entry=job.entry.name if job.entry else None, files=files))


def submission_problem(job: Job, loaded: LoadedAssignment) -> str | None:
    """Why this submission is not run at all, looking only at `lstat`: a symlinked entry (never opened) or a
    folder over the assignment's size limit."""
    entry = job.entry
    if entry is not None and entry.is_symlink():
        return (f"{printable(entry.name)} is a symbolic link, not a file; it was not opened. Hand in the "
                f"notebook or module itself.")
    found = scan(job.folder)
    limit = loaded.spec.max_submission_mb
    if found.size_mb > limit:
        return (f"The submission folder is {found.size_mb:,.1f} MB ({len(found.files):,} files), over this "
                f"assignment's limit of {limit:,} MB, so it was not run. Remove data sets, saved models and other "
                f"large files (the grader serves the data) and hand it in again.")
    return None


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_entry(entry: Path) -> bytes:
    """The entry's bytes, without following a symlink (a symlink raises OSError)."""
    fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{entry.name}: not a regular file")
        return fh.read()


def _entry_problem(entry: Path) -> str | None:
    try:
        raw = _read_entry(entry)
    except OSError:
        return f"{printable(entry.name)}: not a regular file; it was not opened. Hand in the file itself."
    if entry.suffix != ".ipynb":
        try:
            compile(raw, str(entry), "exec")
        except SyntaxError as exc:
            return f"{entry.name}: Python syntax error at line {exc.lineno}: {exc.msg}. Fix it and hand it in again."
        except ValueError as exc:
            return f"{entry.name}: cannot be read as Python ({exc})."
        return None
    try:
        import nbformat
        nbformat.validate(nbformat.reads(raw.decode("utf-8"), as_version=4))
    except Exception as exc:  # nbformat raises several unrelated types for broken files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return (f"{entry.name}: not a valid Jupyter notebook ({first}). Save it again from Jupyter "
                f"(File > Save) and hand it in again.")
    return None


def evidence_folder(out: Path, student: str, assignment: str) -> Path:
    return record_path(out, student, assignment).with_suffix(".evidence")


def refused(job: Job, assignments: dict[str, LoadedAssignment], sandbox: Sandbox, options: GradeOptions,
            entry: bool = True) -> Record | None:
    """The record of a submission that is not run at all (no entry, unknown assignment, too large, broken file;
    `entry=False`: the entry file is checked later, by `_LaterCheck`)."""
    loaded = assignments.get(job.assignment)
    if job.problem or loaded is None or job.entry is None:
        return _invalid(job, job.problem or f"unknown assignment {job.assignment}", sandbox, options)
    problem = submission_problem(job, loaded) or (_entry_problem(job.entry) if entry else None)
    return _refused_entry(job, loaded, problem, sandbox, options) if problem else None


def _refused_entry(job: Job, loaded: LoadedAssignment, problem: str, sandbox: Sandbox, options: GradeOptions) -> Record:
    return _invalid(job, problem, sandbox, options, options.runtime or
                    (loaded.spec.runtime if loaded.spec.runtime != "auto" else ""))


def _checked_later(job: Job, options: GradeOptions) -> bool:
    """Whether the entry's check waits for the job's sandbox to start (`_LaterCheck`): a quick grade's
    notebook that is a regular file."""
    return options.quick and job.entry is not None and job.entry.suffix == ".ipynb" and _regular(job.entry)


class _LaterCheck:
    """`_entry_problem` of a notebook on a thread started once the job's sandbox runs (a quick grade's
    sandbox then starts before nbformat is loaded and the notebook validated: 0.15-0.2 s); `problem()`
    waits for it. A notebook found broken gets the record it gets before any run, and its run is thrown
    away (quick runs are short: they stop at the first fit or at the quick time limit)."""

    def __init__(self, entry: Path):
        self._entry, self._problem = entry, None
        self._thread = threading.Thread(target=self._check, name="notebook check", daemon=True)
        self._lock = threading.Lock()

    def _check(self) -> None:
        self._problem = _entry_problem(self._entry)

    def start(self) -> None:
        with self._lock:
            if self._thread.ident is None:
                self._thread.start()

    def problem(self) -> str | None:
        self.start()
        self._thread.join()
        return self._problem


def grade_job(job: Job, assignments: dict[str, LoadedAssignment], sandbox: Sandbox, options: GradeOptions) -> Record:
    """Run stage (student code in a sandbox, trusted reading of its model file), then judge stage."""
    later = _LaterCheck(job.entry) if _checked_later(job, options) else None
    early = refused(job, assignments, sandbox, options, entry=later is None)
    if early is not None:
        return early
    loaded = assignments[job.assignment]
    assert job.entry is not None
    folder = evidence_folder(options.out, job.student, job.assignment)
    try:
        execute(job, loaded, sandbox,
                RunOptions(quick=options.quick, timeout=options.timeout, cache=options.cache,
                           data_root=options.data_root, seed=options.seed, memory_mb=options.memory_mb,
                           runtime=options.runtime, gpus=options.gpu_ids,
                           preload=("harness.judge", *options.preload)),
                options.data_root, folder, on_start=later.start if later is not None else None)
    except Exception:
        # a notebook not yet checked can trip what reads it before the run (the runtime's detection reads
        # its code): when it is broken, that is the student's invalid submission, not the harness's error
        if later is None or not later.problem():
            raise
    problem = later.problem() if later is not None else None
    if problem:
        shutil.rmtree(folder, ignore_errors=True)
        return _refused_entry(job, loaded, problem, sandbox, options)
    report_stage(job, "judging")
    from harness.judge import JobInfo, judge  # with the checks, numpy and scipy: loaded while the run went
    info = JobInfo(student=job.student, assignment=job.assignment, entry=job.entry.name,
                   files=submission_files(job.folder), assignment_digest=assignment_digest(loaded))
    return judge(info, loaded, folder, _holdout_signatures(loaded, options))


def rescore_all(out: Path, assignments: dict[str, LoadedAssignment], options: GradeOptions,
                progress: Callable[[Record], None] | None = None) -> list[Record]:
    """Judge every stored run under `out` again (changed rules or thresholds), starting no sandbox."""
    import jsonschema

    from harness.judge import JobInfo, judge
    records = []
    for path in record.files(out):
        try:
            old = record.load(path)
        except (ValueError, OSError, jsonschema.ValidationError):
            continue  # not a record (another tool's file) or a damaged one: nothing to judge
        folder = evidence_folder(out, old.student, old.assignment)
        loaded = assignments.get(old.assignment)
        if loaded is None or not (folder / "run.json").is_file():
            records.append(old)  # invalid submissions and harness failures have no stored run to judge
            continue
        quick = old.run.mode == "quick"
        # the resume key of the run that was judged again stays: the run itself did not change
        info = JobInfo(student=old.student, assignment=old.assignment, entry=old.submission.entry or "",
                       files=old.submission.files, assignment_digest=old.submission.assignment_digest)
        rec = judge(info, loaded, folder, _holdout_signatures(loaded, GradeOptions(
            quick=quick, out=out, cache=options.cache, data_root=options.data_root)))
        record.save(rec, path)
        reports.write_markdown(rec, path.with_suffix(".md"), loaded.spec.report)
        if progress:
            progress(rec)
        records.append(rec)
    return records


def _holdout_signatures(loaded: LoadedAssignment, options: GradeOptions):
    from harness.data import providers, standin
    spec = loaded.spec.data
    if spec.source != "keras":
        return None
    root = standin.make(spec, options.cache) if options.quick else None
    return providers.holdout_signatures(spec, options.data_root, standin_root=root)


def _dataset_identity(loaded: LoadedAssignment, options: GradeOptions) -> str | None:
    """Which data the job is graded on: the prepared dataset's manifest (a new `harness data prepare`
    changes it); in quick mode the stand-in, which the assignment file and the harness version fix."""
    if options.quick:
        return "stand-in"
    from harness.data import providers
    manifest = providers.dataset_dir(loaded.spec.data.name, options.data_root) / "manifest.json"
    try:
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    except OSError:
        return None


def assignment_digest(loaded: LoadedAssignment | None, options: GradeOptions | None = None,
                      sandbox: Sandbox | None = None) -> str | None:
    """What a grade depends on besides the submission: the assignment's files and the harness version;
    with `options`, also the mode, sandbox, runtime, timeout, memory, seed, the dataset graded on and the
    `--gpus` request (the resume cache key)."""
    if loaded is None:
        return None
    digest = hashlib.sha256(__version__.encode())
    for name in ("assignment.toml", "expected-model.json", "calibration.json"):
        path = loaded.folder / name
        if path.exists():
            digest.update(name.encode() + path.read_bytes())
    if options is not None:
        spec = loaded.spec
        settings = {
            "mode": "quick" if options.quick else "full",
            "sandbox": sandbox.name if sandbox is not None else None,
            "runtime": options.runtime or spec.runtime,  # auto: decided from the files, which the key holds
            "timeout": options.timeout or (spec.quick_timeout_seconds if options.quick else spec.timeout_seconds),
            "memory_mb": options.memory_mb or spec.memory_mb,
            "seed": options.seed,
            "dataset": _dataset_identity(loaded, options),
            "gpus": options.gpus.describe() if options.gpus is not None else None,  # `--gpus`: a CPU run is not a GPU run
        }
        digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


NOT_CACHED = ("error", "interrupted")


def _unchanged(path: Path, job: Job, assignments: dict[str, LoadedAssignment], options: GradeOptions,
               sandbox: Sandbox | None = None) -> Record | None:
    """The stored record, when nothing it depends on changed (an interrupted run resumes here)."""
    loaded = assignments.get(job.assignment)
    if not path.exists() or job.entry is None or loaded is None:
        return None
    if scan(job.folder).size_mb > loaded.spec.max_submission_mb:
        return None  # refused again at once, with its size today; never hashed
    try:
        old = record.load(path)
    except Exception:
        return None
    same = (old.run.mode == ("quick" if options.quick else "full")
            and old.run.sandbox == (sandbox.name if sandbox is not None else old.run.sandbox)
            and old.submission.files == submission_files(job.folder)
            and old.submission.entry == job.entry.name
            and old.submission.assignment_digest == assignment_digest(loaded, options, sandbox))
    return old if same and old.status not in NOT_CACHED else None


def _internal_error(job: Job, sandbox: Sandbox, options: GradeOptions, exc: BaseException) -> Record:
    base = _invalid(job, "", sandbox, options)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return base.model_copy(update={
        "status": "error",
        "summary": f"The harness failed on this submission ({detail}). This is not the student's fault: "
                   f"the operator should report it with the files in this record.",
        "evidence_problems": [traceback.format_exc()[-2000:]]})


def _operator_error(job: Job, sandbox: Sandbox, options: GradeOptions, message: str) -> Record:
    """A job the machine could not grade (e.g. its dataset is not prepared): the operator must act."""
    return _invalid(job, "", sandbox, options).model_copy(update={
        "status": "error",
        "summary": f"Not graded: {message}. This is not the student's fault: once that is done, run grade again."})


def _interrupted(job: Job, sandbox: Sandbox, options: GradeOptions) -> Record:
    return _invalid(job, "", sandbox, options).model_copy(update={
        "status": "interrupted",
        "summary": "Grading was interrupted (Ctrl-C) while this job ran, so it was not graded. This is not the "
                   "student's fault: run grade again and it resumes with this job."})


def _clean_text(value):
    """Every string made valid UTF-8 (lone surrogates from non-UTF-8 names become `\\udcff` text)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean_text(k): _clean_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_text(v) for v in value]
    return value


def _finish(rec: Record, job: Job, assignments: dict[str, LoadedAssignment], options: GradeOptions,
            sandbox: Sandbox) -> Record:
    """The record as stored: the resume key, a note on what was not copied, valid text throughout."""
    key = assignment_digest(assignments.get(job.assignment), options, sandbox)
    update: dict = {"submission": rec.submission.model_copy(update={"assignment_digest": key})}
    if job.folder.is_dir() and rec.status not in NOT_CACHED:
        found = scan(job.folder)
        skipped = [name for name in found.symlinks + found.others if job.entry is None or name != job.entry.name]
        if skipped:
            shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
            update["summary"] = (f"{rec.summary} Not copied: {shown} (symbolic links and special files are not "
                                 f"followed or opened; hand in the files themselves).")
    data = _clean_text(rec.model_copy(update=update).model_dump(mode="json"))
    return Record.model_validate(data)


def _say(message: str) -> None:
    try:
        print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr, flush=True)
    except Exception:
        pass


def _unfit(job: Job, sandbox: Sandbox, options: GradeOptions, reason: str) -> Record:
    """A job that can never run where it was sent (more GPUs or memory than there is): the operator must act."""
    return _invalid(job, "", sandbox, options).model_copy(update={
        "status": "error",
        "summary": f"Not graded: {reason}. This is not the student's fault."})


def sweep_leftovers(out: Path) -> None:
    """Before a class run: remove what a killed run left (its cgroups, mounts, job folders, record temp files)."""
    from harness.sandbox import leftovers
    try:
        removed = leftovers.sweep()
        for path in leftovers.stale_record_files(out) if out.is_dir() else []:
            path.unlink(missing_ok=True)
            removed.append(f"file {path}")
    except Exception as exc:  # a sweep that fails leaves what it found; grading goes on
        _say(f"warning: leftovers of an earlier run could not all be removed ({exc})")
        return
    if removed:
        _say(f"note: removed {len(removed)} leftover(s) of a run that was killed: " + "; ".join(removed[:5])
             + (" ..." if len(removed) > 5 else ""))


def grade_all(jobs: list[Job], assignments: dict[str, LoadedAssignment], sandbox: Sandbox,
              options: GradeOptions, progress: ProgressSink | None = None) -> tuple[list[Record], int]:
    """Grade every job; returns the records and how many could not be graded because of the harness or
    the machine (exit 3). Every per-job step (cache, run, record, report, progress) is guarded: one job's
    failure never stops the class run. Jobs run on `options.executor` (harness.executors), each when the
    resources it asks for are free; the resume cache, records, evidence and progress stay here. Ctrl-C:
    running jobs get an `interrupted` record, no job or evaluation starts, and KeyboardInterrupt is raised
    again once they are recorded. A progress sink that fails is closed and the run goes on without it."""
    from harness import executors, resources, worker
    STOPPING.clear()
    sweep_leftovers(options.out)
    counter = threading.Lock()
    internal = 0
    datasets: dict[str, str | None] = {}
    executor = executors.get(options.executor, executors.ExecutorSettings(
        jobs=options.jobs, address=options.address, machine_gpus=options.machine_gpus))
    requests = {job: resources.request_for(assignments.get(job.assignment), options.memory_mb, options.gpus)
                for job in jobs}

    def not_prepared(loaded: LoadedAssignment | None) -> str | None:
        if options.quick or loaded is None:
            return None
        name = loaded.spec.data.name
        if name not in datasets:
            from harness.data import providers
            try:
                providers.served_root(loaded.spec.data, options.data_root)
                datasets[name] = None
            except HarnessError as exc:
                datasets[name] = str(exc)
        return datasets[name]

    def graded(job: Job) -> tuple[Record, bool] | None:
        """(record, whether the harness or the machine is at fault); None when stopped before it started."""
        early = refused(job, assignments, sandbox, options, entry=not _checked_later(job, options))
        if early is not None:
            return early, False
        problem = not_prepared(assignments.get(job.assignment))
        if problem:
            return _operator_error(job, sandbox, options, problem), True
        unfit = executor.refusal(requests[job])
        if unfit:
            return _unfit(job, sandbox, options, unfit), True
        task = worker.JobTask(job=job, assignment=assignments.get(job.assignment), sandbox=sandbox, options=options,
                              submission=worker.pack_submission(job) if executor.remote else None)
        outcome = executor.run(requests[job], worker.run_task, task, lambda item: tracker.relayed(job, item))
        if outcome is None:
            return None
        if outcome.evidence is not None:
            worker.write_evidence(outcome.evidence, evidence_folder(options.out, job.student, job.assignment))
        return outcome.record, outcome.infra

    def one(job: Job) -> Record | None:
        nonlocal internal
        path, cached = None, False
        try:
            path = record_path(options.out, job.student, job.assignment)
            rec = None if options.force else _unchanged(path, job, assignments, options, sandbox)
            if rec is not None and not path.with_suffix(".md").exists():  # killed between the record and its report
                loaded = assignments.get(job.assignment)
                reports.write_markdown(rec, path.with_suffix(".md"), loaded.spec.report if loaded else None)
            cached = rec is not None
            if rec is None:
                if STOPPING.is_set():
                    return None  # not started: a resumed run grades it
                tracker.started(job)
                done = graded(job)
                if done is None:
                    tracker.finished(job, None, cached)
                    return None
                rec, infra = done
                rec = _finish(rec, job, assignments, options, sandbox)
                if infra:
                    with counter:
                        internal += 1
                record.save(rec, path)
                loaded = assignments.get(job.assignment)
                reports.write_markdown(rec, path.with_suffix(".md"), loaded.spec.report if loaded else None)
        except Exception as exc:
            with counter:
                internal += 1
            try:
                rec = _finish(_internal_error(job, sandbox, options, exc), job, assignments, options, sandbox)
                if path is not None:
                    record.save(rec, path)
            except Exception as again:
                _say(f"error: no record could be written for {job.student}/{job.assignment}: {again}")
                tracker.finished(job, None, cached)
                return None
        tracker.finished(job, rec, cached)
        return rec

    try:
        workers = executor.start(list(requests.values()))
        if len(jobs) > 1:
            _say(f"Jobs run on {executor.describe()}")
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1)))
    except BaseException:
        executor.close()
        raise
    tracker = Tracker(progress, jobs, max(1, min(workers, len(jobs) or 1)), options.out)
    futures = []
    try:
        tracker.start()
        for job in jobs:
            futures.append(pool.submit(one, job))
        pending = set(futures)
        while pending:  # waking up: a Ctrl-C delivered to another thread (one reading a socket) is seen here
            _, pending = wait(pending, timeout=0.5)
        records = [f.result() for f in futures]
    except KeyboardInterrupt:
        stop_all()  # every running job of every sandbox (the run's and the evaluations'), at once
        executor.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        wait([f for f in futures if not f.cancelled()], timeout=120)  # running jobs write "interrupted"
        tracker.finish(interrupted=True)
        executor.close()
        raise
    pool.shutdown()
    tracker.finish(interrupted=False)
    executor.close()
    return [r for r in records if r is not None], internal


def load_records(out: Path) -> list[Record]:
    found = []
    for path in record.files(out):
        try:
            found.append(record.load(path))
        except (ValueError, json.JSONDecodeError):
            continue
    return found
