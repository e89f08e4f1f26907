"""The progress of a class run, shown while it runs: a small sink protocol, a registry of sinks
(`rich`: a live view for a terminal; `plain`: one line per job start and end, for CI logs), and the
`Tracker` that `grade_all` drives.

The tracker never lets a sink break grading: every call into a sink is guarded, and a sink that
raises is closed, named on stderr and not called again. Stages are reported by the run stage
through `report_stage(job, ...)`, which is a no-op for a job no tracker or relay follows
(`harness rescore`).

A job waiting for its resources (the local pool is full, or its Ray task has not started on a worker)
is in the `waiting` stage; the executor says so through the `progress` callback of `Executor.run`,
which the tracker turns into sink calls (`Tracker.relayed`). A job that runs on another machine (Ray)
reports its stages and epochs there to a `Relay` (`relaying`), whose small plain items the executor
carries back to the same callback while the job runs.

Epochs are read from the running job's own `events.jsonl` in its evidence folder (on the host, or by
the relay on the worker), on a tick: that file is written by the untrusted process, so it is opened
without following a symlink, only when it is a regular file, read in bounded steps (never more than
`MAX_TAIL_BYTES`), and only whole lines of at most `MAX_TAIL_LINE` bytes are parsed. Only numbers are taken from it
(epoch, epochs, loss and accuracy); no text the student wrote is ever shown.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TextIO

STAGES = ("waiting", "preparing", "running", "evaluating", "judging")
EVENTS_FILE = "events.jsonl"
MAX_TAIL_LINE = 64 * 1024  # an epoch line is a few hundred bytes; longer lines are skipped unparsed
MAX_TAIL_STEP = 1 << 20  # read per job per tick
MAX_TAIL_BYTES = 64 * 2**20  # read per job in all; after that the view stops looking at its epochs
TICK_SECONDS = 0.5  # how often running jobs' epochs are read
WAIT_LOGGED_SECONDS = 5.0  # the plain log names a wait for resources only when it lasted this long
RELAY_MAX_ITEMS = 16  # progress items a worker holds for its caller (stages are few; epochs are coalesced)


# ---------------------------------------------------------------- what sinks are told

@dataclass(frozen=True)
class JobRef:
    """A job as a view names it (printable student folder name and assignment id)."""

    student: str
    assignment: str

    def __str__(self) -> str:
        return f"{self.student}/{self.assignment}"


@dataclass(frozen=True)
class EpochSeen:
    """The latest epoch a running job reported (its claim: shown, never graded)."""

    epoch: int  # 1-based, as Keras prints it
    epochs: int | None = None  # the fit's `epochs`, when it was a plain number
    fit: int | None = None  # which fit call (1-based), when the probe saw it start
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None


@dataclass(frozen=True)
class JobDone:
    job: JobRef
    status: str  # a record status, or "no record" when none could be written
    score: float
    max_score: float
    cached: bool  # unchanged since the last run: its record was kept, nothing ran
    seconds: float  # wall time of the whole job (run, evaluation, judging); 0 when cached


class ProgressSink(Protocol):
    """What a class run tells a view, in order: run started, jobs queued, then per job started, stage changes,
    epochs, finished (a cached job only finishes), and run finished. Calls come from several threads, one at
    a time (the tracker serialises them)."""

    def run_started(self, total: int, workers: int, out: Path) -> None: ...
    def job_queued(self, job: JobRef) -> None: ...
    def job_started(self, job: JobRef) -> None: ...
    def stage_changed(self, job: JobRef, stage: str) -> None: ...
    def epoch_seen(self, job: JobRef, epoch: EpochSeen) -> None: ...
    def job_finished(self, done: JobDone) -> None: ...
    def run_finished(self, interrupted: bool) -> None: ...
    def close(self) -> None: ...  # stop drawing at once (after a failure); restores the terminal


class Sink:
    """A sink that does nothing: subclasses override what they show."""

    def run_started(self, total: int, workers: int, out: Path) -> None: pass
    def job_queued(self, job: JobRef) -> None: pass
    def job_started(self, job: JobRef) -> None: pass
    def stage_changed(self, job: JobRef, stage: str) -> None: pass
    def epoch_seen(self, job: JobRef, epoch: EpochSeen) -> None: pass
    def job_finished(self, done: JobDone) -> None: pass
    def run_finished(self, interrupted: bool) -> None: pass
    def close(self) -> None: pass


_REGISTRY: dict[str, Callable[..., ProgressSink]] = {}


def register(name: str, factory: Callable[..., ProgressSink]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def make(kind: str = "auto", stream: TextIO | None = None, console: Any = None) -> ProgressSink | None:
    """The sink for `--progress KIND`: `auto` is `rich` when the output is a terminal, else `plain`;
    `none` is no sink."""
    from harness.errors import UsageError
    stream = stream or sys.stdout
    if kind == "none":
        return None
    if kind == "auto":
        try:
            kind = "rich" if stream.isatty() else "plain"
        except (AttributeError, ValueError, OSError):
            kind = "plain"
    if kind not in _REGISTRY:
        raise UsageError(f"unknown progress view {kind!r}; choose one of: auto, none, {', '.join(names())}")
    return _REGISTRY[kind](stream=stream, console=console)


# ---------------------------------------------------------------- pure helpers shared by the views

def clean(text: str) -> str:
    """Printable on one line: control characters (escape sequences, newlines, carriage returns) as `\\xNN`."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)


