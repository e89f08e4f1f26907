"""What a machine can hold and what one job asks for: CPU cores, memory, GPU slots.

`Capacity` is read once from the machine (affinity and cgroup CPU quota, cgroup memory limit or
MemTotal, GPUs from `CUDA_VISIBLE_DEVICES` or `nvidia-smi -L`); a job asks for a `JobRequest` (its
assignment's CPUs, memory limit and GPUs); `Pool` hands out `JobResources` (concrete GPU ids included)
so that the jobs running at once never ask for more than the capacity, and no two share a GPU. A job
that can never fit is told so at once (`Pool.refusal`) rather than waiting for ever.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class JobRequest:
    """What one job asks for while it runs."""

    cpus: float = 1.0
    memory_mb: int = 8192
    gpus: int = 0


@dataclass(frozen=True)
class JobResources:
    """What one job was given: its share of CPUs and memory and the GPU devices it alone may use."""

    cpus: float
    memory_mb: int
    gpu_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Capacity:
    cpus: float
    memory_mb: int
    gpu_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.cpus:g} CPU(s), {self.memory_mb:,} MB of memory, {len(self.gpu_ids)} GPU(s)"


def request_for(loaded, memory_override: int | None = None) -> JobRequest:
    """A job's request from its assignment (`memory_mb`, `[resources] cpus` and `gpus`); `--memory` wins."""
    if loaded is None:
        return JobRequest(cpus=1.0, memory_mb=memory_override or 512, gpus=0)
    spec = loaded.spec
    return JobRequest(cpus=float(spec.resources.cpus), memory_mb=int(memory_override or spec.memory_mb),
                      gpus=int(spec.resources.gpus))


# ---- the machine


