"""Grade jobs: prepare → run → (evaluate) → check → record. One module per stage; this file
only joins them. One broken or hostile submission never stops a class run."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from harness import __version__, checks, evidence, record, reports
from harness.evaluate import claimed_accuracy, evaluate
from harness.discover import Job
from harness.record import Check, Metrics, ModelSummary, Record, RunInfo, SubmissionInfo
from harness.run import Prepared, RunOptions, prepare, run, submission_files
from harness.sandbox import Sandbox, SandboxResult
from harness.sandbox.base import stop_all
from harness.spec import LoadedAssignment

KEPT_EVIDENCE = ("events.jsonl", "driver.jsonl", "sig-*.npy", "files-*.json")
MAX_KEPT_BYTES = 256 * 2**20


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


def _status(ctx: checks.Context, quick: bool, what: str | None) -> str:
    result, ev = ctx.result, ctx.evidence
    if result.timed_out:
        return "timeout"
    if result.memory_exceeded:
        return "memory-limit"
    if what is not None:
        return "error"
    if not ev.fits and ev.last_model() is None:
        return "no-model"
    if not quick and ev.model_file is None:
        return "no-model"
    return "graded"


def _summary(status: str, checked: list[Check], what: str | None, where: str | None) -> str:
    head = {
        "graded": "Graded.",
        "timeout": "The run hit the time limit.",
        "memory-limit": "The run hit the memory limit.",
        "error": f"The run stopped with an error{' at ' + where if where else ''}: {what}",
        "no-model": "No trained model was found: the submission never finished a fit.",
    }[status]
    failed = [c.id for c in checked if c.status in ("fail", "error")]
    tail = f" Not passed: {', '.join(failed)}." if failed else (" All checks passed." if checked else "")
    return head + tail


def _model(ev: evidence.Evidence) -> ModelSummary | None:
    table = ev.last_model()
    if not table:
        return None
    try:
        return ModelSummary.model_validate({
            "total_params": table.get("total_params"), "trainable_params": table.get("trainable_params"),
            "layers": [{k: layer.get(k) for k in ("name", "type", "output_shape", "params")}
                       for layer in table.get("layers") or []]})
    except Exception:
        return None


def _keep_evidence(prepared: Prepared, result: SandboxResult, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for pattern in KEPT_EVIDENCE:
        for source in (prepared.job_dir / "evidence").glob(pattern):
            if source.is_file() and not source.is_symlink() and source.stat().st_size < MAX_KEPT_BYTES:
                shutil.copyfile(source, target / source.name)
    (target / "output-tail.log").write_text(result.output_tail)


def grade_job(job: Job, assignments: dict[str, LoadedAssignment], sandbox: Sandbox, options: GradeOptions) -> Record:
    loaded = assignments.get(job.assignment)
    if job.problem or loaded is None or job.entry is None:
        return _invalid(job, job.problem or f"unknown assignment {job.assignment}", sandbox, options)
    problem = _entry_problem(job.entry)
    if problem:
        return _invalid(job, problem, sandbox, options, loaded.spec.runtime)
    with tempfile.TemporaryDirectory(prefix="harness-job-") as tmp:
        prepared = prepare(job, Path(tmp))
        result = run(job, loaded, sandbox, prepared,
                     RunOptions(quick=options.quick, timeout=options.timeout, cache=options.cache,
                                data_root=options.data_root, seed=options.seed,
                                memory_mb=options.memory_mb))
        ev = evidence.read(prepared.job_dir / "evidence")
        _keep_evidence(prepared, result, record_path(options.out, job.student, job.assignment).with_suffix(".evidence"))
        evaluation = None
        if not options.quick and not result.timed_out:
            evaluation = evaluate(loaded, ev, sandbox, options.data_root)
            if evaluation.predictions is not None:
                np.save(record_path(options.out, job.student, job.assignment).with_suffix(".evidence")
                        / "predictions.npy", evaluation.predictions)
        ctx = checks.Context(assignment=loaded, evidence=ev, result=result, quick=options.quick,
                             evaluation=evaluation, entry=prepared.stage / job.entry.relative_to(job.folder),
                             holdout_signatures=_holdout_signatures(loaded, options))
        checked, findings = checks.run_all(ctx)
    what, where = checks.builtin.ending(ctx)
    status = _status(ctx, options.quick, what)
    counted = [c for c in checked if c.status != "skip"]
    return Record(
        harness_version=__version__, created_at=_now(), student=job.student, assignment=job.assignment,
        status=status, score=round(sum(c.points for c in counted), 2),
        max_score=round(sum(c.max_points for c in counted), 2), summary=_summary(status, checked, what, where),
        checks=checked, findings=findings, model=_model(ev),
        metrics=evaluation.metrics if evaluation else Metrics(claimed_accuracy=claimed_accuracy(ev)),
        history=ev.history(),
        run=RunInfo(sandbox=result.sandbox, runtime=loaded.spec.runtime, mode="quick" if options.quick else "full",
                    wall_seconds=result.wall_seconds, peak_memory_mb=result.peak_memory_mb,
                    exit_code=result.exit_code, evaluation_seconds=evaluation.seconds if evaluation else None),
        submission=SubmissionInfo(entry=job.entry.name, files=prepared.files,
                                  assignment_digest=assignment_digest(loaded)),
        evidence_problems=ev.problems)


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
