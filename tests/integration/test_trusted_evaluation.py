"""Full grading: training in the sandbox, scoring in a second sandbox on data the student never saw."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.integration
EVAL = FIXTURES / "evaluation"


def check(rec, check_id):
    return next(c for c in rec["checks"] if c["id"] == check_id)


def test_honest_training_is_scored_on_the_private_part_of_the_test_set(student, grade, data_root):
    folder = student("honest", {"fashion-mnist-cnn.py": EVAL / "trains_briefly.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("honest", "fashion-mnist-cnn")]
    metrics = rec["metrics"]
    assert rec["status"] == "graded", rec["summary"]
    assert metrics["holdout_size"] == 5_000 and metrics["public_size"] == 5_000
    assert 0.6 < metrics["holdout_accuracy"] < 0.95
    assert abs(metrics["public_accuracy"] - metrics["holdout_accuracy"]) < 0.03  # it never trained on either
    assert sum(map(sum, metrics["confusion_matrix"])) == 5_000
    assert set(metrics["per_class_accuracy"]) >= {"Trouser", "Ankle boot"}
    assert metrics["preprocessing"].startswith("x/255")
    assert metrics["claimed_accuracy"] is not None and abs(metrics["claimed_accuracy"] - metrics["holdout_accuracy"]) < 0.03
    assert len(metrics["misclassified"]) == min(100, round((1 - metrics["holdout_accuracy"]) * 5_000))
    assert rec["history"]["loss"] and len(rec["history"]["val_accuracy"]) == 2
    assert rec["run"]["evaluation_seconds"] > 0
    assert check(rec, "completes")["status"] == "pass"


def test_faked_scores_are_ignored_and_real_accuracy_is_chance(student, grade, data_root, tmp_path, root):
    # the sample student mallory: learning rate 0, patched evaluate/predict, "Test accuracy: 1.0", fake files
    folder = student("liar", {"fashion-mnist-cnn.py": root / "submissions" / "mallory" / "fashion-mnist-cnn.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("liar", "fashion-mnist-cnn")]
    assert rec["metrics"]["holdout_accuracy"] < 0.3, rec["metrics"]
    assert rec["score"] < rec["max_score"]
    accuracy = check(rec, "holdout-accuracy")
    assert accuracy["status"] == "fail" and accuracy["points"] == 0
    assert "1.0000" not in accuracy["message"]
    assert not list((tmp_path / "submissions" / "liar").glob("predictions.npy")), "the sandbox wrote into the submission"


def test_lambda_model_is_not_run_outside_the_sandbox(student, grade, data_root, tmp_path):
    # Keras refuses the Lambda (safe_mode=True); the model is scored from the graph the probe exported
    # in the student's sandbox, which holds the Lambda's TensorFlow ops but not its Python.
    token = uuid.uuid4().hex
    folder = student("lambda", {"fashion-mnist-cnn.py": EVAL / "lambda_writes_file.py", "token.txt": token})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("lambda", "fashion-mnist-cnn")]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] is not None, check(rec, "holdout-accuracy")["message"]
    assert rec["metrics"]["holdout_size"] > 0
    events = (tmp_path / "reports" / "lambda" / "fashion-mnist-cnn.evidence" / "events.jsonl").read_text()
    assert '"model_graph_saved"' in events
    for place in (Path("/tmp"), Path.home(), folder):
        assert not (place / f"pwned-{token}").exists(), f"the Lambda wrote into {place}"


def test_holdout_is_nowhere_in_the_student_sandbox(student, grade, data_root):
    folder = student("walker", {"ox.py": EVAL / "looks_for_holdout.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("walker", "ox")]
    assert "NOTHING FOUND" in rec["summary"], rec["summary"]


def test_timeout_during_training_keeps_the_layer_table(student, grade, data_root):
    folder = student("sleepy", {"fashion-mnist-cnn.py": EVAL / "sleeps_in_training.py"})
    code, records = grade("--data-root", str(data_root), "--timeout", "30", str(folder))
    rec = records[("sleepy", "fashion-mnist-cnn")]
    assert rec["status"] == "timeout"
    assert rec["model"]["total_params"] == 3_156_098
    assert check(rec, "architecture")["status"] == "pass"


def test_dataset_not_prepared_is_an_infrastructure_error(student, grade, tmp_path, capfd):
    folder = student("early", {"fashion-mnist-cnn.py": EVAL / "trains_briefly.py"})
    code, records = grade("--data-root", str(tmp_path / "empty-root"), str(folder))
    assert code == 3
    rec = records[("early", "fashion-mnist-cnn")]
    assert rec["status"] == "error"
    assert "harness data prepare fashion_mnist" in rec["summary"] and "not the student's fault" in rec["summary"]
    assert "could not be graded because of the machine" in capfd.readouterr().err


def test_author_machine_path_and_missing_package_get_a_useful_message(student, grade):
    foreign = student("kim", {"cats-vs-dogs.py": (
        "import tensorflow as tf\n"
        "train = tf.keras.utils.image_dataset_from_directory('/Users/kim/Downloads/cats_and_dogs_small/train')\n")})
    code, records = grade("--quick", str(foreign))
    summary = records[("kim", "cats-vs-dogs")]["summary"]
    assert "/Users/kim/Downloads/cats_and_dogs_small/train" in summary
    assert "data/cats_vs_dogs/train" in summary
    # learntools has an inert stand-in (issue 11); a package the runtime lacks is named
    kaggle = student("lee", {"car-or-truck.py": "from learntools.core import binder\nimport livelossplot\n"})
    code, records = grade("--quick", str(kaggle))
    summary = records[("lee", "car-or-truck")]["summary"]
    assert "livelossplot" in summary and "grading runtime has no module" in summary


@pytest.mark.parametrize("aid,classes,runtime", [("ox", {"o", "x"}, "keras3"),
                                                 ("dogs-vs-cats-small", {"cats", "dogs"}, "legacy")])
def test_folder_dataset_reference_is_evaluated_on_its_holdout_images(aid, classes, runtime, root, grade,
                                                                      student, data_root):
    folder = student(f"ref-{aid}", {f"{aid}.ipynb": root / "reference" / f"{aid}.ipynb"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[(folder.name, aid)]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["run"]["runtime"] == runtime
    metrics = rec["metrics"]
    assert metrics["holdout_size"] == 6 and metrics["public_size"] == 6  # 12 test images, split per class
    assert metrics["preprocessing"] == ("x/255 (ImageDataGenerator(rescale=1/255) on the validation data); images "
                                        "resized with PIL, interpolation 'nearest', as the submission's directory "
                                        "iterator did")
    assert sum(map(sum, metrics["confusion_matrix"])) == 6
    assert set(metrics["per_class_accuracy"]) == classes
    assert all(m.startswith("h") for m in metrics["misclassified"])
    assert [f for f in rec["findings"] if f["severity"] == "error"] == []
