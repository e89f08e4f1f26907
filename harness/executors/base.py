"""The executor contract: run one job's work where its resources are free, hand back what it returned.

An executor dispatches and nothing else. It is given a `JobRequest` and a task (a picklable value and a
module-level function `runner(task, resources)`), waits until the request fits, calls the runner with
the `JobResources` it was given (the GPU ids included) and returns the runner's result. Deciding what
to run (the resume cache), saving records and evidence, and showing progress stay with the caller
(`harness.grade.grade_all`); an executor only hands the caller's `progress` callback what it alone knows
(a job waits for resources; what a job on another machine reported there). Isolation is not an
executor's job either: the runner starts the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from harness.errors import UsageError
from harness.resources import JobRequest, JobResources


@dataclass(frozen=True)
class ExecutorSettings:
    jobs: int | None = None  # at most this many jobs at once; None: what the machine or cluster holds
    address: str | None = None  # where the cluster is (ray)
    machine_gpus: tuple[str, ...] | None = None  # this machine's GPU ids, overriding what is detected (local)


Runner = Callable[[Any, JobResources], Any]
Progress = Callable[[tuple], None]  # harness.progress.Tracker.relayed for one job; never raises


def tell(progress: Progress | None, item: tuple) -> None:
    """Hand a progress item on; a failing view never stops a job."""
    if progress is not None:
        try:
            progress(item)
        except Exception:
            pass


class Executor(Protocol):
    name: str
    remote: bool  # the runner runs on another machine: the task must carry the submission, the result the evidence

    def start(self, requests: list[JobRequest]) -> int:
        """Get ready for a class run whose jobs ask for `requests`; returns how many run at once."""

    def refusal(self, request: JobRequest) -> str | None:
        """Why a job asking for `request` can never run here (more GPUs or memory than there is), else None."""

    def describe(self) -> str:
        """One line: where jobs run and what that holds."""

    def run(self, request: JobRequest, runner: Runner, task: Any, progress: Progress | None = None) -> Any:
        """Wait for `request`, call `runner(task, resources)` and return its result (blocks the calling thread).
        Returns None, without running it, when the class run is being stopped. `progress` is told, with
        small plain items, that the job waits for its resources (`("stage", "waiting")`, then
        `("stage", "preparing")` once it has them) and, when the runner runs on another machine, the stages
        and epochs reported there (`harness.progress.Relay`). The result never depends on them."""

    def stop(self) -> None:
        """Ctrl-C: start nothing more, and stop what runs."""

    def close(self) -> None: ...


_REGISTRY: dict[str, Callable[[ExecutorSettings], Executor]] = {}


def register(name: str, factory: Callable[[ExecutorSettings], Executor]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str, settings: ExecutorSettings) -> Executor:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown executor {name!r}; choose one of: {', '.join(names())}") from None
    return factory(settings)
