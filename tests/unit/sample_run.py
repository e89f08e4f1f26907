"""A small run folder for the leaderboard and export tests: records built here, never by the grader."""

from __future__ import annotations

import json
from pathlib import Path

from harness import record
from harness.leaderboard import Entry
from harness.record import Check, Finding, Layer, Metrics, ModelSummary, Record, RunInfo, SubmissionInfo

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "exports"
SECRET_IDS = ["private-00017", "private-04242", "private-09876"]  # misclassified private holdout images

MNIST_LAYERS = [("Conv2D", [None, 28, 28, 32], 832), ("MaxPooling2D", [None, 14, 14, 32], 0),
                ("Conv2D", [None, 14, 14, 64], 8256), ("MaxPooling2D", [None, 7, 7, 64], 0),
                ("Dropout", [None, 7, 7, 64], 0), ("Flatten", [None, 3136], 0),
                ("Dense", [None, 1000], 3137000), ("Dense", [None, 10], 10010)]


def model(layers, source="model.keras") -> ModelSummary:
    table = [Layer(name=f"layer_{i}", type=t, output_shape=s, params=p) for i, (t, s, p) in enumerate(layers)]
    total = sum(p for _, _, p in layers)
    return ModelSummary(total_params=total, trainable_params=total, layers=table, source=source)


def check(cid, status, points, max_points, message) -> Check:
    return Check(id=cid, status=status, points=points, max_points=max_points, message=message)


def make(student, assignment, status="graded", checks=(), findings=(), mdl=None, metrics=None, mode="full",
         wall=120.0, memory=1500.0, evaluation=8.0, summary="Graded.") -> Record:
    checks = list(checks)
    return Record(
        harness_version="0.1.0", created_at="2026-11-30T03:00:00+00:00", student=student, assignment=assignment,
        status=status, score=sum(c.points for c in checks), max_score=sum(c.max_points for c in checks),
        summary=summary, checks=checks, findings=list(findings), model=mdl, metrics=metrics or Metrics(),
        history={"loss": [0.5, 0.2]} if status == "graded" else {},
        run=RunInfo(sandbox="bwrap", runtime="keras3", mode=mode, wall_seconds=wall, peak_memory_mb=memory,
                    exit_code=0, evaluation_seconds=evaluation),
        submission=SubmissionInfo(entry=f"{assignment}.ipynb", files={f"{assignment}.ipynb": "a" * 64}))


def private_metrics(private, public, wrong=SECRET_IDS) -> Metrics:
    return Metrics(holdout_accuracy=private, holdout_size=5000, public_accuracy=public, public_size=5000,
                   per_class_accuracy={"0": 0.9912, "1": 0.9876}, confusion_matrix=[[4321, 7], [9, 663]],
                   misclassified=list(wrong), preprocessing="x/255 (the training data passed to fit)")


def full_marks(student, private, public, wall=120.0):
    return make(student, "mnist-cnn", mdl=model(MNIST_LAYERS), metrics=private_metrics(private, public), wall=wall,
                checks=[check("completes", "pass", 10, 10, "The notebook ran to the end."),
                        check("architecture", "pass", 40, 40, "The model matches the reference: 8 layers, 3,156,098 params."),
                        check("holdout-accuracy", "pass", 40, 40,
                              f"Accuracy on 5,000 held-out images you never saw: {private:.4f} (full marks from 0.985, none at or below 0.95)."),
                        check("no-leaks", "pass", 10, 10, "No data leak was found.")],
                summary="Full marks.")