def ref(student: str, assignment: str) -> JobRef:
    return JobRef(clean(student), clean(assignment))


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def eta(total: int, finished: list[JobDone], elapsed: float) -> float | None:
    """Seconds left at the rate jobs that ran have finished so far (cached jobs cost nothing); None until
    one has run."""
    ran = sum(1 for d in finished if not d.cached)
    left = total - len(finished)
    if left <= 0:
        return 0.0
    if ran == 0 or elapsed <= 0:
        return None
    return left * elapsed / ran


def epoch_text(seen: EpochSeen | None) -> str:
    if seen is None:
        return ""
    parts = [f"epoch {seen.epoch}" + (f"/{seen.epochs}" if seen.epochs else "")]
    if seen.fit and seen.fit > 1:
        parts[0] = f"fit {seen.fit} " + parts[0]
    for name, value in (("loss", seen.loss), ("acc", seen.accuracy), ("val_acc", seen.val_accuracy)):
        if value is not None:
            # a student's loss can be any finite float (1e308): keep the line short
            parts.append(f"{name} {value:.4f}" if abs(value) < 1e4 else f"{name} {value:.3g}")
    return " ".join(parts)


def status_word(status: str) -> str:
    from harness.reports import STATUS_WORDS
    return STATUS_WORDS.get(status, status)


@dataclass(frozen=True)
class Summary:
    total: int
    finished: int
    counts: dict[str, int]  # by record status
    full_marks: int
    cached: int
    slowest: list[JobDone]
    interrupted: bool

    @classmethod
    def of(cls, total: int, done: list[JobDone], interrupted: bool, slowest: int = 3) -> "Summary":
        ran = sorted((d for d in done if not d.cached), key=lambda d: -d.seconds)
        return cls(total=total, finished=len(done), counts=dict(Counter(d.status for d in done)),
                   full_marks=sum(1 for d in done if d.status == "graded" and d.score >= d.max_score),
                   cached=sum(1 for d in done if d.cached), slowest=ran[:slowest], interrupted=interrupted)

    def lines(self, seconds: float, out: Path | None) -> list[str]:
        head = "Interrupted" if self.interrupted else "Finished"
        lines = [f"{head}: {self.finished} of {self.total} job(s) in {clock(seconds)}"]
        counts = [f"{n} {status_word(s)}" + (f" ({self.full_marks} with full marks)" if s == "graded" else "")
                  for s, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], status_word(kv[0])))]
        if counts:
            lines.append(", ".join(counts))
        if self.cached:
            lines.append(f"{self.cached} job(s) unchanged since the last run: their records were kept, nothing ran")
        if self.total > self.finished:
            lines.append(f"{self.total - self.finished} job(s) not graded: run grade again and it resumes with them")
        if self.slowest:
            lines.append("Slowest: " + ", ".join(f"{d.job} {d.seconds:.1f} s" for d in self.slowest))
        if out is not None:
            lines.append(f"Records and reports in {clean(str(out))}/")
        return lines


