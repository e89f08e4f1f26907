"""`ray`: each job is a Ray task asking for its CPUs, GPUs and memory; Ray places it on a worker.

Ray dispatches and isolates nothing. The task runs harness code only (`harness.worker.run_task`), which
starts the same sandbox backend on the worker; the student's code runs inside that sandbox with no
network and a scrubbed environment, so it never reaches the Ray head. The task carries the submission's
files and brings back the record and the kept evidence; the caller writes both.

Before anything is submitted the cluster's nodes are read: a job that fits on no node (more GPUs or
memory than any node has) gets an error record at once instead of waiting for ever.

The task is a Ray streaming generator: while the runner grades the job in a thread of the worker, the
task yields what the job's `harness.progress.Relay` holds (its stages and epochs, small plain values)
every RELAY_SECONDS, then the result. Ray applies no backpressure to a generator unless asked, so a yield
never waits for the caller: a slow caller never slows a job, and the record does not depend on anyone
reading the progress. Until the first item arrives the job is `waiting` (its task has not started).

GPUs: Ray hands out GPUs by count and picks the devices itself, so a request for a number of GPUs becomes
`num_gpus`; `--gpus all` becomes the GPU count of the node with the most GPUs (the job holds all of that
node's GPUs); named device ids (`--gpus 0,2`) are refused: an id names a device of one machine, and a
cluster has many.
"""

from __future__ import annotations

import threading

from harness.errors import InfrastructureError
from harness.executors.base import ExecutorSettings, Progress, Runner, register, tell
from harness.progress import RELAY_MAX_ITEMS
from harness.resources import Capacity, JobRequest, JobResources, auto_jobs, clamp, refusal

PROGRESS, RESULT = "progress", "result"
RELAY_SECONDS = 0.5

NAMED_IDS = ("the job asks for GPU(s) {ids} by id, and the ray executor cannot honour device ids: Ray picks a "
             "worker's GPUs itself; ask for a number of GPUs (--gpus N, or --gpus all) instead")


def _call(runner: Runner, task, cpus: float, memory_mb: int):
    """The Ray task: the runner with the resources Ray gave (GPU ids as Ray assigned them), in a thread;
    yields `(PROGRESS, items)` while it runs, then `(RESULT, what it returned)`."""
    import ray
    from harness import progress
    resources = JobResources(cpus=cpus, memory_mb=memory_mb, gpu_ids=tuple(str(i) for i in ray.get_gpu_ids()))
    relay, box = progress.Relay(), {}

    def work() -> None:
        try:
            with progress.relaying(relay):
                box[RESULT] = runner(task, resources)
        except BaseException as exc:  # raised again in the task, where Ray reports it to the caller
            box["error"] = exc

    thread = threading.Thread(target=work, name="harness-job", daemon=True)
    thread.start()
    yield PROGRESS, [("stage", "preparing")]
    while thread.is_alive():
        thread.join(RELAY_SECONDS)
        items = relay.take()
        if items:
            yield PROGRESS, items
    if "error" in box:
        raise box["error"]
    yield RESULT, box[RESULT]


