"""The run stage of a job: sandboxed run, then trusted reading of the model file it left.

Everything the judge stage needs is stored in the job's evidence folder next to its record, so
a finished run can be judged again (`harness rescore`) without running student code:

    events.jsonl, driver.jsonl, sig-*.npy, files-*.json   the probe's claims (copied, size-limited)
    executed.ipynb                                         the notebook with its outputs (untrusted: the report
                                                           reads it size-limited, validated, sanitised)
    output-tail.log                                        the end of what the run printed
    code/                                                  the submission's code, for the static reading
    run.json                                               what the sandbox measured (written here)
    evaluation.json, predictions.npy                       what trusted evaluation measured (written here)
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict

from harness import evidence, runtime
from harness.discover import Job
from harness.evaluate import Evaluation, ModelReader, claimed_accuracy, describe, evaluate
from harness.progress import report_stage
from harness.record import Metrics, write_atomic
from harness.run import Prepared, RunOptions, prepare, run
from harness.sandbox import Sandbox, SandboxResult
from harness.spec import LoadedAssignment

KEPT_EVIDENCE = ("events.jsonl", "driver.jsonl", "sig-*.npy", "files-*.json", "executed.ipynb")
MAX_KEPT_BYTES = 64 * 2**20  # per file; evidence.MAX_FILE_BYTES reads no more
MAX_KEPT_TOTAL = 256 * 2**20  # all kept evidence of one job
DROPPED_FILE = "dropped.txt"  # evidence files not kept (over the limits): the judge reports them
MAX_CODE_BYTES = 20 * 2**20
CODE_SUFFIXES = (".py", ".ipynb")
RUN_FILE, EVALUATION_FILE, PREDICTIONS_FILE, CODE_DIR = "run.json", "evaluation.json", "predictions.npy", "code"
START_MODEL = "model-start.keras"  # the probe saves the model at its first fit: read when the run is cut short


class RunRecord(BaseModel):
    """What the sandbox measured about the student's run (written by the harness, never by the job)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = 1
    mode: str
    runtime: str
    runtime_reason: str = ""  # absent in runs stored before the runtime was chosen from the code
    entry: str
    result: dict


def result_of(run_record: RunRecord) -> SandboxResult:
    return SandboxResult(**run_record.result)


def _keep(prepared: Prepared, result: SandboxResult, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    kept, dropped = 0, []
    for pattern in KEPT_EVIDENCE:
        for source in sorted((prepared.job_dir / "evidence").glob(pattern)):
            if not source.is_file() or source.is_symlink():
                continue
            size = source.stat().st_size
            if size >= MAX_KEPT_BYTES or kept + size > MAX_KEPT_TOTAL:
                dropped.append(source.name)  # a run may not fill the grader's disk through what is kept
                continue
            kept += size
            shutil.copyfile(source, target / source.name)
    if dropped:
        (target / DROPPED_FILE).write_text("\n".join(dropped[:1000]) + "\n")
    (target / "output-tail.log").write_text(result.output_tail, encoding="utf-8", errors="replace")
    code, total = target / CODE_DIR, 0
    for path in sorted(prepared.stage.rglob("*")):
        if path.suffix in CODE_SUFFIXES and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            if total > MAX_CODE_BYTES:
                break
            copy = code / path.relative_to(prepared.stage)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)


def execute(job: Job, loaded: LoadedAssignment, sandbox: Sandbox, options: RunOptions, data_root: Path | None,
            target: Path, on_start: Callable[[], None] | None = None) -> None:
    """Run the job, read its model file with trusted code, and store everything in `target`; `on_start` is
    called once the student's sandbox has started."""
    assert job.entry is not None
    with tempfile.TemporaryDirectory(prefix="harness-job-") as tmp:
        prepared = prepare(job, Path(tmp))
        # decided from the staged copy (regular files only), before anything runs; every sandbox of the
        # job (the run, the model reader, the evaluator) then sees the assignment with that runtime pinned
        choice = runtime.choose(options.runtime, loaded.spec.runtime,
                                prepared.stage / job.entry.relative_to(job.folder))
        loaded = loaded.model_copy(update={"spec": loaded.spec.model_copy(update={"runtime": choice.runtime})})
        # quick mode: the model reader starts while the student's code runs (once it has started, so that the
        # reader's start does not delay the run's); so does the judge's leak check's import
        wait = options.timeout or loaded.spec.quick_timeout_seconds
        reader = ModelReader(loaded, sandbox, wait=float(wait), gpus=options.gpus) if options.quick else None
        try:
            _execute(job, loaded, sandbox, options, data_root, target, reader, prepared, choice, on_start)
        finally:
            if reader is not None:
                reader.close()


