"""Evidence: what the probe and the driver left, read back as claims.

Everything here came from the untrusted process. It is parsed defensively: a malformed line,
a missing start or end, or a sequence gap becomes an entry in `problems`, never an exception.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_EVENTS = 20000
MAX_LINE = 1_000_000


@dataclass(frozen=True)
class Fit:
    number: int
    start: dict[str, Any]
    end: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    built_model: dict[str, Any] | None = None

    def data(self, role: str) -> dict[str, Any] | None:
        """What this fit got as `role` ("x" or "validation_data"): the first item of an (x, y) tuple."""
        desc = self.start.get(role)
        if isinstance(desc, dict) and desc.get("kind") == "tuple":
            items = desc.get("items") or []
            return items[0] if items and isinstance(items[0], dict) else None
        return desc if isinstance(desc, dict) else None

    @property
    def model(self) -> dict[str, Any] | None:
        if self.end and self.end.get("model"):
            return self.end["model"]
        if self.built_model:
            return self.built_model
        return self.start.get("model")


@dataclass(frozen=True)
class Evidence:
    events: list[dict[str, Any]]
    driver: list[dict[str, Any]]
    fits: list[Fit]
    compiles: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    epochs: list[dict[str, Any]]
    quick_stopped: bool
    model_file: Path | None
    problems: list[str] = field(default_factory=list)
    cell_index: dict[int, int] = field(default_factory=dict)
    folder: Path | None = None
    training_loops: list[dict[str, Any]] = field(default_factory=list)  # steps outside fit: GradientTape, train_on_batch
    graph_file: Path | None = None  # the saved model as a TensorFlow graph (Lambda / custom layers)

    def file(self, name: object) -> Path | None:
        """An evidence file the probe named (signatures, file hashes), if it is a plain file here."""
        if not isinstance(name, str) or "/" in name or name.startswith(".") or self.folder is None:
            return None
        path = self.folder / name
        return path if path.is_file() and not path.is_symlink() else None

    def where(self, loc: dict[str, Any] | None) -> str | None:
        """'cell 7, line 3' or 'train.py:12' from a probe location."""
        if not isinstance(loc, dict):
            return None
        line = loc.get("line")
        if "cell_run" in loc:
            index = self.cell_index.get(loc["cell_run"])
            cell = f"cell {index + 1}" if isinstance(index, int) else f"executed cell {loc['cell_run']}"
            return f"{cell}, line {line}" if line else cell
        if "file" in loc:
            return f"{loc['file']}:{line}" if line else str(loc["file"])
        return None

    def last_model(self) -> dict[str, Any] | None:
        """The layer table of the last fitted model, else of the last compiled one."""
        for fit in reversed(self.fits):
            if fit.model and fit.model.get("layers") is not None:
                return fit.model
        for event in reversed(self.events):  # a custom training loop: the model the probe saved or saw train
            model = event.get("model") if event.get("kind") in ("model_saved", "training_loop") else None
            if isinstance(model, dict) and model.get("layers") is not None:
                return model
        for compiled in reversed(self.compiles):
            model = compiled.get("model")
            if model and model.get("built"):
                return model
        return None

    def history(self) -> dict[str, list[float | None]]:
        for fit in reversed(self.fits):
            if fit.end and isinstance(fit.end.get("history"), dict):
                return _float_lists(fit.end["history"])
        curves: dict[str, list] = {}
        for epoch in self.epochs:  # a run cut short still has its per-epoch logs
            for key, value in (epoch.get("logs") or {}).items():
                if isinstance(value, (int, float)):
                    curves.setdefault(str(key), []).append(value)
        return _float_lists(curves)


def _float_lists(raw: dict) -> dict[str, list[float | None]]:
    """Curves as JSON-safe lists: NaN and infinities (a diverged run) become None."""
    out = {}
    for key, values in raw.items():
        if isinstance(values, list) and all(isinstance(v, (int, float)) for v in values):
            out[str(key)] = [float(v) if math.isfinite(v) else None for v in values]
    return out


def _read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            number += 1
            if number > MAX_EVENTS:
                problems.append(f"{path.name}: more than {MAX_EVENTS} lines; the rest was ignored")
                break
            if len(raw) > MAX_LINE:
                problems.append(f"{path.name} line {number}: too long, ignored")
                while raw and not raw.endswith(b"\n"):  # skip the rest of that line
                    raw = fh.readline(MAX_LINE + 1)
                continue
            try:
                item = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                problems.append(f"{path.name} line {number}: not JSON, ignored")
                continue
            if isinstance(item, dict):
                out.append(item)
            else:
                problems.append(f"{path.name} line {number}: not an object, ignored")
    return out


def read(evidence_dir: Path) -> Evidence:
    problems: list[str] = []
    events = _read_jsonl(evidence_dir / "events.jsonl", problems)
    driver = _read_jsonl(evidence_dir / "driver.jsonl", problems)

    seqs = [e.get("seq") for e in events]
    if any(not isinstance(s, int) for s in seqs) or seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        problems.append("the probe's events are out of order or duplicated")
    elif seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        problems.append("the probe's event sequence has gaps: some evidence was removed")
    if events and events[0].get("kind") != "probe_start":
        problems.append("the probe's first event is missing")
    end = next((e for e in events if e.get("kind") == "probe_end"), None)
    if end is not None and end.get("events") != len(events):
        problems.append("the probe counted a different number of events than were kept")
    for e in events:
        if e.get("kind") == "probe_error":
            problems.append(f"probe problem ({e.get('context')}): {e.get('error')}")

    fits: dict[int, dict[str, Any]] = {}
    for e in events:
        kind, number = e.get("kind"), e.get("fit")
        if not isinstance(number, int):
            continue
        slot = fits.setdefault(number, {})
        if kind == "fit_start":
            slot["start"] = e
        elif kind == "fit_end":
            slot["end"] = e
        elif kind == "model_built":
            slot["built_model"] = e.get("model")
        elif kind == "exception":
            slot["error"] = e
    fit_list = [Fit(number=n, **slot) for n, slot in sorted(fits.items()) if "start" in slot]

    cell_index = {}
    for d in driver:
        if d.get("kind") == "cell" and isinstance(d.get("run"), int) and isinstance(d.get("index"), int):
            cell_index[d["run"]] = d["index"]

    model_file = evidence_dir / "model.keras"
    saved = any(e.get("kind") == "model_saved" for e in events)
    graph_file = evidence_dir / "model-graph.zip"
    graph_saved = any(e.get("kind") == "model_graph_saved" for e in events)
    return Evidence(
        events=events,
        driver=driver,
        fits=fit_list,
        compiles=[e for e in events if e.get("kind") == "compile"],
        exceptions=[e for e in events if e.get("kind") == "exception"],
        epochs=[e for e in events if e.get("kind") == "epoch"],
        quick_stopped=any(e.get("kind") == "quick_stop" for e in events + driver),
        model_file=model_file if saved and model_file.is_file() and not model_file.is_symlink() else None,
        problems=problems,
        cell_index=cell_index,
        folder=evidence_dir,
        training_loops=[e for e in events if e.get("kind") == "training_loop"],
        graph_file=graph_file if graph_saved and graph_file.is_file() and not graph_file.is_symlink() else None,
    )
