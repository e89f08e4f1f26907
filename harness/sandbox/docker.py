"""docker: each job in its own container of the grading image, through the Docker SDK for Python.

The same contract as bubblewrap: no network, memory (swap included) / CPU / pids limits, a read-only
root, size-limited tmpfs for the workspace, /tmp and home, read-only binds for the submission copy, the
served data and the probe, the evidence folder the one writable bind, uid 1000, no capabilities,
`no-new-privileges`. Supervision (wall clock, evidence quota, Ctrl-C) is `base.supervise`, shared with
bubblewrap; a container is one more kind of `base.Handle`.

Containers carry the label `cnn-harness=1`, the job and their owner (host, pid of the harness); they are
removed after the job whatever happened, and those whose harness died (a crash, a kill -9) are swept by
the next run on this machine. GPUs: the ids the pool hands out become a device request (the NVIDIA
Container Toolkit on the host turns it into device nodes and driver libraries); inside, CUDA numbers
them from 0. The engine must be local: its binds are this machine's folders.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from pathlib import Path

from harness.errors import InfrastructureError
from harness.image import PYTHON_IN_IMAGE
from harness.sandbox import base, leftovers, warm
from harness.sandbox.base import Layout, SandboxRequest, SandboxResult, cuda_visible_devices, register
from harness.sandbox.bwrap import HIDDEN

INSIDE = Layout(workspace="/workspace", evidence="/evidence", probe="/opt/harness-probe",
                home="/home/student", python=PYTHON_IN_IMAGE)
PROBE = Path(__file__).resolve().parent.parent / "probe"
LABEL, OWNER, JOB = "cnn-harness", "cnn-harness.owner", "cnn-harness.job"
LOG_MAX = "8m"  # what the engine keeps of a job's output (json-file, one file): a job cannot fill its disk
STAGE = warm.stage_script(warm.INSIDE)  # the image holds the font cache there (docker/Dockerfile)


def _owner() -> str:
    """This harness process, as a label: host, pid and the pid's start time (a reused pid is not us)."""
    return f"{socket.gethostname()}:{os.getpid()}:{leftovers.start_time(os.getpid()) or ''}"


def _owner_gone(owner: str) -> bool:
    """Whether the harness that made a container is no longer running (only known for this host)."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not leftovers.alive(f"{pid}.{start}")


def signal_exit_code(code: int) -> int:
    """The engine reports a job killed by signal N as 128 + N (its init says so); a process sandbox as -N.
    Records say -N for both, so that the same job gives the same record in either sandbox."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


def _tmpfs(size_mb: int, mode: str) -> str:
    return f"rw,exec,nosuid,nodev,size={size_mb}m,mode={mode},uid=1000,gid=1000"


