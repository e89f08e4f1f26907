"""What a machine can hold and what one job asks for: CPU cores, memory, GPU slots.

`Capacity` is read once from the machine (affinity and cgroup CPU quota, cgroup memory limit or
MemTotal, GPUs from `CUDA_VISIBLE_DEVICES` or `nvidia-smi -L`; `--machine-gpus` overrides); a job asks
for a `JobRequest` (its assignment's CPUs, memory limit and GPUs; `--gpus` overrides the GPUs); `Pool`
hands out `JobResources` (concrete GPU ids included) so that the jobs running at once never ask for more
than the capacity, and no two share a GPU. A job that can never fit is told so at once (`refusal`)
rather than waiting for ever.

A GPU request (`GpuAsk`, parsed from `--gpus all|N|ids`) is one of: a count (any N free GPUs), exact
device ids (those devices: two jobs naming the same id run one after the other), or `all` (every GPU of
the machine: such a job runs alone on the GPUs, and the record lists them by id).
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


ALL = "all"


@dataclass(frozen=True)
class GpuAsk:
    """A job's GPU request: `count` GPUs (any free ones), or these exact `ids`, or ("all",): every GPU."""

    count: int = 0
    ids: tuple[str, ...] = ()

    @property
    def every(self) -> bool:
        return self.ids == (ALL,)

    def describe(self) -> str:
        if self.every:
            return "every GPU"
        if self.ids:
            return f"GPU(s) {', '.join(self.ids)}"
        return f"{self.count} GPU(s)"


def parse_gpus(text: str, option: str = "--gpus") -> GpuAsk:
    """`all`, a count `N`, or device ids: a comma list `0,2`, or `device=ID[,ID]` for one id (`1` is a count).
    Raises ValueError with a plain-English reason."""
    value = text.strip()
    if value.lower() == ALL:
        return GpuAsk(ids=(ALL,))
    if value.isdigit():
        return GpuAsk(count=int(value))
    explicit = value.startswith("device=")
    listed = value[len("device="):] if explicit else value
    ids = tuple(_canonical(part.strip()) for part in listed.split(","))
    if (explicit or len(ids) > 1) and ids and all(ids) and all(_id_like(i) for i in ids):
        if len(set(ids)) != len(ids):
            raise ValueError(f"{option} {text}: a GPU id is named twice")
        return GpuAsk(count=len(ids), ids=ids)
    raise ValueError(f"{option} takes `all`, a number of GPUs (`2`), or device ids (`0,2`, or `device=1` for "
                     f"one id); {text!r} is none of these")


def _canonical(gpu_id: str) -> str:
    """A device index as CUDA and the NVIDIA runtime read it (a number: `01` is GPU 1); a UUID as it is."""
    return str(int(gpu_id)) if gpu_id.isdigit() and gpu_id.isascii() else gpu_id


def _id_like(text: str) -> bool:
    """A GPU index or UUID (`GPU-...`, `MIG-...`): letters, digits, '-', '_', ':', '/' only."""
    return text != ALL and len(text) <= 100 and all(c.isalnum() or c in "-_:/" for c in text)


@dataclass(frozen=True)
class JobRequest:
    """What one job asks for while it runs. GPUs: `gpus` of any, or `gpu_ids` (these devices, or ("all",))."""

    cpus: float = 1.0
    memory_mb: int = 8192
    gpus: int = 0
    gpu_ids: tuple[str, ...] = ()

    @property
    def gpu_ask(self) -> GpuAsk:
        return GpuAsk(count=self.gpus, ids=self.gpu_ids)


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


def request_for(loaded, memory_override: int | None = None, gpus: GpuAsk | None = None) -> JobRequest:
    """A job's request from its assignment (`memory_mb`, `[resources] cpus` and `gpus`); `--memory` and
    `--gpus` win."""
    if loaded is None:
        return JobRequest(cpus=1.0, memory_mb=memory_override or 512, gpus=0)
    spec = loaded.spec
    ask = gpus if gpus is not None else GpuAsk(count=int(spec.resources.gpus))
    return JobRequest(cpus=float(spec.resources.cpus), memory_mb=int(memory_override or spec.memory_mb),
                      gpus=ask.count, gpu_ids=ask.ids)


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
        ids = [_canonical(part.strip()) for part in cuda_visible.split(",") if part.strip()]
        if not ids or ids[0].startswith("-"):
            return ()
        ids = ids[:next((n for n, i in enumerate(ids) if not _id_like(i)), len(ids))]  # CUDA stops there too
        return tuple(dict.fromkeys(ids))  # a device listed twice is one device
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


