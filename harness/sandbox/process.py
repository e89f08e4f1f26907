"""`process`: runs the job as a plain child process. It isolates nothing.

Only for development on machines without bubblewrap or Docker; never chosen silently (the CLI
asks for `--sandbox process` and prints a warning). The same layout is made with real folders
and symlinks so jobs behave the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from harness.sandbox import base
from harness.sandbox.base import Layout, SandboxRequest, SandboxResult, cuda_visible_devices, register

WARNING = ("the 'process' sandbox isolates nothing: student code runs with your permissions, "
           "network and files. Use it only on code you trust.")


class ProcessSandbox:
    name = "process"
    isolates = False

    def unavailable_reason(self) -> str | None:
        return None

    def layout(self, job_dir: Path) -> Layout:
        job_dir = job_dir.resolve()
        return Layout(workspace=str(job_dir / "workspace"), evidence=str(job_dir / "evidence"),
                      probe=str(Path(__file__).resolve().parent.parent / "probe"),
                      home=str(job_dir / "home"), python=sys.executable)

    def run(self, request: SandboxRequest) -> SandboxResult:
        layout = self.layout(request.job_dir)
        for folder in (layout.evidence, layout.home, layout.workspace):
            Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copytree(request.stage, layout.workspace, dirs_exist_ok=True)
        for mount in request.mounts:
            target = Path(mount.target)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            os.symlink(mount.source, target)
        env = dict(request.env)
        visible = cuda_visible_devices(request.gpus, renumbered=False)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        argv = ["/bin/sh", "-c", 'cd "$HARNESS_WORKSPACE" && exec "$@"', "sh", *request.argv]
        return supervise(argv, request, self.name, env=env)

    def cancel(self) -> None:
        base.cancel(self.name)


def supervise(argv: list[str], request: SandboxRequest, name: str, env: dict[str, str]) -> SandboxResult:
    return base.supervise_process(argv, request, name, env)


register("process", ProcessSandbox)