# ---------------------------------------------------------------- reading epochs from a running job

def _int(value: object, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


class EventsTail:
    """The new epochs in a running job's `events.jsonl`, read a bounded step at a time; never raises."""

    def __init__(self, folder: Path):
        self.folder, self.offset, self.partial, self.skipping = folder, 0, b"", False
        self.fits, self.epochs, self.stopped = 0, None, False

    def poll(self) -> EpochSeen | None:
        """The latest epoch in what was appended since the last poll, if any."""
        if self.stopped:
            return None
        try:
            chunk = self._read()
        except OSError:
            return None  # not there yet, or gone (the run ended)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        if self.skipping and lines:  # the rest of a line that was too long
            lines.pop(0)
            self.skipping = False
        if len(self.partial) > MAX_TAIL_LINE:
            self.partial, self.skipping = b"", True
        latest = None
        for line in lines:
            if len(line) <= MAX_TAIL_LINE and b"epoch" in line:
                latest = self._parse(line) or latest
        return latest

    def _read(self) -> bytes:
        folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(EVENTS_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder)
        finally:
            os.close(folder)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size < self.offset or self.offset >= MAX_TAIL_BYTES:
                self.stopped = True  # not a file, truncated or replaced, or too much: stop looking
                return b""
            want = min(info.st_size - self.offset, MAX_TAIL_STEP, MAX_TAIL_BYTES - self.offset)
            data = os.pread(fd, want, self.offset) if want > 0 else b""
            self.offset += len(data)
            return data
        finally:
            os.close(fd)

    def _parse(self, line: bytes) -> EpochSeen | None:
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(item, dict):
            return None
        kind = item.get("kind")
        if kind == "fit_start":
            self.fits += 1
            self.epochs = _int(item.get("epochs"), 1, 10**7)
            return None
        if kind != "epoch":
            return None
        number = _int(item.get("epoch"), 0, 10**7)
        if number is None:
            return None
        logs = item.get("logs") if isinstance(item.get("logs"), dict) else {}
        return EpochSeen(epoch=number + 1, epochs=self.epochs, fit=self.fits or None,
                         loss=_number(logs.get("loss")),
                         accuracy=_number(logs.get("accuracy", logs.get("acc"))),
                         val_loss=_number(logs.get("val_loss")),
                         val_accuracy=_number(logs.get("val_accuracy", logs.get("val_acc"))))


# ---------------------------------------------------------------- the tracker grade_all drives

_ACTIVE: dict[Any, "Tracker"] = {}  # job -> the tracker following it
_ACTIVE_LOCK = threading.Lock()
_RELAYS = threading.local()  # .relay: the Relay of the job this thread grades on a worker


def report_stage(job: Any, stage: str, evidence: Path | None = None) -> None:
    """The run stage says where `job` is (`evidence`: its evidence folder while it runs): to the tracker
    following it in this process, else to the relay of this thread (a job graded on a Ray worker). Never
    raises."""
    try:
        with _ACTIVE_LOCK:
            tracker = _ACTIVE.get(job)
        if tracker is None:
            tracker = getattr(_RELAYS, "relay", None)
        if tracker is not None:
            tracker.stage(job, stage, evidence)
    except Exception:  # a view never breaks grading
        pass


# ---------------------------------------------------------------- progress from another machine

def epoch_item(seen: EpochSeen) -> tuple[str, dict]:
    return "epoch", asdict(seen)


def epoch_from(value: object) -> EpochSeen | None:
    """An epoch item's numbers, checked again on the caller (None when it is not one)."""
    if not isinstance(value, dict):
        return None
    epoch = _int(value.get("epoch"), 1, 10**7 + 1)
    if epoch is None:
        return None
    return EpochSeen(epoch=epoch, epochs=_int(value.get("epochs"), 1, 10**7), fit=_int(value.get("fit"), 1, 10**7),
                     **{name: _number(value.get(name)) for name in ("loss", "accuracy", "val_loss", "val_accuracy")})


class Relay:
    """The worker side of a job graded on another machine. It takes the run stage's `report_stage` calls
    in the job's thread (see `relaying`), reads the job's epochs from its events file with the same bounded
    `EventsTail` as the tracker, and holds small plain items until the executor takes them (`take`) and
    sends them to the caller: `("stage", name)` with a name from STAGES, `("epoch", {field: number})`. No
    text the student wrote is ever in an item. Consecutive epochs are coalesced to the latest and at most
    RELAY_MAX_ITEMS are held, so what waits for a slow caller stays small."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Any]] = []
        self._tail: EventsTail | None = None

    def _add(self, item: tuple[str, Any]) -> None:
        if item[0] == "epoch" and self._items and self._items[-1][0] == "epoch":
            self._items[-1] = item
        elif len(self._items) < RELAY_MAX_ITEMS:
            self._items.append(item)

    def _poll(self) -> None:
        seen = self._tail.poll() if self._tail is not None else None
        if seen is not None:
            self._add(epoch_item(seen))

    def stage(self, job: Any, stage: str, evidence: Path | None = None) -> None:
        if stage not in STAGES:
            return
        with self._lock:
            self._poll()  # the epochs written just before the run ended
            self._tail = EventsTail(evidence) if stage == "running" and evidence is not None else None
            self._add(("stage", stage))

    def take(self) -> list[tuple[str, Any]]:
        """What happened since the last take (the newest epoch read now); never raises."""
        with self._lock:
            try:
                self._poll()
            except Exception:
                pass
            items, self._items = self._items, []
            return items


@contextmanager
def relaying(relay: Relay) -> Iterator[Relay]:
    """`report_stage` calls from this thread (for a job no tracker here follows) go to `relay`."""
    previous = getattr(_RELAYS, "relay", None)
    _RELAYS.relay = relay
    try:
        yield relay
    finally:
        _RELAYS.relay = previous


def _warn(message: str) -> None:
    try:
        print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr, flush=True)
    except Exception:
        pass


class Tracker:
    """Turns a class run into sink calls: guarded, serialised, with a tick thread that reads the epochs of
    running jobs. With no sink every method is a cheap no-op."""

    def __init__(self, sink: ProgressSink | None, jobs: list, workers: int, out: Path,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.sink, self.jobs, self.workers, self.out = sink, list(jobs), workers, out
        self.interval, self.clock = interval or TICK_SECONDS, clock
        self._lock = threading.RLock()
        self._started: dict[Any, float] = {}
        self._tails: dict[Any, EventsTail] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _call(self, method: str, *args) -> None:
        with self._lock:
            if self.sink is None:
                return
            try:
                getattr(self.sink, method)(*args)
            except Exception as exc:
                sink, self.sink = self.sink, None
                try:
                    sink.close()
                except Exception:
                    pass
                _warn(f"warning: the progress view failed ({type(exc).__name__}: {exc}); grading goes on "
                      f"without it")

    @staticmethod
    def _ref(job) -> JobRef:
        return ref(job.student, job.assignment)

    def start(self) -> None:
        if self.sink is None:
            return
        self._call("run_started", len(self.jobs), self.workers, self.out)
        for job in self.jobs:
            self._call("job_queued", self._ref(job))
        self._thread = threading.Thread(target=self._tick, name="progress-tick", daemon=True)
        self._thread.start()

    def started(self, job) -> None:
        if self.sink is None:
            return
        with _ACTIVE_LOCK:
            _ACTIVE[job] = self
        with self._lock:
            self._started[job] = self.clock()
        self._call("job_started", self._ref(job))
        self._call("stage_changed", self._ref(job), "preparing")

    def stage(self, job, stage: str, evidence: Path | None = None) -> None:
        with self._lock:
            if self.sink is None or job not in self._started:
                return
            if stage == "running" and evidence is not None:
                self._tails[job] = EventsTail(evidence)
            else:
                tail = self._tails.pop(job, None)
                if tail is not None:  # the epochs written just before the run ended
                    self._epoch(job, tail)
        self._call("stage_changed", self._ref(job), stage)

    def relayed(self, job, item: object) -> None:
        """A progress item from where the job runs (the executor's `progress` callback): `("stage", name)`
        or an epoch item. Checked here, shown as if reported here; anything else is dropped. Never raises."""
        try:
            if not isinstance(item, tuple) or len(item) != 2:
                return
            kind, value = item
            if kind == "stage" and isinstance(value, str) and value in STAGES:
                self.stage(job, value)
            elif kind == "epoch":
                seen = epoch_from(value)
                with self._lock:
                    if seen is not None and job in self._started:
                        self._call("epoch_seen", self._ref(job), seen)
        except Exception:  # a view never breaks grading
            pass

    def finished(self, job, rec, cached: bool) -> None:
        with _ACTIVE_LOCK:
            if _ACTIVE.get(job) is self:
                del _ACTIVE[job]
        with self._lock:
            self._tails.pop(job, None)
            began = self._started.pop(job, None)
            if self.sink is None:
                return
            seconds = 0.0 if began is None else max(0.0, self.clock() - began)
            done = JobDone(job=self._ref(job), status=rec.status if rec is not None else "no record",
                           score=rec.score if rec is not None else 0, max_score=rec.max_score if rec is not None else 0,
                           cached=cached, seconds=seconds)
            self._call("job_finished", done)

    def finish(self, interrupted: bool) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with _ACTIVE_LOCK:
            for job in [j for j, t in _ACTIVE.items() if t is self]:
                del _ACTIVE[job]
        self._call("run_finished", interrupted)

    def _epoch(self, job, tail: EventsTail) -> None:
        seen = tail.poll()
        if seen is not None:
            self._call("epoch_seen", self._ref(job), seen)

    def poll(self) -> None:
        """One tick: the new epochs of every running job."""
        with self._lock:
            for job, tail in list(self._tails.items()):
                self._epoch(job, tail)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # never let the tick thread die loudly; the next tick tries again
                pass


# ---------------------------------------------------------------- the plain log (CI)

class PlainLog(Sink):
    """One line when a job starts and one when it ends, flushed; epoch lines at most every `epoch_every`
    seconds per job (a long job shows it is alive); a line when a job waited `wait_logged` seconds or more
    for its resources (shorter waits are left out, to keep CI logs short); a summary at the end. No control
    characters."""

    def __init__(self, stream: TextIO | None = None, console: Any = None, epoch_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, wait_logged: float | None = None):
        self.stream, self.epoch_every, self.clock = stream or sys.stdout, epoch_every, clock
        self.wait_logged = WAIT_LOGGED_SECONDS if wait_logged is None else wait_logged
        self.total, self.out, self.began = 0, None, 0.0
        self.done: list[JobDone] = []
        self.last_epoch: dict[JobRef, float] = {}
        self.waiting: dict[JobRef, float] = {}  # job -> when it began to wait

    def _line(self, text: str) -> None:
        self.stream.write(clean(text) + "\n")
        self.stream.flush()

    def run_started(self, total: int, workers: int, out: Path) -> None:
        self.total, self.out, self.began = total, out, self.clock()

    def job_started(self, job: JobRef) -> None:
        self._line(f"start {job}")

    def stage_changed(self, job: JobRef, stage: str) -> None:
        now = self.clock()
        since = self.waiting.pop(job, None)
        if stage == "waiting":
            self.waiting[job] = now if since is None else since
        elif since is not None and now - since >= self.wait_logged:
            self._line(f"wait  {job}: waited {now - since:.0f} s for its resources, now {stage}")

    def epoch_seen(self, job: JobRef, epoch: EpochSeen) -> None:
        now = self.clock()
        last = self.last_epoch.get(job)
        if last is None or now - last >= self.epoch_every:
            self.last_epoch[job] = now
            self._line(f"epoch {job}: {epoch_text(epoch)}")

    def job_finished(self, done: JobDone) -> None:
        self.done.append(done)
        self.last_epoch.pop(done.job, None)
        self.waiting.pop(done.job, None)
        how = "unchanged, not run again" if done.cached else f"{done.seconds:.1f} s"
        self._line(f"end   {done.job}: {done.status}, {done.score:g}/{done.max_score:g} ({how}) "
                   f"[{len(self.done)}/{self.total} done]")

    def run_finished(self, interrupted: bool) -> None:
        for line in Summary.of(self.total, self.done, interrupted).lines(self.clock() - self.began, self.out):
            self._line(line)


register("plain", PlainLog)


# ---------------------------------------------------------------- the rich live view (a terminal)

@dataclass
class Running:
    job: JobRef
    since: float
    stage: str = "preparing"
    epoch: EpochSeen | None = None


@dataclass
class ViewState:
    """Everything the live view shows; changed only by sink calls, so it is pure over the events."""

    total: int = 0
    workers: int = 1
    out: Path | None = None
    began: float = 0.0
    running: dict[JobRef, Running] = field(default_factory=dict)
    done: list[JobDone] = field(default_factory=list)


STAGE_STYLE = {"waiting": "yellow", "preparing": "cyan", "running": "bold green", "evaluating": "magenta",
               "judging": "blue"}
DONE_STYLE = {"graded": "green", "interrupted": "yellow"}


class RichView(Sink):
    """A live display: a progress bar with done/total, elapsed and ETA, one line per running job (student,
    assignment, stage, elapsed, latest epoch); finished jobs print above it; a summary at the end."""

    def __init__(self, stream: TextIO | None = None, console: Any = None, live: bool = True,
                 clock: Callable[[], float] = time.monotonic, max_lines: int = 12):
        from rich.console import Console
        self.console = console if console is not None else Console(file=stream)
        self.live, self.clock, self.max_lines = live, clock, max_lines
        self.state = ViewState()
        self._lock = threading.Lock()
        self._live = None
        self.failed: str | None = None

    # -- sink calls: state changes only (the live display redraws on its own tick)
    def run_started(self, total: int, workers: int, out: Path) -> None:
        with self._lock:
            self.state = ViewState(total=total, workers=workers, out=out, began=self.clock())
        if self.live:
            from rich.live import Live
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def job_started(self, job: JobRef) -> None:
        with self._lock:
            self.state.running[job] = Running(job=job, since=self.clock())

    def stage_changed(self, job: JobRef, stage: str) -> None:
        with self._lock:
            if job in self.state.running:
                self.state.running[job].stage = stage

    def epoch_seen(self, job: JobRef, epoch: EpochSeen) -> None:
        with self._lock:
            if job in self.state.running:
                self.state.running[job].epoch = epoch

    def job_finished(self, done: JobDone) -> None:
        with self._lock:
            self.state.running.pop(done.job, None)
            self.state.done.append(done)
        self.console.print(self.done_line(done))  # above the live lines

    def run_finished(self, interrupted: bool) -> None:
        self.close()
        self.console.print(self.summary(interrupted))

    def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    # -- rendering
    @staticmethod
    def done_line(done: JobDone):
        from rich.text import Text
        mark = ("✓" if done.score >= done.max_score else "•") if done.status == "graded" else "✗"
        line = Text(f"{mark} ")
        line.append(str(done.job), style="bold")
        line.append(f"  {status_word(done.status)} ", style=DONE_STYLE.get(done.status, "red"))
        line.append(f"{done.score:g}/{done.max_score:g}  ")
        line.append("unchanged, not run again" if done.cached else f"{done.seconds:.1f} s", style="dim")
        return line

    def __rich_console__(self, console, options):
        try:
            yield self.render(width=options.max_width)
        except Exception as exc:  # drawn by rich's own thread: never raise there
            from rich.text import Text
            self.failed = f"{type(exc).__name__}: {exc}"
            yield Text(f"(the progress view cannot draw: {clean(self.failed)})")

    def render(self, now: float | None = None, width: int | None = None):
        """The live lines: the bar with done/total, elapsed and ETA, then one line per running job. Every
        line is cut at the console's width (names, stage and time keep their place; the epoch is cut)."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        now = self.clock() if now is None else now
        width = width or self.console.width
        with self._lock:
            state = replace(self.state, running={k: replace(v) for k, v in self.state.running.items()},
                            done=list(self.state.done))
        elapsed = now - state.began
        finished = len(state.done)
        left = eta(state.total, state.done, elapsed)
        counts = Text(no_wrap=True, overflow="ellipsis")
        counts.append(f"{finished}/{state.total} done", style="bold")
        waiting = sum(1 for r in state.running.values() if r.stage == "waiting")
        counts.append(f"  {len(state.running) - waiting} running" + (f", {waiting} waiting" if waiting else "")
                      + f"  elapsed {clock(elapsed)}  ")
        counts.append(f"ETA {clock(left) if left is not None else '--:--'}", style="cyan")
        bar = max(10, min(40, width - 62))
        head = Table.grid(padding=(0, 1))
        head.add_column(width=bar)
        head.add_column(no_wrap=True, overflow="ellipsis")
        head.add_row(ProgressBar(total=max(state.total, 1), completed=finished, width=bar), counts)
        shown = sorted(state.running.values(), key=lambda r: r.since)
        if not shown:
            return head
        sw = min(28, max([7, *(len(r.job.student) for r in shown)]))
        aw = min(28, max([10, *(len(r.job.assignment) for r in shown)]))

        def fit(text: str, size: int) -> str:
            return (text if len(text) <= size else text[:size - 1] + "…").ljust(size)

        lines = [Text(f"  {fit('student', sw)}  {fit('assignment', aw)}  {fit('stage', 10)}  elapsed  latest epoch",
                      style="dim", no_wrap=True, overflow="ellipsis")]
        for running in shown[:self.max_lines]:
            line = Text("  ", no_wrap=True, overflow="ellipsis")
            line.append(fit(running.job.student, sw), style="bold")
            line.append(f"  {fit(running.job.assignment, aw)}  ")
            line.append(fit(running.stage, 10), style=STAGE_STYLE.get(running.stage, ""))
            line.append(f"  {clock(now - running.since):>7}  {epoch_text(running.epoch)}")
            lines.append(line)
        if len(shown) > self.max_lines:
            lines.append(Text(f"  … and {len(shown) - self.max_lines} more running", style="dim"))
        return Group(head, *lines)

    def screen(self, now: float | None = None, width: int | None = None):
        """What the terminal shows during the run: the finished jobs' lines above the live lines."""
        from rich.console import Group
        with self._lock:
            done = list(self.state.done)
        return Group(*(self.done_line(d) for d in done), self.render(now, width))

    def busy(self) -> tuple[int, int, int]:
        """(finished, running, training: running with an epoch seen and still in the run stage)."""
        with self._lock:
            running = list(self.state.running.values())
            return (len(self.state.done), len(running),
                    sum(1 for r in running if r.epoch is not None and r.stage == "running"))

    def summary(self, interrupted: bool):
        from rich.text import Text
        with self._lock:
            state = replace(self.state, done=list(self.state.done))
        lines = Summary.of(state.total, state.done, interrupted).lines(self.clock() - state.began, state.out)
        text = Text()
        for number, line in enumerate(lines):
            text.append(line + "\n", style="bold" if number == 0 else "")
        text.rstrip()
        return text


register("rich", RichView)
