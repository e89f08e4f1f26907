"""The sandbox contract: a request in, a result out, every process gone afterwards."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from harness.errors import HarnessError, UsageError
from harness.sandbox import limits as cgroups
from harness.sandbox.leftovers import claim


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
    cpus: float | None = None  # CPU time as a number of cores (docker: nano_cpus); None = every core here


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
    gpus: tuple[str, ...] = ()  # GPU device ids handed out by the pool; () = no GPU, ("all",) = every GPU
    label: str = ""  # what the job is (student/assignment), for the operator: a container's label
    # called once the job has started (on the caller's machine, in the supervising thread): work that should
    # overlap the run rather than delay its start, e.g. quick mode's model reader; its errors are ignored
    on_start: Callable[[], None] | None = field(default=None, compare=False)


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
    interrupted: bool = False
    gpus: tuple[str, ...] = ()  # the GPU devices the job was given (ids as the pool handed them out)


class Sandbox(Protocol):
    name: str
    isolates: bool

    def unavailable_reason(self) -> str | None:
        """None when usable here, else a message saying what to install."""

    def layout(self, job_dir: Path) -> Layout:
        """The inside paths of a job whose host files live in `job_dir`."""

    def run(self, request: SandboxRequest) -> SandboxResult: ...

    def cancel(self) -> None:
        """Ctrl-C: kill the jobs this sandbox is running, at once, and start no new one."""


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


def cuda_visible_devices(gpus: tuple[str, ...], renumbered: bool) -> str | None:
    """CUDA_VISIBLE_DEVICES for a job given `gpus`: "" (no GPU) when none were asked for, so that a job never
    takes a GPU the pool did not hand it; None (leave unset) for ("all",). `renumbered`: the sandbox exposes
    only the given devices, which CUDA then numbers from 0 (a container's device request); else the ids
    are the machine's own (bwrap)."""
    if not gpus:
        return ""
    if "all" in gpus:
        return None
    return ",".join(str(i) for i in range(len(gpus))) if renumbered else ",".join(gpus)


def tf_log_level(gpus: tuple[str, ...]) -> str:
    """TF_CPP_MIN_LOG_LEVEL for a job given `gpus`. Without a GPU, TensorFlow logs "failed call to cuInit" as
    an error whenever it looks for one (every CPU-only job): "3" keeps its C++ log quiet, so the output shows
    what the job printed. A job given GPUs keeps TensorFlow's errors ("2"), which then say something. Only
    TensorFlow's C++ log lines are affected: the job's prints, Python warnings and tracebacks all stay. (The
    few "I0000" lines TensorFlow prints before its logging starts ignore this variable.)"""
    return "2" if gpus else "3"


THP_DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"


def numpy_env(defrag_file: str = THP_DEFRAG) -> dict[str, str]:
    """NUMPY_MADVISE_HUGEPAGE for every job: "0" when the kernel compacts memory on the spot for each huge-page
    fault of a region asking for huge pages (THP defrag `always`, `madvise` or `defer+madvise`), which numpy
    asks for on every array of 4 MB or more. There the first write of a big array stalls: on the grading
    machine `x / 255.0` of Fashion-MNIST's 70,000 images (440 MB) took 1.05-1.14 s with numpy's default and
    0.27-0.29 s without it. Elsewhere (`defer`, `never`, or no THP) nothing is set. Only the speed of the job's
    own allocations changes, never a result."""
    try:
        with open(defrag_file) as fh:
            chosen = fh.read().split("[", 1)[1].split("]", 1)[0]
    except (OSError, IndexError):
        return {}
    return {"NUMPY_MADVISE_HUGEPAGE": "0"} if chosen in ("always", "madvise", "defer+madvise") else {}


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


EVIDENCE_SLACK_MB = 4  # the evidence tmpfs is this much larger than the limit, so a job that tries to pass it can
EVIDENCE_MAX_FILES = 100_000  # be seen trying; and it holds at most this many files and folders
MOVE_CHUNK = 8 * 2**20  # copying evidence out of the tmpfs holds at most one chunk twice


def _tree_usage(folder: Path, stop_after_mb: float | None = None,
                stop_after_entries: int | None = None) -> tuple[float, int]:
    """(MB, entries) of every file under `folder`, every sub-folder included; symlinks are counted, never followed.

    Stops early once `stop_after_mb` or `stop_after_entries` is passed (the answer is then "over")."""
    total, count, todo = 0, 0, [str(folder)]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    count += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    # allocated blocks, not the apparent size: a sparse file costs what it holds
                    total += max(info.st_blocks * 512, 0) if hasattr(info, "st_blocks") else info.st_size
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    if (stop_after_mb is not None and total / 2**20 > stop_after_mb) or \
                            (stop_after_entries is not None and count > stop_after_entries):
                        return total / 2**20, count
        except OSError:
            pass
    return total / 2**20, count


class EvidenceQuota:
    """The evidence folder is the one host folder a job writes into; it cannot grow past its limit.

    As root, the folder is a tmpfs mounted on the host, `limit + EVIDENCE_SLACK_MB` large with at most
    EVIDENCE_MAX_FILES inodes: the kernel refuses every write past it, in every sub-folder. When the job's
    usage passes the limit it is stopped (`over()`); afterwards the files are moved out of the tmpfs onto
    disk (regular files and folders only, a chunk at a time) and the tmpfs is unmounted. Without root, a
    walk of the whole tree every poll enforces the limit, which bounds it only by how much the job writes
    between two polls (and by RLIMIT_FSIZE per file).
    """

    def __init__(self, folder: Path, limit_mb: int):
        self.folder, self.limit_mb, self.mounted = folder, limit_mb, False
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and os.environ.get("HARNESS_NO_EVIDENCE_TMPFS") != "1" and not any(folder.iterdir()):
            size = (limit_mb + EVIDENCE_SLACK_MB) * 2**20
            try:
                done = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                       f"size={size},nr_inodes={EVIDENCE_MAX_FILES},mode=0755,nosuid,nodev",
                                       "harness-evidence", str(folder)], capture_output=True, timeout=30)
                self.mounted = done.returncode == 0
            except (OSError, subprocess.SubprocessError):  # no mount(8), no CAP_SYS_ADMIN: walk instead
                self.mounted = False

    def usage(self) -> tuple[float, int]:
        if self.mounted:
            st = os.statvfs(self.folder)
            return (st.f_blocks - st.f_bfree) * st.f_frsize / 2**20, st.f_files - st.f_ffree
        return _tree_usage(self.folder, stop_after_mb=self.limit_mb, stop_after_entries=EVIDENCE_MAX_FILES)

    def over(self) -> bool:
        mb, entries = self.usage()
        return mb > self.limit_mb or entries >= EVIDENCE_MAX_FILES - 1

    def release(self) -> None:
        """Move what the job left onto disk (nothing followed) and unmount; no-op without a mount."""
        if not self.mounted:
            return
        disk = self.folder.with_name(self.folder.name + ".disk")
        disk.mkdir()
        try:
            _move_tree(self.folder, disk, self.limit_mb * 2**20)
        finally:
            if subprocess.run(["umount", str(self.folder)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)
            self.mounted = False
        self.folder.rmdir()
        disk.rename(self.folder)


MAX_MOVED_DEPTH = 32  # folder levels of evidence moved to disk; the kept evidence is flat


def _move_tree(source: Path, target: Path, max_bytes: int) -> None:
    """Regular files and folders from `source` to `target`; symlinks, FIFOs, devices are dropped unopened,
    and so are files whose length is past the limit (sparse files the tmpfs holds without their size),
    and folders past MAX_MOVED_DEPTH levels, and what cannot be named in one call (too long a path).

    Each file is copied from its end backwards and the source truncated behind each chunk, so the two
    copies together never hold more than the file plus one chunk."""
    import stat as st
    todo = [(source, target, 0)]  # no recursion: a job may nest folders a thousand deep
    while todo:
        here, there, level = todo.pop()
        try:
            with os.scandir(here) as listing:
                entries = list(listing)
        except OSError as exc:  # a path past the system's length limit (made with chdir): left on the tmpfs
            if exc.errno != errno.ENAMETOOLONG:
                raise
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                dest = there / entry.name
                if st.S_ISDIR(info.st_mode):
                    if level < MAX_MOVED_DEPTH:  # deeper folders stay on the tmpfs, which is unmounted
                        dest.mkdir()
                        todo.append((Path(entry.path), dest, level + 1))
                elif st.S_ISREG(info.st_mode) and info.st_size <= max_bytes:
                    _move_file(entry.path, dest)
            except OSError as exc:
                if exc.errno != errno.ENAMETOOLONG:
                    raise  # the host's disk, not the job: the operator must act


def _move_file(source: str, dest: Path) -> None:
    fd = os.open(source, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        with open(dest, "wb") as out:
            out.truncate(size)
            end = size
            while end > 0:
                start = max(0, end - MOVE_CHUNK)
                out.seek(start)
                out.write(os.pread(fd, end - start, start))
                os.ftruncate(fd, start)
                end = start
    finally:
        os.close(fd)
    os.unlink(source)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Handle(Protocol):
    """One running job as `supervise` sees it: a process tree in a cgroup, or a container."""

    def wait(self, timeout: float | None) -> int | None:
        """The exit code once the job has ended, else None after `timeout` seconds (None: wait for the end)."""

    def terminate(self) -> None:
        """SIGTERM to the job's processes (the wall clock ran out; they get a grace period)."""

    def kill(self) -> bool:
        """SIGKILL to every process of the job that is left, at once (any thread may call it).
        False when nothing was left to kill."""

    def peak_memory_mb(self) -> float | None: ...

    def oom_killed(self) -> bool: ...

    def output_tail(self, limit: int) -> str:
        """The last `limit` bytes of what the job printed (in `request.log` afterwards, where one is asked)."""

    def close(self) -> None:
        """Release what the job held (its cgroup, its container): called once, whatever happened."""


_RUNNING: dict[Handle, str] = {}  # running jobs → the sandbox that runs them
_LOCK = threading.Lock()
STOPPING = threading.Event()
TAIL_BYTES = 4000


class Interrupted(HarnessError):
    """The operator interrupted the run (Ctrl-C): no new sandbox starts. Not the student's fault."""

    exit_code = 2


def cancel(name: str | None = None) -> None:
    """Ctrl-C: kill every running job of the sandbox `name` (of every sandbox when None) at once, and start
    no new sandbox from now on (a job between its run and its evaluation stops there)."""
    STOPPING.set()
    with _LOCK:
        running = [handle for handle, owner in _RUNNING.items() if name is None or owner == name]
    for handle in running:
        try:
            handle.kill()
        except Exception:  # the job is ending anyway; its supervisor cleans up
            pass


def stop_all() -> None:
    """Kill every job that is still running, whatever sandbox runs it (an interrupted class run)."""
    cancel(None)


def supervise(start: Callable[[], Handle], request: SandboxRequest, name: str) -> SandboxResult:
    """Start a job (`start` returns its handle), enforce the wall clock and the evidence quota, and leave
    nothing behind. Shared by every backend: a process tree (bwrap, process) or a container (docker).

    On timeout every process of the job gets SIGTERM, then SIGKILL after the grace period. A job whose
    evidence passes its limit (every sub-folder counted) is killed at once. Ctrl-C (`cancel`) kills it
    from another thread; the result then says `interrupted`.
    """
    if STOPPING.is_set():
        raise Interrupted("grading was interrupted; no new job is started")
    claim(request.job_dir)  # a run killed from here on leaves this folder to the next run's sweep
    quota = handle = None
    began = time.monotonic()
    timed_out = overflowed = False
    try:
        # the evidence folder is a host folder: a job may not fill the disk through it
        quota = EvidenceQuota(request.job_dir / "evidence", request.limits.evidence_mb)
        handle = start()
        with _LOCK:
            _RUNNING[handle] = name
            stopping = STOPPING.is_set()  # cancel() ran while this job started: it never saw it
        if stopping:
            handle.kill()
        elif request.on_start is not None:
            try:
                request.on_start()
            except Exception:
                pass  # it only speeds up what follows the run; that work reports its own failures
        deadline = began + request.timeout
        while not overflowed:
            left = deadline - time.monotonic()
            if left <= 0 or handle.wait(min(0.5, max(0.01, left))) is not None:
                break
            overflowed = quota.over()
        if handle.wait(0) is None and not overflowed:
            timed_out = True
            handle.terminate()
            handle.wait(request.limits.grace_seconds)
        # whatever is left (daemons, processes ignoring SIGTERM) dies now
        for _ in range(50):
            if not handle.kill():
                break
            time.sleep(0.05)
        exit_code = handle.wait(None)
        with _LOCK:
            _RUNNING.pop(handle, None)
        wall = time.monotonic() - began
        overflowed = overflowed or quota.over()  # a job that passed the limit and then ended by itself
        peak = handle.peak_memory_mb()
        memory_exceeded = handle.oom_killed()
        tail = handle.output_tail(TAIL_BYTES)
    finally:
        if handle is not None:
            with _LOCK:
                _RUNNING.pop(handle, None)
            handle.close()
        if quota is not None:
            quota.release()
    if overflowed:
        tail += (f"\n[harness] the job wrote more than {request.limits.evidence_mb} MB (or "
                 f"{EVIDENCE_MAX_FILES:,} files) into its evidence folder and was stopped\n")
    return SandboxResult(exit_code=exit_code, timed_out=timed_out, memory_exceeded=memory_exceeded,
                         wall_seconds=round(wall, 3), peak_memory_mb=peak, output_tail=tail, sandbox=name,
                         evidence_overflow=overflowed, timeout_seconds=request.timeout,
                         interrupted=STOPPING.is_set(), gpus=tuple(request.gpus))


class ProcessHandle:
    """A job that is a process tree on this machine: in its own cgroup (memory, pids) where one can be
    made, else under rlimits; its output goes to `request.log`."""

    def __init__(self, argv: list[str], request: SandboxRequest, env: dict[str, str] | None = None):
        self.group = cgroups.create(request.limits)
        self.log_path = request.log
        self.log = None
        try:
            # without a pids cgroup, RLIMIT_NPROC is the fallback (it does not bind root)
            preexec = set_rlimits(request.limits, nproc=not self.group.enforced and os.getuid() != 0)
            self.log = open(request.log, "wb") if request.log else subprocess.DEVNULL
            self.proc = subprocess.Popen(self.group.wrap(argv), stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT, env=env if env is not None else {},
                                         start_new_session=True, preexec_fn=preexec)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _tree(self) -> list[int]:
        return self.group.pids() or ([self.proc.pid] + _descendants(self.proc.pid) if self.proc.poll() is None else [])

    def terminate(self) -> None:
        _signal_all(self.group.pids() or _descendants(self.proc.pid), signal.SIGTERM)

    def kill(self) -> bool:
        left = self._tree()
        _signal_all(left, signal.SIGKILL)
        return bool(left)

    def peak_memory_mb(self) -> float | None:
        return self.group.peak_memory_mb()

    def oom_killed(self) -> bool:
        return self.group.oom_killed()

    def output_tail(self, limit: int) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as fh:
            fh.seek(max(0, self.log_path.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")

    def close(self) -> None:
        if self.log not in (None, subprocess.DEVNULL):
            self.log.close()
        self.group.remove()


def supervise_process(argv: list[str], request: SandboxRequest, name: str,
                      env: dict[str, str] | None = None) -> SandboxResult:
    """`supervise` for a job that is a process tree on this machine (bwrap, process)."""
    return supervise(lambda: ProcessHandle(argv, request, env), request, name)


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
