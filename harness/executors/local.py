"""`local`: the jobs run in threads of this process, as many at once as the machine's CPUs, memory and
GPUs hold (`harness.resources.Pool`); each thread starts its job's sandbox and waits for it."""

from __future__ import annotations

import threading

from harness.executors.base import ExecutorSettings, Progress, Runner, register, tell
from harness.resources import Capacity, JobRequest, Pool, auto_jobs, machine_capacity, refusal


class LocalExecutor:
    name = "local"
    remote = False

    def __init__(self, settings: ExecutorSettings, capacity: Capacity | None = None):
        self.settings = settings
        self.capacity = capacity or machine_capacity(settings.machine_gpus)
        self.pool = Pool(self.capacity, settings.jobs)
        self._stop = threading.Event()
        self.workers = 1

    def start(self, requests: list[JobRequest]) -> int:
        fitting = [r for r in requests if not self.refusal(r)]
        self.workers = self.settings.jobs or auto_jobs(fitting, self.capacity)
        return self.workers

    def refusal(self, request: JobRequest) -> str | None:
        return refusal(request, self.capacity)

    def describe(self) -> str:
        return f"this machine ({self.capacity.describe()}), up to {self.workers} job(s) at once"

    def run(self, request: JobRequest, runner: Runner, task, progress: Progress | None = None):
        waited = []

        def waiting() -> None:
            waited.append(True)
            tell(progress, ("stage", "waiting"))

        held = self.pool.acquire(request, self._stop, waiting)
        if held is None:
            return None
        if waited:
            tell(progress, ("stage", "preparing"))
        try:
            return runner(task, held)
        finally:
            self.pool.release(held)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        pass


register("local", LocalExecutor)