def _cgroup_path(controller: str) -> Path | None:
    """This process's cgroup folder for `controller` ("" for the v2 unified hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            base = CGROUP_ROOT if controller == "" else CGROUP_ROOT / controller
            if controller == "" and not (CGROUP_ROOT / "cgroup.controllers").exists():
                return None
            return base / path.lstrip("/")
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ancestors(folder: Path | None, root: Path) -> list[Path]:
    found = []
    while folder is not None and folder.is_relative_to(root):
        found.append(folder)
        if folder == root:
            break
        folder = folder.parent
    return found


def cpu_quota(v2_max: str | None, v1_quota: str | None, v1_period: str | None) -> float | None:
    """Cores a CFS quota allows (`cpu.max` "200000 100000", or v1 quota and period), None when unlimited."""
    if v2_max:
        quota, _, period = v2_max.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    if v1_quota and v1_period and int(v1_quota) > 0:
        return int(v1_quota) / int(v1_period)
    return None


def machine_cpus() -> float:
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = float(os.cpu_count() or 1)
    quotas = []
    for folder in _ancestors(_cgroup_path(""), CGROUP_ROOT):
        quotas.append(cpu_quota(_read(folder / "cpu.max"), None, None))
    v1 = CGROUP_ROOT / "cpu"
    for folder in _ancestors(_cgroup_path("cpu"), v1):
        quotas.append(cpu_quota(None, _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")))
    limited = [q for q in quotas if q is not None]
    return max(1.0, min([cores, *limited]))


def machine_memory_mb() -> int:
    """The smaller of MemTotal and the cgroup memory limits above this process. MemTotal, not MemAvailable:
    a job's memory limit is a ceiling it may reach, and what is free now changes as jobs start and end."""
    total = None
    for line in (_read(Path("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) // 1024
    limits = [total] if total else []
    for folder in _ancestors(_cgroup_path(""), CGROUP_ROOT):
        value = _read(folder / "memory.max")
        if value and value.isdigit():
            limits.append(int(value) // 2**20)
    v1 = CGROUP_ROOT / "memory"
    for folder in _ancestors(_cgroup_path("memory"), v1):
        value = _read(folder / "memory.limit_in_bytes")
        if value and value.isdigit() and int(value) < 2**60:
            limits.append(int(value) // 2**20)
    return min(limits) if limits else 4096


def visible_gpus(cuda_visible: str | None, nvidia_smi_lines: list[str]) -> tuple[str, ...]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` when set (empty or -1: none), else one per
    `nvidia-smi -L` line."""
    if cuda_visible is not None:
        ids = [part.strip() for part in cuda_visible.split(",") if part.strip()]
        if not ids or ids[0].startswith("-"):
            return ()
        return tuple(ids)
    return tuple(str(i) for i, line in enumerate(l for l in nvidia_smi_lines if l.startswith("GPU ")))


def machine_gpus() -> tuple[str, ...]:
    lines: list[str] = []
    if os.environ.get("CUDA_VISIBLE_DEVICES") is None and shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
            lines = done.stdout.splitlines() if done.returncode == 0 else []
        except (OSError, subprocess.SubprocessError):
            lines = []
    return visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), lines)


def machine_capacity(gpus: int | None = None) -> Capacity:
    """This machine's capacity; `gpus` overrides the GPU count (ids 0..gpus-1), e.g. for tests."""
    ids = tuple(str(i) for i in range(gpus)) if gpus is not None else machine_gpus()
    return Capacity(cpus=machine_cpus(), memory_mb=machine_memory_mb(), gpu_ids=ids)


# ---- the arithmetic (pure)


def clamp(request: JobRequest, capacity: Capacity) -> JobRequest:
    """CPU is time-shared: a job asking for more cores than the machine has gets all of them, and runs slower."""
    return JobRequest(cpus=min(request.cpus, capacity.cpus), memory_mb=request.memory_mb, gpus=request.gpus)


def refusal(request: JobRequest, capacity: Capacity, where: str = "this machine") -> str | None:
    """Why `request` can never run on `capacity` (more GPUs or memory than there is), else None."""
    if request.gpus > len(capacity.gpu_ids):
        return (f"the assignment asks for {request.gpus} GPU(s) per job and {where} has {len(capacity.gpu_ids)}; "
                f"grade it on a machine or cluster with enough GPUs, or lower `[resources] gpus`")
    if request.memory_mb > capacity.memory_mb:
        return (f"the job's memory limit is {request.memory_mb:,} MB and {where} has {capacity.memory_mb:,} MB; "
                f"grade it on a larger machine or lower the limit (--memory or the assignment's memory_mb)")
    return None


def slots(request: JobRequest, capacity: Capacity) -> int:
    """How many jobs like `request` fit on `capacity` at once (0 when none ever does)."""
    if refusal(request, capacity):
        return 0
    request = clamp(request, capacity)
    counts = [math.floor(capacity.cpus / request.cpus + 1e-9) if request.cpus > 0 else math.inf,
              capacity.memory_mb // request.memory_mb if request.memory_mb > 0 else math.inf,
              len(capacity.gpu_ids) // request.gpus if request.gpus > 0 else math.inf]
    found = min(counts)
    return int(found) if found != math.inf else 1


def auto_jobs(requests: list[JobRequest], capacity: Capacity) -> int:
    """`--jobs auto`: the most jobs of this class the machine can run at once (at least 1)."""
    return max([1, *(slots(r, capacity) for r in set(requests))])


class Pool:
    """Hands out resources first come, first served: a job waits until what it asks for is free, and a
    job that arrived earlier is never overtaken (a large job is not starved by small ones)."""

    def __init__(self, capacity: Capacity, max_jobs: int | None = None):
        self.capacity, self.max_jobs = capacity, max_jobs
        self.cpus_used, self.memory_used, self.running = 0.0, 0, 0
        self.free_gpus = list(capacity.gpu_ids)
        self._cond = threading.Condition()
        self._next_ticket = self._serving = 0
        self._skipped: set[int] = set()

    def fits(self, request: JobRequest) -> bool:
        """Whether `request` fits in what is free now (pure arithmetic on the pool's counters)."""
        request = clamp(request, self.capacity)
        if self.max_jobs is not None and self.running >= self.max_jobs:
            return False
        return (self.cpus_used + request.cpus <= self.capacity.cpus + 1e-9
                and self.memory_used + request.memory_mb <= self.capacity.memory_mb
                and request.gpus <= len(self.free_gpus))

    def take(self, request: JobRequest) -> JobResources:
        """Take `request` now (the caller checked `fits`)."""
        request = clamp(request, self.capacity)
        gpus = tuple(self.free_gpus[:request.gpus])
        del self.free_gpus[:request.gpus]
        self.cpus_used += request.cpus
        self.memory_used += request.memory_mb
        self.running += 1
        return JobResources(cpus=request.cpus, memory_mb=request.memory_mb, gpu_ids=gpus)

    def give_back(self, held: JobResources) -> None:
        self.cpus_used = max(0.0, self.cpus_used - held.cpus)
        self.memory_used = max(0, self.memory_used - held.memory_mb)
        self.running = max(0, self.running - 1)
        self.free_gpus.extend(g for g in held.gpu_ids if g in self.capacity.gpu_ids and g not in self.free_gpus)
        self.free_gpus.sort(key=self.capacity.gpu_ids.index)

    def acquire(self, request: JobRequest, stop: threading.Event | None = None,
                waiting: Callable[[], None] | None = None) -> JobResources | None:
        """Block until `request` fits and it is this caller's turn; None when `stop` is set meanwhile.
        `waiting` is called once (without the pool's lock) when the caller has to wait. Raises ValueError
        for a request that can never fit (check `refusal` first)."""
        reason = refusal(request, self.capacity)
        if reason:
            raise ValueError(reason)
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            try:
                while not (self._serving == ticket and self.fits(request)):
                    if stop is not None and stop.is_set():
                        return None
                    if waiting is not None:
                        told, waiting = waiting, None
                        self._cond.release()  # a slow progress view never holds up the pool
                        try:
                            told()
                        except Exception:
                            pass
                        finally:
                            self._cond.acquire()
                        continue  # what is free may have changed meanwhile
                    self._cond.wait(timeout=0.5)
                return self.take(request)
            finally:
                if self._serving == ticket:
                    self._serving += 1
                else:  # gave up while waiting: let later tickets pass over this one
                    self._skipped.add(ticket)
                self._advance()
                self._cond.notify_all()

    def _advance(self) -> None:
        while self._serving in self._skipped:
            self._skipped.discard(self._serving)
            self._serving += 1

    def release(self, held: JobResources) -> None:
        with self._cond:
            self.give_back(held)
            self._cond.notify_all()
