"""What a killed class run leaves on the host, and the sweep that removes it when the next run starts.

A run killed with SIGKILL cannot clean up: bubblewrap's `--die-with-parent` ends its sandboxes, but
their control groups (`harness.sandbox.limits`), the evidence tmpfs mounted in each job folder and the
job folders themselves stay. Each of these carries its owner, the process that made it (pid and start
time, so a reused pid is not mistaken for it): a cgroup in its name, `harness-<owner>-<hex>`, a job
folder in a `.harness-owner` file. `sweep()` kills what still runs in a dead owner's cgroups, unmounts
and removes its job folders, and removes its cgroups. What a live run owns is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MARKER = ".harness-owner"
TAGGED = re.compile(r"^harness-(\d+)\.(\d+)-[0-9a-f]+$")
JOB_FOLDER_PREFIX = "harness-"

_own: tuple[int, str] | None = None


def start_time(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (None when it is gone): with the pid, a process's identity."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner() -> str:
    """This process as an owner tag: `<pid>.<start time in clock ticks>`."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        _own = (pid, f"{pid}.{start_time(pid) or 0}")
    return _own[1]


def alive(tag: str) -> bool:
    pid, _, start = tag.partition(".")
    if not pid.isdigit():
        return True  # not ours to judge
    return start_time(int(pid)) == start


def claim(folder: Path) -> None:
    """Mark a job folder as this process's (the sweep removes it once this process is gone)."""
    try:
        (folder / MARKER).write_text(owner())
    except OSError:
        pass


def _cgroup_dirs(root: Path, depth: int = 5):
    """Tagged harness cgroups under `root`, at most `depth` levels down."""
    todo = [(root, 0)]
    while todo:
        folder, level = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            match = TAGGED.match(entry.name)
            if match:
                yield Path(entry.path), f"{match.group(1)}.{match.group(2)}"
            elif level < depth:
                todo.append((Path(entry.path), level + 1))


def _pids(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def stale_cgroups(root: Path = CGROUP_ROOT) -> list[Path]:
    return [path for path, tag in _cgroup_dirs(root) if not alive(tag)]


def stale_job_folders(tmp: Path | None = None) -> list[Path]:
    base = Path(tmp or tempfile.gettempdir())
    found = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(JOB_FOLDER_PREFIX) and p.is_dir()
                      and not p.is_symlink()]
    except OSError:
        return []
    for folder in candidates:
        try:
            tag = (folder / MARKER).read_text().strip()
        except OSError:
            continue
        if not alive(tag):
            found.append(folder)
    return found


def mounts_under(folder: Path) -> list[str]:
    """Mount points at or below `folder`, deepest first (from /proc/self/mounts)."""
    base = os.path.realpath(folder)
    points = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) > 1:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])  # spaces are \040
            if point == base or point.startswith(base + "/"):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def sweep(tmp: Path | None = None, root: Path = CGROUP_ROOT) -> list[str]:
    """Remove what dead owners left (see the module); returns one line per thing removed."""
    done: list[str] = []
    groups = stale_cgroups(root)
    for group in groups:  # processes first: they may hold the tmpfs or the folders
        for _ in range(50):
            left = _pids(group)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)
        if _pids(group):
            continue
        try:
            group.rmdir()
            done.append(f"cgroup {group}")
        except OSError:
            pass
    for folder in stale_job_folders(tmp):
        for point in mounts_under(folder):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
            done.append(f"mount {point}")
        if not mounts_under(folder):
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"folder {folder}")
    return done


def stale_record_files(out: Path) -> list[Path]:
    """Temporary files of record writes a kill interrupted (`<out>/<student>/.<name>.<random>.tmp`)."""
    return sorted(p for p in out.glob("*/.*.tmp") if p.is_file() and not p.is_symlink())
