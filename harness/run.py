"""Prepare and run one job in a sandbox: workspace copy, served data, probe, limits.

Nothing here looks at what the student's code did; that is `evidence` and `checks`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.data import serve as serving
from harness.data import standin
from harness.discover import Job, printable
from harness.errors import InfrastructureError
from harness.sandbox import Limits, Mount, Sandbox, SandboxRequest, SandboxResult
from harness.sandbox.base import numpy_env, tf_log_level
from harness.spec import LoadedAssignment

MAX_SUBMISSION_MB = 200  # the default of an assignment's `max_submission_mb`


@dataclass(frozen=True)
class RunOptions:
    quick: bool
    timeout: float | None
    cache: Path
    data_root: Path | None = None
    seed: int | None = None
    memory_mb: int | None = None
    runtime: str | None = None  # the command line's choice (`grade --runtime`); None: assignment, then code
    gpus: tuple[str, ...] = ()  # GPU device ids the pool gave this job (also its evaluation's)
    preload: tuple[str, ...] = ()  # modules the stages after the run need: imported while it runs


@dataclass(frozen=True)
class Prepared:
    job_dir: Path
    stage: Path
    files: dict[str, str]


def sha256(path: Path) -> str:
    """The file's hash, opened without following a symlink (a symlink raises OSError)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file")
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SKIPPED_PARTS = ("__pycache__", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Scan:
    """A submission folder as `lstat` sees it: nothing is followed, nothing is opened."""

    files: list[str]  # relative paths of regular files, as on disk
    size_bytes: int
    symlinks: list[str]  # relative paths of symlinks, printable; never followed
    others: list[str]  # FIFOs, sockets, devices: skipped

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 2**20


MAX_DEPTH = 32  # folders below this many levels are listed (`others`), not walked: os.walk recurses per level


def _walk(folder: Path):
    """os.walk (top down, no link followed) without its recursion; a folder at MAX_DEPTH is yielded
    with its sub-folders removed, which the caller lists."""
    todo = [(str(folder), 0)]
    while todo:
        top, level = todo.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        dirnames, filenames = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # as os.walk: a symlinked folder is a folder (scan lists it)
            except OSError:
                is_dir = False
            (dirnames if is_dir else filenames).append(entry.name)
        yield top, dirnames, filenames, level
        todo.extend((os.path.join(top, name), level + 1) for name in reversed(dirnames))


def scan(folder: Path) -> Scan:
    files, symlinks, others, size = [], [], [], 0
    for dirpath, dirnames, filenames, level in _walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if level >= MAX_DEPTH:
            others += [printable(str(rel / name)) + "/" for name in sorted(dirnames)
                       if not os.path.islink(os.path.join(dirpath, name))]
            dirnames[:] = [name for name in dirnames if os.path.islink(os.path.join(dirpath, name))]
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):  # os.walk lists a symlinked folder as a folder
                symlinks.append(printable(str(rel / name)))
                dirnames.remove(name)
            elif name in SKIPPED_PARTS:
                dirnames.remove(name)
        dirnames.sort()
        for name in sorted(filenames):
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                symlinks.append(printable(str(rel / name)))
            elif stat.S_ISREG(info.st_mode):
                files.append(str(rel / name))
                size += info.st_size
            else:
                others.append(printable(str(rel / name)))
    return Scan(files=files, size_bytes=size, symlinks=symlinks, others=others)


HASHED_UP_TO_MB = 1024  # a larger folder is refused anyway (max_submission_mb): its files are listed, not hashed


def submission_files(folder: Path) -> dict[str, str]:
    """{printable relative path: sha256} of the regular files; symlinks are skipped, never followed."""
    out = {}
    found = scan(folder)
    if found.size_mb > HASHED_UP_TO_MB:
        return {printable(name): "" for name in found.files}
    for name in found.files:
        try:
            out[printable(name)] = sha256(folder / name)
        except OSError:
            continue
    return out


def folder_size_mb(folder: Path) -> float:
    return scan(folder).size_mb


def prepare(job: Job, job_dir: Path) -> Prepared:
    """Copy the student's folder (regular files only, no symlink followed) into the job's stage folder."""
    stage = job_dir / "stage"
    stage.mkdir(parents=True)
    for name in scan(job.folder).files:
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(job.folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as source, open(target, "wb") as out:
            if stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                shutil.copyfileobj(source, out, 1 << 20)
    (job_dir / "evidence").mkdir()
    return Prepared(job_dir=job_dir, stage=stage, files=submission_files(stage))


def dataset_root(assignment: LoadedAssignment, options: RunOptions) -> tuple[Path, bool]:
    """(folder with the dataset files, whether it is a stand-in)."""
    if options.quick:
        return standin.make(assignment.spec.data, options.cache), True
    from harness.data import providers
    return providers.served_root(assignment.spec.data, options.data_root), False


def tfds_dir(assignment: LoadedAssignment, options: RunOptions, root: Path, is_standin: bool) -> Path | None:
    """The offline TFDS data directory of the served splits (built once per prepared dataset or stand-in)."""
    data = assignment.spec.data
    if not data.tfds_name:
        return None
    from harness.data import providers, tfds_serve
    identity = "standin" if is_standin else (providers.identity(data.name, options.data_root) or "")
    return tfds_serve.build(data, root, options.cache, identity)


def mapped_mounts(job: Job, assignment: LoadedAssignment, prepared: Prepared, layout, root: Path,
                  isolated: bool) -> list[Mount]:
    """Served splits bound at the paths the submission reads from its author's machine (harness.data.paths)."""
    from harness import static
    from harness.data import paths
    if job.entry is None:
        return []
    found = static.units(prepared.stage / job.entry.relative_to(job.folder))
    stage = prepared.stage.resolve()

    def exists(relative: str) -> bool:
        try:
            return (stage / relative).resolve().is_relative_to(stage) and os.path.lexists(stage / relative)
        except (OSError, ValueError):
            return True

    mounts = []
    for mapped in paths.plan(assignment.spec.data, found, layout.workspace, layout.home, exists, isolated):
        mounts += [Mount(root / split, target) for target, split in mapped.splits]
    return mounts


def run(job: Job, assignment: LoadedAssignment, sandbox: Sandbox, prepared: Prepared,
        options: RunOptions, on_start: Callable[[], None] | None = None) -> SandboxResult:
    """Run the job's entry with the probe in `sandbox`; `on_start` is called once it has started."""
    spec = assignment.spec
    layout = sandbox.layout(prepared.job_dir)
    root, is_standin = dataset_root(assignment, options)
    served = serving.serve(spec.data, root, layout, standin=is_standin,
                           tfds_dir=tfds_dir(assignment, options, root, is_standin))
    mounts = served.mounts + mapped_mounts(job, assignment, prepared, layout, root, sandbox.isolates)
    python_bin = str(Path(layout.python).parent)  # the sandbox's python: this one, or the grading image's
    env = {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": layout.home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": layout.probe,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "TF_CPP_MIN_LOG_LEVEL": tf_log_level(options.gpus),
        **numpy_env(),
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
        mounts=mounts,
        env=env,
        timeout=float(timeout),
        limits=Limits(memory_mb=options.memory_mb or spec.memory_mb,
                      workspace_mb=max(512, spec.max_submission_mb * 2)),
        log=prepared.job_dir / "output.log",
        gpus=tuple(options.gpus),
        label=f"{job.student}/{job.assignment}",
        on_start=on_start,
    )
    return sandbox.run(request)