def _execute(job: Job, loaded: LoadedAssignment, sandbox: Sandbox, options: RunOptions, data_root: Path | None,
             target: Path, reader: ModelReader | None, prepared: Prepared, choice: runtime.Choice,
             on_start: Callable[[], None] | None) -> None:
    report_stage(job, "running", prepared.job_dir / "evidence")

    def started() -> None:
        if on_start is not None:
            on_start()
        if reader is not None:
            reader.start()
        leak_check = ("scipy.spatial",) if options.quick and loaded.spec.data.source == "keras" else ()
        _import_in_background(*options.preload, *leak_check)

    result = run(job, loaded, sandbox, prepared, options, on_start=started)
    report_stage(job, "evaluating")
    _keep(prepared, result, target)
    write_atomic(target / RUN_FILE, RunRecord(
        mode="quick" if options.quick else "full", runtime=choice.runtime, runtime_reason=choice.reason,
        entry=job.entry.relative_to(job.folder).as_posix(),
        result=dataclasses.asdict(result)).model_dump_json(indent=2))
    ev = evidence.read(prepared.job_dir / "evidence")
    final = _model_file(prepared.job_dir / "evidence" / "model.keras")
    start = _model_file(prepared.job_dir / "evidence" / START_MODEL)
    raw = None
    if reader is not None:
        evaluation = reader.read(final or start)
    elif final is not None and not result.timed_out:
        evaluation, raw = evaluate(loaded, ev, sandbox, data_root, model_file=final, gpus=options.gpus)
    else:  # cut short or no final model: what was built can still be read; nothing is scored
        read = describe(loaded, start, sandbox, gpus=options.gpus)
        evaluation = read.model_copy(update={
            "loaded": False, "metrics": Metrics(claimed_accuracy=claimed_accuracy(ev)),
            "model_error": read.error,
            "error": "the run was stopped at the time limit before it saved a trained model" if result.timed_out
            else "the run did not leave a trained model"})
    write_atomic(target / EVALUATION_FILE, evaluation.model_dump_json(indent=2))
    if raw is not None:
        import numpy as np
        np.save(target / PREDICTIONS_FILE, raw)


def _import_in_background(*names: str) -> None:
    """Import, one after the other on a thread, modules the stages after the run will need, so that their
    loading (a second for the judge's checks and scipy) overlaps the sandboxed run; their own imports then
    wait for it, or find it done."""
    names = tuple(name for name in names if name not in sys.modules)
    if not names:
        return

    def load() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:
                pass  # the stage's own import reports it

    threading.Thread(target=load, name="import " + ", ".join(names), daemon=True).start()


def _model_file(path: Path) -> Path | None:
    return path if path.is_file() and not path.is_symlink() else None


def load_stored(folder: Path) -> tuple[RunRecord, Evaluation]:
    """The run stage's measurements, for the judge stage (raises ValueError when missing or invalid)."""
    try:
        run_record = RunRecord.model_validate_json((folder / RUN_FILE).read_text())
        evaluation = Evaluation.model_validate_json((folder / EVALUATION_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder}: the stored run is missing or unreadable ({exc}); grade it again") from None
    return run_record, evaluation


def stored_entry(folder: Path, run_record: RunRecord) -> Path | None:
    path = folder / CODE_DIR / run_record.entry
    return path if path.is_file() and not path.is_symlink() else None
