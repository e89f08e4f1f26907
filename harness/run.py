"""Prepare and run one job in a sandbox: workspace copy, served data, probe, limits.

Nothing here looks at what the student's code did; that is `evidence` and `checks`.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.data import serve as serving
from harness.data import standin
from harness.discover import Job
from harness.errors import InfrastructureError
from harness.sandbox import Limits, Sandbox, SandboxRequest, SandboxResult
from harness.spec import LoadedAssignment

MAX_SUBMISSION_MB = 200


@dataclass(frozen=True)
class RunOptions:
    quick: bool
    timeout: float | None
    cache: Path
    data_root: Path | None = None
    seed: int | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Prepared:
    job_dir: Path
    stage: Path
    files: dict[str, str]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def submission_files(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts \
                and ".ipynb_checkpoints" not in path.parts:
            out[str(path.relative_to(folder))] = sha256(path)
    return out


def folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def prepare(job: Job, job_dir: Path) -> Prepared:
    """Copy the student's folder (regular files only) into the job's stage folder."""
    stage = job_dir / "stage"
    stage.mkdir(parents=True)
    for name in submission_files(job.folder):
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(job.folder / name, target)
    (job_dir / "evidence").mkdir()
    return Prepared(job_dir=job_dir, stage=stage, files=submission_files(stage))


def dataset_root(assignment: LoadedAssignment, options: RunOptions) -> tuple[Path, bool]:
    """(folder with the dataset files, whether it is a stand-in)."""
    if options.quick:
        return standin.make(assignment.spec.data, options.cache), True
    from harness.data import providers
    return providers.served_root(assignment.spec.data, options.data_root), False


def run(job: Job, assignment: LoadedAssignment, sandbox: Sandbox, prepared: Prepared,
        options: RunOptions) -> SandboxResult:
    spec = assignment.spec
    layout = sandbox.layout(prepared.job_dir)
    root, is_standin = dataset_root(assignment, options)
    served = serving.serve(spec.data, root, layout, standin=is_standin)
    python_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": layout.home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": layout.probe,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HARNESS_EVIDENCE": layout.evidence,
        "HARNESS_WORKSPACE": layout.workspace,
        "HARNESS_QUICK": "1" if options.quick else "0",
        "HARNESS_RUNTIME": spec.runtime,
        **served.env,
    }
    if spec.runtime == "legacy":
        env["TF_USE_LEGACY_KERAS"] = "1"
    if options.seed is not None:
        env["HARNESS_SEED"] = str(options.seed)
        env["PYTHONHASHSEED"] = str(options.seed)
    if job.entry is None:
        raise InfrastructureError(f"job {job.student}/{job.assignment} has no entry file")
    entry = f"{layout.workspace}/{job.entry.relative_to(job.folder).as_posix()}"
    driver = "run_notebook.py" if job.entry.suffix == ".ipynb" else "run_module.py"
    timeout = options.timeout or (spec.quick_timeout_seconds if options.quick else spec.timeout_seconds)
    request = SandboxRequest(
        argv=[layout.python, f"{layout.probe}/{driver}", entry],
        job_dir=prepared.job_dir,
        stage=prepared.stage,
        mounts=served.mounts,
        env=env,
        timeout=float(timeout),
        limits=Limits(memory_mb=options.memory_mb or spec.memory_mb, workspace_mb=max(512, MAX_SUBMISSION_MB * 2)),
        log=prepared.job_dir / "output.log",
    )
    return sandbox.run(request)
