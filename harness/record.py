"""The record: the durable JSON result of one job (`schema_version: 1`).

Typed and frozen here, exported as a JSON Schema (`harness/schema/record.schema.json`), and
every record the harness writes is validated against that schema before an atomic write.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

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
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def validate(data: dict) -> None:
    """Raises jsonschema.ValidationError when `data` does not follow the shipped schema."""
    _validator().validate(data)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
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


def load(path: Path) -> Record:
    data = json.loads(path.read_text(encoding="utf-8"))
    validate(data)
    return Record.model_validate(data)


def files(run_dir: Path) -> list[Path]:
    """The record files of a run folder: `<student>/<assignment>.json` (assignment ids never start with a dot,
    so the reports' own bookkeeping files such as `html/.pages.json` are not taken for records)."""
    return sorted(p for p in run_dir.glob("*/*.json") if not p.name.startswith("."))
