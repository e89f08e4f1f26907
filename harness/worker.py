"""One job as a unit of work an executor can run anywhere: `JobTask` in, `Outcome` out.

`run_task` runs on the machine the executor chose. In this process it grades the job in place (the run
stage writes its evidence under `--out`). On another machine (`task.submission` is set) it unpacks the
submission into a temporary folder, grades it there with the same sandbox backend, and returns the kept
evidence as bytes; the caller writes the evidence and the record. Either way an exception from grading
becomes a record here (who must act is in its summary), so an executor only ever carries records back.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.discover import Job
from harness.errors import HarnessError
from harness.record import Record
from harness.resources import JobResources
from harness.run import scan
from harness.sandbox import Sandbox, leftovers
from harness.sandbox.base import STOPPING, Interrupted
from harness.spec import LoadedAssignment

MAX_EVIDENCE_BYTES = 512 * 2**20  # what comes back from a worker: the kept evidence is bounded far below this


@dataclass(frozen=True)
class JobTask:
    job: Job
    assignment: LoadedAssignment | None
    sandbox: Sandbox
    options: object  # harness.grade.GradeOptions
    version: str = __version__
    submission: dict[str, bytes] | None = None  # the submission's regular files, when it runs on another machine


@dataclass(frozen=True)
class Outcome:
    record: Record
    infra: bool  # the harness or the machine is at fault (exit 3)
    resources: JobResources
    evidence: dict[str, bytes] | None = None  # relative path -> bytes, when it ran on another machine
    host: str = ""


def pack_submission(job: Job) -> dict[str, bytes]:
    """The regular files of the submission folder (as `scan` sees them: no symlink followed, none opened)."""
    files = {}
    for name in scan(job.folder).files:
        try:
            fd = os.open(job.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as fh:
            if stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                files[name] = fh.read()
    return files


def _safe_relative(name: str) -> Path:
    path = Path(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts) or "\0" in name:
        raise ValueError(f"refused path {name!r}")
    return path


def _unpack(files: dict[str, bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = folder / _safe_relative(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            out.write(data)


def pack_folder(folder: Path, limit: int = MAX_EVIDENCE_BYTES) -> dict[str, bytes]:
    """Regular files under `folder` (symlinks skipped), at most `limit` bytes in all."""
    files, total = {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        if total + size > limit:
            raise ValueError(f"the evidence of this job is over {limit // 2**20} MB")
        total += size
        files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def write_evidence(files: dict[str, bytes], folder: Path) -> None:
    """The evidence a worker sent back, written as the local run stage would have left it."""
    import shutil
    if folder.exists():
        shutil.rmtree(folder)
    _unpack(files, folder)


def _graded(job: Job, loaded: LoadedAssignment | None, sandbox: Sandbox, options) -> tuple[Record, bool]:
    """(record, whether the harness or the machine is at fault)."""
    from harness import grade as grading
    assignments = {job.assignment: loaded} if loaded is not None else {}
    try:
        rec = grading.grade_job(job, assignments, sandbox, options)
    except Interrupted:
        return grading._interrupted(job, sandbox, options), False
    except HarnessError as exc:  # said who must act: the machine, the assignment, evaluation
        if STOPPING.is_set():
            return grading._interrupted(job, sandbox, options), False
        return grading._operator_error(job, sandbox, options, str(exc).rstrip(".")), True
    except Exception as exc:  # one job's harness failure must not stop the class run
        if STOPPING.is_set():
            return grading._interrupted(job, sandbox, options), False
        return grading._internal_error(job, sandbox, options, exc), True
    if STOPPING.is_set():  # it ran while Ctrl-C killed its sandbox: its result says nothing
        return grading._interrupted(job, sandbox, options), False
    return rec, False


def run_task(task: JobTask, resources: JobResources) -> Outcome:
    """Grade `task.job` with `resources` (its GPU ids reach the run) and return its record."""
    options = dataclasses.replace(task.options, gpu_ids=tuple(resources.gpu_ids))
    host = socket.gethostname()
    if task.submission is None:
        rec, infra = _graded(task.job, task.assignment, task.sandbox, options)
        return Outcome(record=_with_gpus(rec, resources), infra=infra, resources=resources, host=host)
    from harness import grade as grading
    problem = None
    if task.version != __version__:
        problem = (f"worker {host} has harness {__version__} and this machine {task.version}; install the same "
                   f"harness on every worker (`make install` in the same checkout)")
    elif task.sandbox.unavailable_reason():
        problem = f"the {task.sandbox.name} sandbox cannot run on worker {host}: {task.sandbox.unavailable_reason()}"
    if problem:
        rec = grading._operator_error(task.job, task.sandbox, options, problem)
        return Outcome(record=rec, infra=True, resources=resources, host=host)
    _sweep_once()
    with tempfile.TemporaryDirectory(prefix="harness-remote-") as tmp:
        leftovers.claim(Path(tmp))
        folder = Path(tmp) / "submission" / "s"
        _unpack(task.submission, folder)
        job = task.job
        entry = folder / job.entry.relative_to(job.folder) if job.entry is not None else None
        here = dataclasses.replace(job, folder=folder, entry=entry)
        out = Path(tmp) / "out"
        rec, infra = _graded(here, task.assignment, task.sandbox, dataclasses.replace(options, out=out))
        evidence = grading.evidence_folder(out, job.student, job.assignment)
        files = pack_folder(evidence) if evidence.is_dir() else {}
    return Outcome(record=_with_gpus(rec, resources), infra=infra, resources=resources, evidence=files, host=host)


_swept: set[int] = set()


def _sweep_once() -> None:
    """A worker process sweeps what killed runs left on its machine before its first job."""
    if os.getpid() in _swept:
        return
    _swept.add(os.getpid())
    try:
        leftovers.sweep()
    except Exception:  # what is left stays; the job runs
        pass


def _with_gpus(rec: Record, resources: JobResources) -> Record:
    return rec.model_copy(update={"run": rec.run.model_copy(update={"gpus": list(resources.gpu_ids)})})