def machine_gpu_ids(ask: GpuAsk) -> tuple[str, ...]:
    """`--machine-gpus`: a count N means ids 0..N-1, ids mean those; `all` means what is detected."""
    if ask.every:
        return machine_gpus()
    return ask.ids or tuple(str(i) for i in range(ask.count))


def machine_capacity(gpus: tuple[str, ...] | None = None) -> Capacity:
    """This machine's capacity; `gpus` (`--machine-gpus`) overrides the GPU ids detected, e.g. for tests."""
    ids = tuple(gpus) if gpus is not None else machine_gpus()
    return Capacity(cpus=machine_cpus(), memory_mb=machine_memory_mb(), gpu_ids=ids)


# ---- the arithmetic (pure)


def clamp(request: JobRequest, capacity: Capacity) -> JobRequest:
    """CPU is time-shared: a job asking for more cores than the machine has gets all of them, and runs slower."""
    return JobRequest(cpus=min(request.cpus, capacity.cpus), memory_mb=request.memory_mb, gpus=request.gpus,
                      gpu_ids=request.gpu_ids)


def gpus_wanted(request: JobRequest, capacity: Capacity) -> tuple[str, ...] | int:
    """The GPU ids `request` needs on `capacity` (exact ids, or all of them), or a count of any."""
    if request.gpu_ask.every:
        return capacity.gpu_ids
    return request.gpu_ids or request.gpus


def refusal(request: JobRequest, capacity: Capacity, where: str = "this machine") -> str | None:
    """Why `request` can never run on `capacity` (more GPUs or memory than there is), else None."""
    have = len(capacity.gpu_ids)
    if request.gpu_ask.every and not have:
        return (f"the job asks for every GPU (--gpus all) and {where} has none; grade it on a machine with GPUs, "
                f"or leave out --gpus to use the assignment's request")
    if request.gpu_ids and not request.gpu_ask.every:
        missing = [g for g in request.gpu_ids if g not in capacity.gpu_ids]
        if missing:
            return (f"the job asks for GPU(s) {', '.join(request.gpu_ids)} and {where} has no GPU "
                    f"{', '.join(missing)} (its GPUs: {', '.join(capacity.gpu_ids) or 'none'}); name GPUs it has "
                    f"in --gpus, or ask for a number of GPUs instead")
    elif request.gpus > have:
        return (f"the assignment (or --gpus) asks for {request.gpus} GPU(s) per job and {where} has {have}; "
                f"grade it on a machine or cluster with enough GPUs, or lower `[resources] gpus` (or --gpus)")
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
              _gpu_slots(request, capacity)]
    found = min(counts)
    return int(found) if found != math.inf else 1


def _gpu_slots(request: JobRequest, capacity: Capacity) -> float:
    """Jobs like `request` that can hold their GPUs at once: named devices (or all) are one job's at a time."""
    wanted = gpus_wanted(request, capacity)
    if isinstance(wanted, tuple):
        return 1 if wanted else math.inf
    return len(capacity.gpu_ids) // wanted if wanted > 0 else math.inf


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
        wanted = gpus_wanted(request, self.capacity)
        gpus_free = (all(g in self.free_gpus for g in wanted) if isinstance(wanted, tuple)
                     else wanted <= len(self.free_gpus))
        return (self.cpus_used + request.cpus <= self.capacity.cpus + 1e-9
                and self.memory_used + request.memory_mb <= self.capacity.memory_mb
                and gpus_free)

    def take(self, request: JobRequest) -> JobResources:
        """Take `request` now (the caller checked `fits`): named GPUs (or all) by id, else the first free ones."""
        request = clamp(request, self.capacity)
        wanted = gpus_wanted(request, self.capacity)
        gpus = wanted if isinstance(wanted, tuple) else tuple(self.free_gpus[:wanted])
        self.free_gpus = [g for g in self.free_gpus if g not in gpus]
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
