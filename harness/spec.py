"""Assignments: `assignments/<id>/assignment.toml`, validated once on load.

The expected layer table is not typed by hand: `harness calibrate <id>` derives it from the
reference solution and stores it as `assignments/<id>/expected-model.json`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import SpecError

SPEC_VERSION = 1


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(Frozen):
    """What the student is served. `keras` datasets come through the Keras cache; `folders`
    datasets as `data/<name>/<split>/<class>/*` with the holdout split withheld."""

    source: Literal["keras", "folders"]
    name: str
    classes: list[str]
    image_shape: list[int] = Field(min_length=2, max_length=3)
    served_splits: list[str] = ["train", "validation"]
    holdout_split: str = "test"
    standin_images_per_class: int = Field(default=4, ge=1, le=64)
    preprocessing: Literal["none", "x/255", "x/127.5-1"] | None = None
    tfds_name: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$",
                                  description="also serve the served splits offline as this TFDS dataset")
    path_aliases: list[str] = Field(default=[], description="folder names the dataset has on students' machines "
                                                            "(e.g. cats_and_dogs_small): such paths are mapped to the served splits")


class Points(Frozen):
    architecture: float = Field(default=40, ge=0)
    holdout_accuracy: float = Field(default=40, ge=0)
    no_leaks: float = Field(default=10, ge=0)
    completes: float = Field(default=10, ge=0)


class ArchitectureRules(Frozen):
    partial_credit: Literal["per-layer", "none"] = "per-layer"
    check_output_shapes: bool = True


class AccuracyRules(Frozen):
    threshold: float = Field(ge=0, le=1)
    floor: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _floor_below_threshold(self) -> "AccuracyRules":
        if self.floor > self.threshold:
            raise ValueError(f"floor {self.floor} is above threshold {self.threshold}")
        return self


class ReportRules(Frozen):
    """What the student's view of the HTML report (`harness report`) may show; the instructor's
    view shows everything. By default a student sees no private holdout result: not the private
    accuracy, per-class accuracy or confusion matrix, not the checks listed in `private_checks`
    (their result is a private score), not the misclassified private holdout images."""

    show_private_scores: bool = False
    show_private_images: bool = False
    private_checks: list[str] = ["holdout-accuracy"]


class Resources(Frozen):
    """What one job asks of the machine while it runs (besides `memory_mb`): the class-run pool and the Ray
    executor start a job only when this is free, and give it GPUs no other running job has."""

    cpus: float = Field(default=1, gt=0, le=256, description="CPU cores per job")
    gpus: int = Field(default=0, ge=0, le=64, description="GPUs per job")


class Assignment(Frozen):
    schema_version: Literal[1]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    seed: str | None = None
    runtime: Literal["auto", "keras3", "legacy"] = Field(
        default="auto", description="auto: chosen from the submission's code (harness.runtime); keras3 or legacy pin it")
    reference: str
    accepted_names: list[str] = []
    timeout_seconds: int = Field(default=1800, gt=0)
    quick_timeout_seconds: int = Field(default=180, gt=0)
    memory_mb: int = Field(default=8192, ge=512)
    max_submission_mb: int = Field(default=200, ge=1, description="a larger submission folder is not run")
    data: DataSpec
    points: Points = Points()
    architecture: ArchitectureRules = ArchitectureRules()
    accuracy: AccuracyRules
    report: ReportRules = ReportRules()
    resources: Resources = Resources()

    def entry_names(self) -> list[str]:
        return [f"{self.id}.ipynb", f"{self.id}.py", *self.accepted_names]


class ExpectedLayer(Frozen):
    type: str
    output_shape: list | None
    params: int | None
    config: dict[str, object] = {}


class ExpectedModel(Frozen):
    """Derived from the reference by `harness calibrate`; never typed by hand."""

    schema_version: Literal[1]
    assignment: str
    derived_from: str
    reference_sha256: str
    total_params: int
    trainable_params: int
    non_trainable_params: int
    layers: list[ExpectedLayer]


class CalibrationRun(Frozen):
    seed: int
    holdout_accuracy: float | None
    wall_seconds: float


class Calibration(Frozen):
    """Written by `harness calibrate <id> --runs N`: how the reference scores run to run."""

    schema_version: Literal[1]
    assignment: str
    holdout_size: int
    runs: list[CalibrationRun]
    mean: float
    std: float
    min: float
    max: float
    proposed_threshold: float
    proposed_floor: float
    review_above: float


class LoadedAssignment(Frozen):
    spec: Assignment
    folder: Path
    expected: ExpectedModel | None
    calibration: Calibration | None = None

    @property
    def id(self) -> str:
        return self.spec.id


def _explain(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid assignment file"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  field {field}: {err['msg']}")
    lines.append("  Fix the file (see assignments/README.md for every field) and run again.")
    return "\n".join(lines)


def load_assignment(folder: Path) -> LoadedAssignment:
    path = folder / "assignment.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: missing; every assignment folder needs an assignment.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc}); fix the syntax and run again") from None
    try:
        spec = Assignment.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_explain(path, exc)) from None
    if spec.id != folder.name:
        raise SpecError(f"{path}: field id is {spec.id!r} but the folder is named {folder.name!r}; make them equal")
    expected_path = folder / "expected-model.json"
    expected = None
    if expected_path.exists():
        try:
            expected = ExpectedModel.model_validate(json.loads(expected_path.read_text()))
        except (ValidationError, json.JSONDecodeError) as exc:
            raise SpecError(f"{expected_path}: invalid ({exc}); regenerate it with `harness calibrate {spec.id}`") from None
    calibration = None
    calibration_path = folder / "calibration.json"
    if calibration_path.exists():
        try:
            calibration = Calibration.model_validate(json.loads(calibration_path.read_text()))
        except (ValidationError, json.JSONDecodeError) as exc:
            raise SpecError(f"{calibration_path}: invalid ({exc}); regenerate it with "
                            f"`harness calibrate {spec.id} --runs N`") from None
    return LoadedAssignment(spec=spec, folder=folder, expected=expected, calibration=calibration)


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_assignments(graded: Iterable[Path] = ()) -> Path:
    """./assignments when there is one outside the folders being `graded` (a file stands for its folder),
    else the assignments shipped with the harness. `grade .` runs in a student's folder: an `assignments/`
    handed in there (points and thresholds of the student's own) never grades them."""
    local = Path.cwd() / "assignments"
    if not local.is_dir():
        return PROJECT_ROOT / "assignments"
    real = local.resolve()
    for path in graded:
        folder = path.resolve() if path.resolve().is_dir() else path.resolve().parent
        if real.is_relative_to(folder):
            return PROJECT_ROOT / "assignments"
    return local


def load_all(root: Path) -> dict[str, LoadedAssignment]:
    if not root.is_dir():
        raise SpecError(f"{root}: no assignments folder here; pass --assignments DIR")
    out = {}
    for folder in sorted(p for p in root.iterdir() if (p / "assignment.toml").exists()):
        loaded = load_assignment(folder)
        out[loaded.id] = loaded
    if not out:
        raise SpecError(f"{root}: holds no assignment (no */assignment.toml)")
    return out
