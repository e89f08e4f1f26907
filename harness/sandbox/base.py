"""The sandbox contract: a request in, a result out, every process gone afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from harness.errors import UsageError
from harness.sandbox import limits as cgroups


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 8192
    processes: int = 1024
    file_size_mb: int = 2048
    workspace_mb: int = 1024
    tmp_mb: int = 1024
    evidence_mb: int = 2048
    grace_seconds: float = 5.0


@dataclass(frozen=True)
class Layout:
    """Where things are as the job sees them (inside paths)."""

    workspace: str
    evidence: str
    probe: str
    home: str
    python: str


@dataclass(frozen=True)
class SandboxRequest:
    """What to run. Paths in `argv`, `env` and `workdir` are as seen inside the sandbox.

    `stage` is copied into the writable workspace before `argv` runs; `mounts` are bound on
    top, read-only unless marked writable; `job_dir/evidence` is the one place the job writes
    that outlives it.
    """

    argv: list[str]
    job_dir: Path
    stage: Path
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 600.0
    limits: Limits = field(default_factory=Limits)
    log: Path | None = None


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None
    timed_out: bool
    memory_exceeded: bool
    wall_seconds: float
    peak_memory_mb: float | None
    output_tail: str
    sandbox: str
    evidence_overflow: bool = False
    timeout_seconds: float | None = None


class Sandbox(Protocol):
    name: str
    isolates: bool

    def unavailable_reason(self) -> str | None:
        """None when usable here, else a message saying what to install."""

    def layout(self, job_dir: Path) -> Layout:
        """The inside paths of a job whose host files live in `job_dir`."""

    def run(self, request: SandboxRequest) -> SandboxResult: ...


_REGISTRY: dict[str, Callable[[], Sandbox]] = {}


def register(name: str, factory: Callable[[], Sandbox]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Sandbox:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UsageError(f"unknown sandbox {name!r}; choose one of: {', '.join(names())}") from None


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _folder_mb(folder: Path) -> float:
    total = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    except OSError:
        pass
    return total / 2**20


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


_RUNNING: set[subprocess.Popen] = set()


def stop_all() -> None:
    """Kill every job that is still running (an interrupted class run): whole trees, at once."""
    for proc in list(_RUNNING):
        _signal_all([proc.pid, *_descendants(proc.pid)], signal.SIGKILL)


def supervise(argv: list[str], request: SandboxRequest, name: str, env: dict[str, str] | None = None,
              ) -> SandboxResult:
    """Start `argv` in its own cgroup, enforce the wall clock, and leave no process behind.

    On timeout every process of the job gets SIGTERM, then SIGKILL after the grace period.
    """
    group = cgroups.create(request.limits)
    # without a pids cgroup, RLIMIT_NPROC is the fallback (it does not bind root)
    preexec = set_rlimits(request.limits, nproc=not group.enforced and os.getuid() != 0)
    log = open(request.log, "wb") if request.log else subprocess.DEVNULL
    start = time.monotonic()
    timed_out = overflowed = False
    try:
        proc = subprocess.Popen(group.wrap(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env if env is not None else {},
                                start_new_session=True, preexec_fn=preexec)
        _RUNNING.add(proc)
        deadline = start + request.timeout
        while proc.poll() is None and time.monotonic() < deadline and not overflowed:
            try:
                proc.wait(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                # the evidence folder is a host folder: a job may not fill the disk through it
                overflowed = _folder_mb(request.job_dir / "evidence") > request.limits.evidence_mb
        if proc.poll() is None and not overflowed:
            timed_out = True
            tree = group.pids() or _descendants(proc.pid)
            _signal_all(tree, signal.SIGTERM)
            try:
                proc.wait(timeout=request.limits.grace_seconds)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left (daemons, processes ignoring SIGTERM) dies now
        for _ in range(50):
            left = group.pids() or ([proc.pid] + _descendants(proc.pid) if proc.poll() is None else [])
            if not left:
                break
            _signal_all(left, signal.SIGKILL)
            time.sleep(0.05)
        exit_code = proc.wait()
        _RUNNING.discard(proc)
        wall = time.monotonic() - start
        peak = group.peak_memory_mb()
        memory_exceeded = group.oom_killed()
    finally:
        if log is not subprocess.DEVNULL:
            log.close()
        group.remove()
    tail = ""
    if request.log and request.log.exists():
        with open(request.log, "rb") as fh:
            fh.seek(max(0, request.log.stat().st_size - 4000))
            tail = fh.read().decode("utf-8", "replace")
    if overflowed:
        tail += f"\n[harness] the job wrote more than {request.limits.evidence_mb} MB of evidence and was stopped\n"
    return SandboxResult(exit_code=exit_code, timed_out=timed_out, memory_exceeded=memory_exceeded,
                         wall_seconds=round(wall, 3), peak_memory_mb=peak, output_tail=tail, sandbox=name,
                         evidence_overflow=overflowed, timeout_seconds=request.timeout)


def set_rlimits(limits: Limits, nproc: bool) -> Callable[[], None]:
    """rlimits set in the child before exec: file size always; processes when no cgroup counts them."""
    import resource

    def apply() -> None:
        size = limits.file_size_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply
