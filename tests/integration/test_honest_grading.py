"""Honest code graded right: custom training loops, every interpolation Keras accepts, Lambda models
and logit outputs all end with a holdout score (full grade, real sandbox, real TensorFlow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, run_grade

pytestmark = pytest.mark.integration
HONEST = FIXTURES / "honest"
OX_STUDENTS = ("gradient_tape_loop", "gradient_tape_eager_unsaved", "train_on_batch_loop", "interpolation_area",
               "interpolation_lanczos3", "lambda_rescaling", "logits_decided_at_zero", "subclassed_model_tape_loop")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_root):
    """One class run: each honest fixture is a student handing in ox.py."""
    base = tmp_path_factory.mktemp("honest")
    for name in OX_STUDENTS:
        (base / "submissions" / name).mkdir(parents=True)
        shutil.copyfile(HONEST / f"{name}.py", base / "submissions" / name / "ox.py")
    out = base / "reports"
    code, records = run_grade(["--data-root", str(data_root), str(base / "submissions")], out)
    return {student: rec for (student, _), rec in records.items()}, out


def check(rec, check_id):
    return next(c for c in rec["checks"] if c["id"] == check_id)


def events(out, student):
    path = out / student / "ox.evidence" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("student,api,chosen,preprocessing", [
    ("gradient_tape_loop", "GradientTape", "the one your code saved",
     "x/255 (the data the GradientTape loop iterated over had values in [0"),
    ("gradient_tape_eager_unsaved", "GradientTape", "the last one your training loop updated",
     "x/255 (ImageDataGenerator(rescale=1/255) on the data the GradientTape loop iterated over)"),
    ("train_on_batch_loop", "train_on_batch", "the last one your training loop updated",
     "x/255 (ImageDataGenerator(rescale=1/255) on the data the train_on_batch loop iterated over)")])
def test_custom_training_loop_is_scored_with_a_note(graded, student, api, chosen, preprocessing):
    records, out = graded
    rec = records[student]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] is not None and rec["metrics"]["holdout_size"] > 0
    assert rec["metrics"]["preprocessing"].startswith(preprocessing), rec["metrics"]["preprocessing"]
    assert check(rec, "completes")["status"] == "pass"
    assert check(rec, "architecture")["status"] == "pass", check(rec, "architecture")["message"]
    assert check(rec, "no-leaks")["status"] == "pass"
    notes = [f for f in rec["findings"] if f["rule"] == "training-loop-unobserved"]
    assert len(notes) == 1 and notes[0]["severity"] == "info"
    assert "not checked for data leaks" in notes[0]["message"] and chosen in notes[0]["message"]
    assert notes[0]["where"].startswith("ox.py:")
    assert not [f for f in rec["findings"] if f["rule"] == "evidence-missing"]
    saved = [e for e in events(out, student) if e["kind"] == "model_saved"]
    assert saved and saved[0]["training_loops"].get(api, 0) >= 1
    assert saved[0]["model"]["class"] == "Sequential"  # not the decoy, not Keras's inner Functional copy


@pytest.mark.parametrize("method", ["area", "lanczos3"])
def test_image_dataset_interpolation_is_reproduced(graded, method):
    rec = graded[0][f"interpolation_{method}"]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] is not None
    assert rec["metrics"]["preprocessing"].startswith("x/255 ")
    assert f"tf.image.resize, method '{method}'" in rec["metrics"]["preprocessing"]


def test_lambda_model_is_scored_as_a_graph(graded):
    records, out = graded
    rec = records["lambda_rescaling"]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] is not None, check(rec, "holdout-accuracy")["message"]
    assert rec["metrics"]["preprocessing"].startswith("none (ImageDataGenerator without rescale")
    exported = [e for e in events(out, "lambda_rescaling") if e["kind"] == "model_graph_saved"]
    assert exported and exported[0]["reasons"] == ["Lambda layer 'lambda'"]
    # built-in layers only: no graph is exported at all
    assert not [e for e in events(out, "train_on_batch_loop") if e["kind"].startswith("model_graph")]


def test_subclassed_model_is_scored_as_a_graph_on_raw_pixels(graded):
    records, out = graded
    rec = records["subclassed_model_tape_loop"]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] is not None, check(rec, "holdout-accuracy")["message"]
    assert rec["metrics"]["preprocessing"].startswith(
        "none (the data the GradientTape loop iterated over had values in [0, 255]); images resized with "
        "tf.image.resize, method 'bilinear'"), rec["metrics"]["preprocessing"]
    exported = [e for e in events(out, "subclassed_model_tape_loop") if e["kind"] == "model_graph_saved"]
    assert exported and exported[0]["reasons"] == ["Net 'net' defined in the submission"]
    assert [f["rule"] for f in rec["findings"]] == ["training-loop-unobserved"]


def test_logit_output_is_decided_at_zero(graded):
    rec = graded[0]["logits_decided_at_zero"]
    assert rec["status"] == "graded", rec["summary"]
    # every logit is +0.25: decided at 0 it is 'x' everywhere (read as a probability it would be 'o')
    assert rec["metrics"]["per_class_accuracy"] == {"o": 0.0, "x": 1.0}


def test_the_evaluator_resizes_as_keras_pipelines_do(tmp_path):
    """predict.load_images against Keras's own loaders, on images that need resizing."""
    import keras
    from PIL import Image

    from harness.evaluator.predict import load_images
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "a"
    folder.mkdir(parents=True)
    ids = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        ids.append(f"{i}.png")
    for method in ("area", "lanczos3", "gaussian", "mitchellcubic", "bicubic"):
        dataset = keras.utils.image_dataset_from_directory(tmp_path / "data", labels=None, image_size=(24, 20),
                                                           interpolation=method, shuffle=False, batch_size=8)
        expected = np.concatenate([b.numpy() for b in dataset])
        got = load_images(str(folder), ids, (24, 20), 3, f"tf:{method}")
        np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=method)
    for method in ("hamming", "box", "lanczos", "nearest"):
        expected = np.stack([keras.utils.img_to_array(keras.utils.load_img(folder / i, target_size=(24, 20),
                                                                           interpolation=method)) for i in ids])
        got = load_images(str(folder), ids, (24, 20), 3, f"pil:{method}")
        np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=method)


def test_quick_grade_stops_at_the_first_step_of_a_custom_loop(student, grade):
    folder = student("quick-tape", {"ox.py": HONEST / "gradient_tape_loop.py"})
    code, records = grade("--quick", str(folder))
    rec = records[("quick-tape", "ox")]
    assert rec["status"] == "graded", rec["summary"]
    assert check(rec, "architecture")["status"] == "pass", check(rec, "architecture")["message"]
    assert check(rec, "completes")["status"] == "skip"
    assert [f["rule"] for f in rec["findings"]] == ["training-loop-unobserved"]
