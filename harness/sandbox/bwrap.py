"""bubblewrap: the default sandbox. Namespaces (user, pid, net, ipc, uts), read-only system,
a size-limited writable workspace, private /tmp, scrubbed environment, cgroup limits."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.sandbox import base, warm
from harness.sandbox.base import Layout, SandboxRequest, SandboxResult, cuda_visible_devices, register

ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
             "localtime", "fonts", "mime.types", "nsswitch.conf", "hosts")
# Debian's dataset packages (fashion-mnist's official test split among them) live here; the holdout is cut
# from them, so neither sandbox may read them
HIDDEN = ("/usr/share/datasets",)
INSIDE = Layout(workspace="/workspace", evidence="/evidence", probe="/opt/harness-probe",
                home="/home/student", python=sys.executable)


def _python_roots() -> list[str]:
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), sys.prefix}
    exe = os.path.realpath(sys.executable)
    roots.add(os.path.dirname(os.path.dirname(exe)))
    return sorted(r for r in roots if not r.startswith(("/usr", "/bin", "/lib")))


class BwrapSandbox:
    name = "bwrap"
    isolates = True

    @functools.cache
    def unavailable_reason(self) -> str | None:
        if not shutil.which("bwrap"):
            return "bubblewrap is not installed: run `make install` (it installs the Debian package bubblewrap)"
        probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
        return None

    def layout(self, job_dir: Path) -> Layout:
        return INSIDE

    def command(self, request: SandboxRequest) -> list[str]:
        limits = request.limits
        args = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
                "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--hostname", "sandbox", "--clearenv",
                "--proc", "/proc", "--dev", "/dev",
                "--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/tmp",
                "--size", str(limits.workspace_mb * 2**20), "--tmpfs", INSIDE.workspace,
                "--tmpfs", "/home", "--dir", INSIDE.home]
        for name in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        for cpu in ("/sys/devices/system/cpu",):
            if Path(cpu).exists():
                args += ["--ro-bind", cpu, cpu]
        for root in _python_roots():
            args += ["--ro-bind", root, root]
        for hidden in HIDDEN:  # dataset sources on the system hold the official test labels: never visible
            if Path(hidden).is_dir():
                args += ["--tmpfs", hidden]
        etc = request.job_dir / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "passwd").write_text("student:x:1000:1000:student:/home/student:/bin/sh\n")
        (etc / "group").write_text("student:x:1000:\n")
        args += ["--ro-bind", str(etc / "passwd"), "/etc/passwd", "--ro-bind", str(etc / "group"), "/etc/group"]
        args += ["--ro-bind", str(request.stage), "/submission",
                 "--bind", str(request.job_dir / "evidence"), INSIDE.evidence,
                 "--ro-bind", str(Path(__file__).resolve().parent.parent / "probe"), INSIDE.probe]
        for mount in request.mounts:
            args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        fonts = warm.font_cache()
        if fonts is not None:
            args += ["--ro-bind", str(fonts), warm.INSIDE]
        args += _gpu_devices(request.gpus)
        env = dict(request.env)
        visible = cuda_visible_devices(request.gpus, renumbered=False)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        for key, value in env.items():
            args += ["--setenv", key, value]
        # the sandbox's own root (/, /etc) and the hidden dataset folders take no writes, as in a container:
        # only the workspace, /tmp, home and the evidence folder do
        args += ["--remount-ro", "/"] + [a for h in HIDDEN if Path(h).is_dir() for a in ("--remount-ro", h)]
        args += ["--chdir", INSIDE.workspace, "--"]
        return args + ["/bin/sh", "-c", warm.stage_script(warm.INSIDE if fonts else None), "sh", *request.argv]

    def run(self, request: SandboxRequest) -> SandboxResult:
        (request.job_dir / "evidence").mkdir(parents=True, exist_ok=True)
        return supervise(self.command(request), request, self.name, env={"PATH": "/usr/bin:/bin"})

    def cancel(self) -> None:
        base.cancel(self.name)


def _gpu_devices(gpus: tuple[str, ...]) -> list[str]:
    """The NVIDIA device nodes of the GPUs a job was given (bwrap's /dev holds none otherwise); none here
    when the machine has no NVIDIA driver. CUDA_VISIBLE_DEVICES narrows what CUDA enumerates."""
    if not gpus:
        return []
    dev = Path("/dev")
    nodes = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"]
    if "all" in gpus:
        nodes += sorted(p.name for p in dev.glob("nvidia[0-9]*"))
    else:
        nodes += [f"nvidia{g}" for g in gpus if g.isdigit()]
    args = []
    for node in nodes:
        if (dev / node).exists():
            args += ["--dev-bind", str(dev / node), str(dev / node)]
    return args


def supervise(argv: list[str], request: SandboxRequest, name: str, env: dict[str, str]) -> SandboxResult:
    return base.supervise_process(argv, request, name, env)


register("bwrap", BwrapSandbox)
