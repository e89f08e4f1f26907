"""Grade jobs: the run stage (`execute`: sandboxed run, trusted reading and scoring of the model
file) → the judge stage (`judge`: checks → record) → reports. One module per stage; this file only
joins them. One broken or hostile submission never stops a class run."""

from __future__ import annotations

import hashlib
import json
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import jsonschema

from harness import __version__, record, reports
from harness.discover import Job
from harness.execute import execute
from harness.judge import JobInfo, judge
from harness.record import Metrics, Record, RunInfo, SubmissionInfo
from harness.run import RunOptions, submission_files
from harness.sandbox import Sandbox
from harness.sandbox.base import stop_all
from harness.spec import LoadedAssignment


@dataclass(frozen=True)
class GradeOptions:
    quick: bool
    out: Path
    cache: Path
    timeout: float | None = None
    data_root: Path | None = None
    jobs: int = 1
    seed: int | None = None
    force: bool = False
    memory_mb: int | None = None


def record_path(out: Path, student: str, assignment: str) -> Path:
    return out / student / f"{assignment}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _invalid(job: Job, message: str, sandbox: Sandbox, options: GradeOptions, runtime: str = "") -> Record:
    files = submission_files(job.folder) if job.folder.is_dir() else {}
    return Record(
        harness_version=__version__, created_at=_now(), student=job.student, assignment=job.assignment,
        status="invalid-submission", score=0, max_score=0, summary=message, checks=[], findings=[],
        model=None, metrics=Metrics(), history={},
        run=RunInfo(sandbox=sandbox.name, runtime=runtime, mode="quick" if options.quick else "full",
                    wall_seconds=0, peak_memory_mb=None, exit_code=None),
        submission=SubmissionInfo(entry=job.entry.name if job.entry else None, files=files))


def _entry_problem(entry: Path) -> str | None:
    if entry.suffix != ".ipynb":
        try:
            compile(entry.read_bytes(), str(entry), "exec")
        except SyntaxError as exc:
            return f"{entry.name}: Python syntax error at line {exc.lineno}: {exc.msg}. Fix it and hand it in again."
        except ValueError as exc:
            return f"{entry.name}: cannot be read as Python ({exc})."
        return None
    try:
        import nbformat
        nbformat.validate(nbformat.read(entry, as_version=4))
    except Exception as exc:  # nbformat raises several unrelated types for broken files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return (f"{entry.name}: not a valid Jupyter notebook ({first}). Save it again from Jupyter "
                f"(File > Save) and hand it in again.")
    return None


def evidence_folder(out: Path, student: str, assignment: str) -> Path:
    return record_path(out, student, assignment).with_suffix(".evidence")


def grade_job(job: Job, assignments: dict[str, LoadedAssignment], sandbox: Sandbox, options: GradeOptions) -> Record:
    """Run stage (student code in a sandbox, trusted reading of its model file), then judge stage."""
    loaded = assignments.get(job.assignment)
    if job.problem or loaded is None or job.entry is None:
        return _invalid(job, job.problem or f"unknown assignment {job.assignment}", sandbox, options)
    problem = _entry_problem(job.entry)
    if problem:
        return _invalid(job, problem, sandbox, options, loaded.spec.runtime)
    folder = evidence_folder(options.out, job.student, job.assignment)
    execute(job, loaded, sandbox,
            RunOptions(quick=options.quick, timeout=options.timeout, cache=options.cache,
                       data_root=options.data_root, seed=options.seed, memory_mb=options.memory_mb),
            options.data_root, folder)
    info = JobInfo(student=job.student, assignment=job.assignment, entry=job.entry.name,
                   files=submission_files(job.folder), assignment_digest=assignment_digest(loaded))
    return judge(info, loaded, folder, _holdout_signatures(loaded, options))


def rescore_all(out: Path, assignments: dict[str, LoadedAssignment], options: GradeOptions,
                progress: Callable[[Record], None] | None = None) -> list[Record]:
    """Judge every stored run under `out` again (changed rules or thresholds), starting no sandbox."""
    records = []
    for path in sorted(out.glob("*/*.json")):
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
        info = JobInfo(student=old.student, assignment=old.assignment, entry=old.submission.entry or "",
                       files=old.submission.files, assignment_digest=assignment_digest(loaded))
        rec = judge(info, loaded, folder, _holdout_signatures(loaded, GradeOptions(
            quick=quick, out=out, cache=options.cache, data_root=options.data_root)))
        record.save(rec, path)
        reports.write_markdown(rec, path.with_suffix(".md"))
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


def assignment_digest(loaded: LoadedAssignment | None) -> str | None:
    """What grading depends on besides the submission: the assignment's files and the harness version."""
    if loaded is None:
        return None
    digest = hashlib.sha256(__version__.encode())
    for name in ("assignment.toml", "expected-model.json", "calibration.json"):
        path = loaded.folder / name
        if path.exists():
            digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()


def _unchanged(path: Path, job: Job, assignments: dict[str, LoadedAssignment], options: GradeOptions) -> Record | None:
    """The stored record, when nothing it depends on changed (an interrupted run resumes here)."""
    if not path.exists() or job.entry is None:
        return None
    try:
        old = record.load(path)
    except Exception:
        return None
    same = (old.run.mode == ("quick" if options.quick else "full")
            and old.submission.files == submission_files(job.folder)
            and old.submission.entry == job.entry.name
            and old.submission.assignment_digest == assignment_digest(assignments.get(job.assignment)))
    return old if same and old.status != "error" else None


def _internal_error(job: Job, sandbox: Sandbox, options: GradeOptions, exc: BaseException) -> Record:
    base = _invalid(job, "", sandbox, options)
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return base.model_copy(update={
        "status": "error",
        "summary": f"The harness failed on this submission ({detail}). This is not the student's fault: "
                   f"the operator should report it with the files in this record.",
        "evidence_problems": [traceback.format_exc()[-2000:]]})


def grade_all(jobs: list[Job], assignments: dict[str, LoadedAssignment], sandbox: Sandbox,
              options: GradeOptions, progress: Callable[[Job, Record], None] | None = None) -> tuple[list[Record], int]:
    """Grade every job; returns the records and how many failed inside the harness itself."""
    internal = 0

    def one(job: Job) -> Record:
        nonlocal internal
        path = record_path(options.out, job.student, job.assignment)
        cached = None if options.force else _unchanged(path, job, assignments, options)
        if cached is not None:
            if progress:
                progress(job, cached)
            return cached
        try:
            rec = grade_job(job, assignments, sandbox, options)
        except Exception as exc:  # one job's harness failure must not stop the class run
            internal += 1
            rec = _internal_error(job, sandbox, options, exc)
        record.save(rec, path)
        reports.write_markdown(rec, path.with_suffix(".md"))
        if progress:
            progress(job, rec)
        return rec

    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs))
    try:
        records = list(pool.map(one, jobs))
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_all()
        raise
    pool.shutdown()
    return records, internal


def load_records(out: Path) -> list[Record]:
    found = []
    for path in sorted(out.glob("*/*.json")):
        try:
            found.append(record.load(path))
        except (ValueError, json.JSONDecodeError):
            continue
    return found