def entries() -> list[Entry]:
    """alice, dave: full marks on mnist-cnn; bob: an extra layer and a lower score; carol: crashed;
    frank: invalid submission; alice, grace: ox (grace leaks; alice's run was quick)."""
    bob_layers = MNIST_LAYERS[:1] + [("BatchNormalization", [None, 28, 28, 32], 128)] + MNIST_LAYERS[1:]
    bob = make("bob", "mnist-cnn", mdl=model(bob_layers), metrics=private_metrics(0.97, 0.9712), wall=240.5,
               checks=[check("completes", "pass", 10, 10, "The notebook ran to the end."),
                       check("architecture", "fail", 35, 40, "The model differs from the reference: extra "
                             "BatchNormalization (128 params) after layer 1 (Conv2D, 'conv2d')."),
                       check("holdout-accuracy", "fail", 26.67, 40,
                             "Accuracy on 5,000 held-out images you never saw: 0.9700 (full marks from 0.985, none at or below 0.95)."),
                       check("no-leaks", "pass", 10, 10, "No data leak was found.")],
               summary="The model differs from the reference, and the holdout accuracy is below the threshold.")
    carol = make("carol", "mnist-cnn", status="error", mdl=None, metrics=Metrics(), wall=14.2, evaluation=None,
                 checks=[check("completes", "fail", 0, 10, "Cell 5 raised NameError: name 'x_train' is not defined | line 3."),
                         check("architecture", "fail", 0, 40, "The grader could not read a built model from the model file."),
                         check("holdout-accuracy", "fail", 0, 40, "No holdout score: no trained model was saved."),
                         check("no-leaks", "error", 0, 10, "This check crashed inside the harness (KeyError: 'fits'); "
                               "it is not your fault.\x1b[0m")],
                 summary="Your code stopped with an error in cell 5, line 3.")
    frank = make("frank", "unknown", status="invalid-submission", wall=0.0, memory=None, evaluation=None,
                 summary="frank/homework.ipynb is named after no assignment: rename it to one of mnist-cnn, ox.")
    ox_layers = [("Conv2D", [None, 62, 62, 32], 896), ("MaxPooling2D", [None, 31, 31, 32], 0),
                 ("Conv2D", [None, 29, 29, 64], 18496), ("Flatten", [None, 53824], 0),
                 ("Dense", [None, 64], 3444800), ("Dropout", [None, 64], 0), ("Dense", [None, 1], 65)]
    alice_ox = make("alice", "ox", mode="quick", mdl=model(ox_layers), wall=9.5, evaluation=None,
                    checks=[check("completes", "skip", 0, 0, "quick check: the run stopped at the first fit on purpose"),
                            check("architecture", "pass", 40, 40, "The model matches the reference: 7 layers, 3,464,257 params."),
                            check("holdout-accuracy", "skip", 0, 0, "quick check: nothing was trained, so there is no holdout score"),
                            check("no-leaks", "pass", 10, 10, "No data leak was found.")])
    grace = make("grace", "ox", mdl=model(ox_layers), metrics=private_metrics(0.955, 0.96, ["ox-test-0003"]), wall=300.0,
                 checks=[check("completes", "pass", 10, 10, "The notebook ran to the end."),
                         check("architecture", "pass", 40, 40, "The model matches the reference: 7 layers, 3,464,257 params."),
                         check("holdout-accuracy", "pass", 40, 40, "Accuracy on 200 held-out images you never saw: 0.9550."),
                         check("no-leaks", "fail", 0, 10, "A data leak was found: augmented-validation.")],
                 findings=[Finding(rule="augmented-validation", severity="error", where="cell 4, line 2",
                                   message="Validation data comes from an augmenting generator <ImageDataGenerator>.")])
    timings = {"load_seconds": 1.5, "prepare_seconds": 0.5, "predict_seconds": 2.5, "n": 10000.0}
    return [Entry(full_marks("alice", 0.9912, 0.9898), timings), Entry(bob, {**timings, "predict_seconds": 4.0}),
            Entry(carol), Entry(full_marks("dave", 0.9912, 0.9930, wall=100.0), timings), Entry(frank),
            Entry(alice_ox), Entry(grace, {"predict_seconds": 0.25, "n": 400.0})]


def write_run(folder: Path, items: list[Entry] | None = None) -> Path:
    """Saves the records (validated) and each one's evaluation.json timings as `grade --out` lays them out."""
    for entry in items or entries():
        rec = entry.record
        path = folder / rec.student / f"{rec.assignment}.json"
        record.save(rec, path)
        if entry.timings:
            evidence = path.with_suffix(".evidence")
            evidence.mkdir(parents=True, exist_ok=True)
            (evidence / "evaluation.json").write_text(json.dumps({"schema_version": 1, "metrics": {},
                                                                   "timings": entry.timings}))
    return folder