class RayExecutor:
    name = "ray"
    remote = True

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings
        self.nodes: list[Capacity] = []
        self.started_here = False
        self._remote = None
        self._refs: set = set()  # the running tasks' ObjectRefGenerators (ray.cancel takes them)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.workers = 1

    def _connect(self) -> None:
        try:
            import ray
        except ImportError:
            raise InfrastructureError("the ray executor needs the ray package: run `make install`") from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.settings.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
            except Exception as exc:
                where = self.settings.address or "this machine (RAY_ADDRESS, or a new local instance)"
                raise InfrastructureError(f"cannot connect to the Ray cluster at {where}: {exc}") from None
            self.started_here = True
        self.nodes = [Capacity(cpus=float(n["Resources"].get("CPU", 0)),
                               memory_mb=int(n["Resources"].get("memory", 0) // 2**20),
                               gpu_ids=tuple(str(i) for i in range(int(n["Resources"].get("GPU", 0)))))
                      for n in ray.nodes() if n.get("Alive")]
        if not self.nodes:
            raise InfrastructureError("the Ray cluster has no live node; start workers with `ray start --address ...`")
        self._remote = ray.remote(max_retries=0)(_call)

    def start(self, requests: list[JobRequest]) -> int:
        self._connect()
        fitting = [self.counted(r) for r in requests if not self.refusal(r)]
        self.workers = self.settings.jobs or sum(auto_jobs(fitting, node) for node in self.nodes)
        return self.workers

    def _largest(self) -> Capacity:
        return Capacity(cpus=max(n.cpus for n in self.nodes), memory_mb=max(n.memory_mb for n in self.nodes),
                        gpu_ids=max((n.gpu_ids for n in self.nodes), key=len))

    def counted(self, request: JobRequest) -> JobRequest:
        """`request` as Ray takes it: a count of GPUs (`all`: the most any node has)."""
        if request.gpu_ask.every:
            return JobRequest(cpus=request.cpus, memory_mb=request.memory_mb,
                              gpus=max(len(n.gpu_ids) for n in self.nodes) if self.nodes else 0)
        return request

    def refusal(self, request: JobRequest) -> str | None:
        if request.gpu_ids and not request.gpu_ask.every:
            return NAMED_IDS.format(ids=", ".join(request.gpu_ids))
        if request.gpu_ask.every and not any(n.gpu_ids for n in self.nodes):
            return refusal(request, self._largest(), "the Ray cluster")
        request = self.counted(request)
        if any(refusal(request, node) is None for node in self.nodes):
            return None
        return refusal(request, self._largest(), "the largest node of the Ray cluster")

    def describe(self) -> str:
        total = Capacity(cpus=sum(n.cpus for n in self.nodes), memory_mb=sum(n.memory_mb for n in self.nodes),
                         gpu_ids=tuple(g for n in self.nodes for g in n.gpu_ids))
        return f"a Ray cluster of {len(self.nodes)} node(s) ({total.describe()}), up to {self.workers} job(s) at once"

    def run(self, request: JobRequest, runner: Runner, task, progress: Progress | None = None):
        import ray
        request = clamp(self.counted(request), self._largest())
        if self._stop.is_set():
            return None
        tell(progress, ("stage", "waiting"))  # until the task has started on a worker and said so
        with self._lock:
            if self._stop.is_set():
                return None
            stream = self._remote.options(num_cpus=request.cpus, num_gpus=request.gpus,
                                          memory=request.memory_mb * 2**20).remote(
                runner, task, request.cpus, request.memory_mb)
            self._refs.add(stream)
        try:
            result, done = None, False
            for item in stream:  # to its end: the task has finished and given its resources back
                kind, value = ray.get(item)
                if kind == RESULT:
                    result, done = value, True
                elif isinstance(value, list):
                    for step in value[:RELAY_MAX_ITEMS]:
                        tell(progress, step)
            if not done:
                raise InfrastructureError("the Ray task of this job ended without a record; run grade again")
            return result
        except ray.exceptions.TaskCancelledError:
            return None
        except ray.exceptions.RayError as exc:
            raise InfrastructureError(f"the Ray task of this job failed on the cluster ({type(exc).__name__}: "
                                      f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''})") from None
        finally:
            with self._lock:
                self._refs.discard(stream)

    def stop(self) -> None:
        import ray
        with self._lock:
            self._stop.set()
            refs = list(self._refs)
        for ref in refs:
            try:
                ray.cancel(ref, force=True)  # the worker process dies; bubblewrap's --die-with-parent ends the job
            except Exception:
                pass

    def close(self) -> None:
        if self.started_here:
            import ray
            ray.shutdown()
            self.started_here = False


register("ray", RayExecutor)