def container_config(request: SandboxRequest, image: str, owner: str) -> tuple[dict, dict]:
    """(create_container arguments, host config arguments) of a job: pure, so it can be read in tests."""
    from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

    limits = request.limits
    env = dict(request.env)
    visible = cuda_visible_devices(request.gpus, renumbered=True)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    env["TINI_KILL_PROCESS_GROUP"] = "1"  # the init forwards SIGTERM (timeout) to the job's process group
    mounts = [Mount("/submission", str(request.stage.resolve()), type="bind", read_only=True),
              Mount(INSIDE.evidence, str((request.job_dir / "evidence").resolve()), type="bind", read_only=False),
              Mount(INSIDE.probe, str(PROBE), type="bind", read_only=True)]
    for mount in request.mounts:
        mounts.append(Mount(mount.target, str(Path(mount.source).resolve()), type="bind",
                            read_only=not mount.writable))
    tmpfs = {INSIDE.workspace: _tmpfs(limits.workspace_mb, "0755"), "/tmp": _tmpfs(limits.tmp_mb, "1777"),
             INSIDE.home: _tmpfs(limits.tmp_mb, "0755")}
    targets = {mount.target for mount in request.mounts}
    for folder, size in _between(request.mounts, {INSIDE.workspace: limits.workspace_mb, "/tmp": limits.tmp_mb,
                                                   INSIDE.home: limits.tmp_mb}):
        if folder not in targets:
            tmpfs.setdefault(folder, _tmpfs(size, "0755"))
    for hidden in HIDDEN:  # whatever an image holds there (the official test labels) is never visible
        tmpfs[hidden] = "ro,nosuid,nodev,noexec,size=4k,mode=0555"
    size = limits.file_size_mb * 2**20
    gpus = list(request.gpus)
    device_requests = []
    if gpus:
        device_requests = [DeviceRequest(count=-1, capabilities=[["gpu"]]) if "all" in gpus
                           else DeviceRequest(device_ids=gpus, capabilities=[["gpu"]])]
    host = dict(
        network_mode="none", ipc_mode="private", read_only=True, init=True,
        mem_limit=limits.memory_mb * 2**20, memswap_limit=limits.memory_mb * 2**20,
        nano_cpus=int((limits.cpus or os.cpu_count() or 1) * 1e9), pids_limit=limits.processes,
        cap_drop=["ALL"], security_opt=["no-new-privileges"],
        ulimits=[Ulimit(name="fsize", soft=size, hard=size), Ulimit(name="core", soft=0, hard=0)],
        tmpfs=tmpfs, mounts=mounts, device_requests=device_requests or None,
        log_config=LogConfig(type="json-file", config={"max-size": LOG_MAX, "max-file": "1"}),
    )
    create = dict(
        image=image, entrypoint=["/bin/sh", "-c", STAGE, "sh"], command=list(request.argv),
        user="1000:1000", working_dir=INSIDE.workspace, environment=env, hostname="sandbox",
        labels={LABEL: "1", OWNER: owner, JOB: request.label or request.job_dir.name},
    )
    return create, host


def _between(mounts, roots: dict[str, int]) -> list[tuple[str, int]]:
    """The folders between a writable tmpfs (workspace, /tmp, home) and a mount inside it, with the tmpfs's size.
    The engine would make them as root, so the job could not write there (Keras then looks for its datasets in
    /tmp/.keras, not ~/.keras): each is a small tmpfs of the job's user instead, as bubblewrap makes them."""
    found = []
    for mount in mounts:
        for root, size in roots.items():
            if mount.target.startswith(root + "/"):
                path = root
                for part in mount.target[len(root) + 1:].split("/")[:-1]:
                    path = f"{path}/{part}"
                    found.append((path, size))
    return sorted(set(found))


