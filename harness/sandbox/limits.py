"""Per-job control groups: memory and process limits that do not break TensorFlow.

rlimits are a poor fit: TensorFlow reserves far more address space than it uses (RLIMIT_AS kills
it), and RLIMIT_NPROC does not apply to root. A memory + pids cgroup limits what is really used,
counts every process of the job whatever its uid, reports the peak and tells an OOM kill apart.
Where no cgroup can be made (no root, read-only cgroupfs), `NullGroup` enforces nothing and the
sandbox falls back to rlimits.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from harness.sandbox.leftovers import owner

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _name() -> str:
    """`harness-<owner>-<hex>`: the sweep of a later run removes it once its owner is gone (`leftovers`)."""
    return f"harness-{owner()}-{uuid.uuid4().hex[:12]}"


class NullGroup:
    enforced = False

    def wrap(self, argv: list[str]) -> list[str]:
        return argv

    def pids(self) -> list[int]:
        return []

    def peak_memory_mb(self) -> float | None:
        return None

    def oom_killed(self) -> bool:
        return False

    def remove(self) -> None:
        pass


def _own_path(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path.lstrip("/")
    raise OSError(f"no {controller} cgroup")


class V1Group(NullGroup):
    """cgroup v1: one directory in the memory hierarchy and one in the pids hierarchy."""

    enforced = True

    def __init__(self, memory_mb: int, processes: int):
        name = _name()
        self.memory = CGROUP_ROOT / "memory" / _own_path("memory") / name
        self.pids_dir = CGROUP_ROOT / "pids" / _own_path("pids") / name
        self.memory.mkdir()
        try:
            self.pids_dir.mkdir()
            limit = str(memory_mb * 1024 * 1024)
            (self.memory / "memory.limit_in_bytes").write_text(limit)
            swap = self.memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(limit)
            (self.pids_dir / "pids.max").write_text(str(processes))
        except OSError:
            self.remove()
            raise

    def wrap(self, argv: list[str]) -> list[str]:
        script = 'echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" && shift 2 && exec "$@"'
        return ["/bin/sh", "-c", script, "sh", str(self.memory), str(self.pids_dir), *argv]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.pids_dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def peak_memory_mb(self) -> float | None:
        try:
            return round(int((self.memory / "memory.max_usage_in_bytes").read_text()) / 2**20, 1)
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        try:
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        for directory in (self.memory, self.pids_dir):
            for _ in range(40):
                try:
                    if directory.exists():
                        directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


class V2Group(NullGroup):
    """cgroup v2 (unified): one directory with memory and pids controllers delegated to it."""

    enforced = True

    def __init__(self, memory_mb: int, processes: int):
        self.dir = CGROUP_ROOT / _own_path("") / _name()
        self.dir.mkdir()
        try:
            (self.dir / "memory.max").write_text(str(memory_mb * 1024 * 1024))
            (self.dir / "pids.max").write_text(str(processes))
        except OSError:
            self.remove()
            raise

    def wrap(self, argv: list[str]) -> list[str]:
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"'
        return ["/bin/sh", "-c", script, "sh", str(self.dir), *argv]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def peak_memory_mb(self) -> float | None:
        try:
            return round(int((self.dir / "memory.peak").read_text()) / 2**20, 1)
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        try:
            for line in (self.dir / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        for _ in range(40):
            try:
                if self.dir.exists():
                    self.dir.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def create(limits) -> NullGroup:
    """The strongest group this machine allows for one job."""
    if os.environ.get("HARNESS_NO_CGROUPS") == "1":
        return NullGroup()
    kind = V2Group if (CGROUP_ROOT / "cgroup.controllers").exists() else V1Group
    try:
        return kind(limits.memory_mb, limits.processes)
    except (OSError, ValueError):  # no root, a read-only cgroupfs, no such controller
        return NullGroup()
