"""The record: the durable JSON result of one job (`schema_version: 1`).

Typed and frozen here, exported as a JSON Schema (`harness/schema/record.schema.json`), and
every record the harness writes is validated against that schema before an atomic write.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # imported where records are validated: a grade starts its first sandbox before loading it
    import jsonschema

SCHEMA_PATH = Path(__file__).parent / "schema" / "record.schema.json"

Status = Literal["graded", "error", "timeout", "memory-limit", "no-model", "invalid-submission", "interrupted"]
CheckStatus = Literal["pass", "fail", "error", "skip"]
Severity = Literal["error", "warning", "info"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(Frozen):
    id: str
    status: CheckStatus
    points: float
    max_points: float
    message: str


class Finding(Frozen):
    rule: str
    severity: Severity
    message: str
    where: str | None = None


class Layer(Frozen):
    name: str
    type: str
    output_shape: list | None
    params: int | None


class ModelSummary(Frozen):
    total_params: int | None
    trainable_params: int | None
    layers: list[Layer]
    source: str | None = Field(default=None, description="which model file the grader read this table from")


class Metrics(Frozen):
    holdout_accuracy: float | None = None
    holdout_size: int | None = None
    per_class_accuracy: dict[str, float] | None = None
    confusion_matrix: list[list[int]] | None = None
    misclassified: list[str] | None = None
    preprocessing: str | None = None
    claimed_accuracy: float | None = Field(default=None, description="what the student's own evaluate said; never scored")
    public_accuracy: float | None = Field(default=None, description="accuracy on the public part of the test split "
                                                                    "(leaderboard); holdout_accuracy is the private part")
    public_size: int | None = None


class RunInfo(Frozen):
    sandbox: str
    runtime: str
    runtime_reason: str | None = Field(default=None, description="why this runtime ran: the command line, the "
                                       "assignment's pin, or the code signs detected (absent in older records)")
    mode: Literal["quick", "full"]
    wall_seconds: float
    peak_memory_mb: float | None
    exit_code: int | None
    evaluation_seconds: float | None = None
    gpus: list[str] = Field(default=[], description="GPU devices the job was given (none: CPU only)")
    tensorflow_gpus: list[str] | None = Field(
        default=None, description="GPUs TensorFlow saw in the trusted evaluation sandbox, which had the job's "
                                  "devices; None when not measured")


class SubmissionInfo(Frozen):
    entry: str | None
    files: dict[str, str]
    assignment_digest: str | None = Field(default=None, description="assignment files + harness version graded against")


class Record(Frozen):
    schema_version: Literal[1] = 1
    harness_version: str
    created_at: str
    student: str
    assignment: str
    status: Status
    score: float
    max_score: float
    summary: str = Field(description="One plain-English sentence for the student.")
    checks: list[Check]
    findings: list[Finding]
    model: ModelSummary | None
    metrics: Metrics
    history: dict[str, list[float | None]] = Field(description="per-epoch curves; None where a value was NaN or infinite")
    run: RunInfo
    submission: SubmissionInfo
    evidence_problems: list[str] = []


def json_schema() -> dict:
    schema = Record.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "record.schema.json"
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate(data: dict) -> None:
    """Raises jsonschema.ValidationError when `data` does not follow the shipped schema."""
    _validator().validate(data)


class SchemaCheck:
    """A JSON Schema's verdict, fast when there are many documents: the first `warm` are validated by
    `jsonschema`; from then on the schema compiled to Python (fastjsonschema, some twenty times
    faster, a few tens of milliseconds to compile) accepts what it can, and anything it rejects is
    decided, its problem named as jsonschema.ValidationError, by `jsonschema` again. Only for schemas
    whose keywords mean the same in draft 7 and 2020-12 (type, properties, required,
    additionalProperties, items, enum, const, anyOf, $ref into $defs: the record and Gradescope ones)."""

    def __init__(self, path: Path, warm: int = 32):
        self._path, self._warm, self._seen, self._fast = path, warm, 0, None
        self._lock = threading.Lock()

    @cache
    def reference(self) -> jsonschema.protocols.Validator:
        import jsonschema
        return jsonschema.Draft202012Validator(json.loads(self._path.read_text()))

    def _compiled(self):
        with self._lock:
            self._seen += 1
            if self._fast is None and self._seen > self._warm:
                self._fast = False
                try:
                    import fastjsonschema
                    schema = json.loads(self._path.read_text())
                    self._fast = fastjsonschema.compile({k: v for k, v in schema.items() if k != "$schema"})
                except Exception:
                    pass
            return self._fast or None

    def __call__(self, data: dict) -> None:
        fast = self._compiled()
        if fast is not None:
            try:
                fast(data)
                return
            except Exception:
                pass
        self.reference().validate(data)


_CHECK = SchemaCheck(SCHEMA_PATH)


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Replaces `path` at once (a temporary file renamed over it). `durable=False` skips the fsync: for
    files derived from the records (leaderboards, exports), which are made again from them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(record: Record, path: Path) -> None:
    data = record.model_dump(mode="json")
    validate(data)
    write_atomic(path, json.dumps(data, indent=2) + "\n")


_LOADED: dict[bytes, Record] = {}  # sha256 of a record file's bytes -> the validated (frozen) record
_LOADED_MAX = 8192
_LOADED_LOCK = threading.Lock()


def load(path: Path) -> Record:
    """The record in `path`, validated against the schema and the model. The same bytes validate the
    same way, so a file read again in this process (the reports, then the leaderboard and the exports
    of one run) is not validated again: its hash finds the record already made."""
    raw = path.read_bytes()
    key = hashlib.sha256(raw).digest()
    with _LOADED_LOCK:
        found = _LOADED.get(key)
    if found is not None:
        return found.model_copy(deep=True)  # frozen, but its lists and dicts are not: no caller shares them
    data = json.loads(raw.decode("utf-8"))
    _CHECK(data)
    rec = Record.model_validate(data)
    with _LOADED_LOCK:
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = rec
    return rec.model_copy(deep=True)


def files(run_dir: Path) -> list[Path]:
    """The record files of a run folder: `<student>/<assignment>.json` (assignment ids never start with a dot,
    so the reports' own bookkeeping files such as `html/.pages.json` are not taken for records)."""
    return sorted(p for p in run_dir.glob("*/*.json") if not p.name.startswith("."))