class ContainerHandle:
    """One job's container, for `base.supervise`: started at once, waited on by a thread, removed by close()."""

    def __init__(self, api, create: dict, host: dict, log: Path | None):
        import docker.errors
        self.api, self.log, self.id = api, log, None
        self._done, self._code, self._peak, self._state = threading.Event(), None, None, None
        try:
            self.id = api.create_container(host_config=api.create_host_config(**host), **create)["Id"]
            api.start(self.id)
        except docker.errors.APIError as exc:
            self.close()
            hint = (" A job given GPUs needs the NVIDIA Container Toolkit on this machine (`nvidia-ctk runtime "
                    "configure --runtime=docker`, then restart dockerd)." if host.get("device_requests") else "")
            raise InfrastructureError(f"the Docker Engine could not start the job's container: "
                                      f"{exc.explanation or exc}.{hint}") from None
        except BaseException:
            self.close()
            raise
        self._memory = _memory_file(self.id)
        threading.Thread(target=self._wait, daemon=True, name=f"wait-{self.id[:12]}").start()

    def _wait(self) -> None:
        try:
            self._code = int(self.api.wait(self.id, timeout=None).get("StatusCode", -1))
        except Exception:
            self._code = None  # the engine went away: the supervisor kills and removes what is left
        self._done.set()

    def _sample(self) -> None:
        if self._memory is None:
            return
        try:
            used = int(self._memory.read_text()) / 2**20
        except (OSError, ValueError):
            return
        self._peak = max(self._peak or 0.0, used)

    def wait(self, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._sample()
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if self._done.wait(max(0.0, left)):
                return signal_exit_code(self._code) if self._code is not None else -9
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _signal(self, name: str) -> bool:
        import docker.errors
        if self._done.is_set():
            return False
        try:
            self.api.kill(self.id, signal=name)
        except docker.errors.APIError:  # not running any more (or being removed)
            return not self._done.is_set() and self._running()
        return True

    def _running(self) -> bool:
        try:
            return bool(self.api.inspect_container(self.id)["State"]["Running"])
        except Exception:
            return False

    def terminate(self) -> None:
        self._signal("SIGTERM")

    def kill(self) -> bool:
        return self._signal("SIGKILL")

    def _final(self) -> dict:
        if self._state is None:
            try:
                self._state = self.api.inspect_container(self.id)["State"]
            except Exception:
                self._state = {}
        return self._state

    def peak_memory_mb(self) -> float | None:
        return round(self._peak, 1) if self._peak is not None else None

    def oom_killed(self) -> bool:
        return bool(self._final().get("OOMKilled"))

    def output_tail(self, limit: int) -> str:
        try:
            output = self.api.logs(self.id, stdout=True, stderr=True)
        except Exception:
            output = b""
        if self.log:
            self.log.write_bytes(output)
        return output[-limit:].decode("utf-8", "replace")

    def close(self) -> None:
        if self.id is None:
            return
        _remove(self.api, self.id)


def _remove(api, container_id: str) -> None:
    import docker.errors
    for _ in range(20):
        try:
            api.remove_container(container_id, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # "removal already in progress", a slow kill: try again
            time.sleep(0.1)


def _memory_file(container_id: str) -> Path | None:
    """Where the container's peak memory is read, for the engine's usual cgroup layouts (None: not here)."""
    root = base.cgroups.CGROUP_ROOT
    for path in (root / "memory" / "docker" / container_id / "memory.max_usage_in_bytes",
                 root / "memory" / "system.slice" / f"docker-{container_id}.scope" / "memory.max_usage_in_bytes",
                 root / "docker" / container_id / "memory.peak",
                 root / "system.slice" / f"docker-{container_id}.scope" / "memory.peak"):
        if path.exists():
            return path
    return None


def _hand_over(evidence: Path) -> None:
    """The job's user (uid 1000, the same number on the host: no user namespace) may write its evidence
    folder. Without root the folder is opened to everyone: it lies in the job's private (0700) folder."""
    if os.geteuid() == 0:
        os.chown(evidence, 1000, 1000)
    else:
        evidence.chmod(0o777)


_SWEPT = threading.Event()
_SWEEP_LOCK = threading.Lock()


class DockerSandbox:
    name = "docker"
    isolates = True

    def __init__(self, image: str | None = None):
        self._image = image
        self._client = None

    def client(self):
        if self._client is None:
            import docker
            self._client = docker.from_env(version="auto", max_pool_size=64)
        return self._client

    @functools.cache
    def unavailable_reason(self) -> str | None:
        from harness import image
        missing = image.engine_unavailable_reason()
        if missing:
            return missing
        try:
            self.image()
        except InfrastructureError as exc:
            return str(exc)
        return None

    def image(self) -> str:
        """The grading image's tag; never built here (`harness image build` does)."""
        if self._image is None:
            from harness import image
            self._image = image.ensure_present(self.client())
        return self._image

    def layout(self, job_dir: Path) -> Layout:
        return INSIDE

    def sweep(self) -> list[str]:
        """Remove the containers of harness runs that died on this machine (a crash, kill -9); returns their ids."""
        removed = []
        api = self.client().api
        for found in api.containers(all=True, filters={"label": f"{LABEL}=1"}):
            labels = found.get("Labels") or {}
            if _owner_gone(labels.get(OWNER, "")):
                _remove(api, found["Id"])
                removed.append(found["Id"])
        return removed

    def run(self, request: SandboxRequest) -> SandboxResult:
        (request.job_dir / "evidence").mkdir(parents=True, exist_ok=True)
        with _SWEEP_LOCK:  # once per class run (per harness process): before its first job
            if not _SWEPT.is_set():
                self.sweep()
                _SWEPT.set()
        create, host = container_config(request, self.image(), _owner())
        api = self.client().api

        def start() -> ContainerHandle:
            _hand_over(request.job_dir / "evidence")  # after supervise mounted its quota there
            return ContainerHandle(api, create, host, request.log)

        return supervise(start, request, self.name)

    def cancel(self) -> None:
        base.cancel(self.name)


def supervise(start, request: SandboxRequest, name: str) -> SandboxResult:
    return base.supervise(start, request, name)


register("docker", DockerSandbox)
