"""Honest code graded right: logit outputs decided at 0, the submission's own resizing reproduced,
custom training loops kept as evidence, and plain messages when a model cannot be scored."""

import json

import numpy as np
import pytest

from harness import evidence
from harness.evaluate import _explain_failure, binary_threshold, infer_preprocessing, validate_predictions
from harness.evaluator.predict import describe_archive, output_activation, resize_method


def read(tmp_path, events):
    events = [{"seq": i + 1, **e} for i, e in enumerate(events)]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return evidence.read(tmp_path)


def dense(units, activation, name="dense"):
    return {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": name, "units": units, "activation": activation}}


def sequential(*layers):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "sequential", "layers": [{"class_name": "InputLayer", "config": {}}, *layers]}}


def test_a_single_logit_unit_is_decided_at_zero():
    logits = np.array([[0.25], [-0.3], [0.7], [-2.0]], dtype=np.float32)
    predicted, problem = validate_predictions(logits, 4, 2, output_activation="linear")
    assert problem is None and list(predicted) == [1, 0, 1, 0]
    assert binary_threshold("linear", logits) == 0.0 and binary_threshold("tanh", logits) == 0.0


def test_a_sigmoid_unit_is_decided_at_one_half():
    probabilities = np.array([[0.25], [0.3], [0.7]], dtype=np.float32)
    predicted, _ = validate_predictions(probabilities, 3, 2, output_activation="sigmoid")
    assert list(predicted) == [0, 0, 1]


def test_an_unknown_activation_is_decided_from_the_values():
    assert binary_threshold(None, np.array([0.1, 0.9])) == 0.5
    assert binary_threshold(None, np.array([-3.0, 0.9])) == 0.0


def test_output_activation_is_read_from_the_saved_config():
    assert output_activation(sequential(dense(64, "relu"), dense(1, "linear", "out"))) == "linear"
    assert output_activation(sequential(dense(1, "sigmoid"), {"class_name": "Dropout", "config": {}})) == "sigmoid"
    assert output_activation(sequential(dense(2, "linear"), {"class_name": "Activation",
                                                             "config": {"activation": "softmax"}})) == "softmax"
    assert output_activation(sequential(dense(1, "linear"), {"class_name": "Lambda", "config": {}})) is None
    functional = {"class_name": "Functional", "config": {
        "layers": [dense(8, "relu", "hidden") | {"name": "hidden"}, dense(1, "sigmoid", "head") | {"name": "head"}],
        "output_layers": ["head", 0, 0]}}
    assert output_activation(functional) == "sigmoid"
    assert output_activation(None) is None


def test_the_layer_table_of_a_graph_scored_model_comes_from_its_config():
    config = sequential({"class_name": "Lambda", "config": {"name": "lambda"}}, dense(1, "sigmoid"))
    table = describe_archive("/nonexistent/model.keras", config)  # no weights file: params unknown
    assert [(layer["type"], layer["name"]) for layer in table["layers"]] == [("Lambda", "lambda"), ("Dense", "dense")]
    assert table["layers"][1]["config"] == {"units": 1, "activation": "sigmoid"}


@pytest.mark.parametrize("given,expected", [
    ("tf:area", ("tf", "area")), ("tf:lanczos3", ("tf", "lanczos3")), ("pil:hamming", ("pil", "hamming")),
    ("bilinear", ("pil", "bilinear")), ("mitchellcubic", ("tf", "mitchellcubic")), ("lanczos", ("pil", "lanczos"))])
def test_every_keras_interpolation_is_known(given, expected):
    assert resize_method(given) == expected


def test_an_unknown_interpolation_is_refused():
    with pytest.raises(ValueError):
        resize_method("pil:area")


def fit_with(validation):
    return [{"kind": "probe_start"}, {"kind": "fit_start", "fit": 1, "x": validation, "validation_data": validation}]


def test_image_dataset_from_directory_is_resized_with_tf_image_resize(tmp_path, assignments):
    ev = read(tmp_path, fit_with({"kind": "object", "type": "_MapDataset", "min": 0.0, "max": 1.0,
                                  "origin": {"what": "image_dataset_from_directory", "interpolation": "area"}}))
    prep = infer_preprocessing(assignments["ox"], ev)
    assert prep.scale == "x/255" and prep.interpolation == "tf:area"
    assert "tf.image.resize, method 'area'" in prep.describe()


def test_a_directory_iterator_is_resized_with_pil(tmp_path, assignments):
    ev = read(tmp_path, fit_with({"kind": "object", "type": "DirectoryIterator", "interpolation": "hamming",
                                  "generator": {"rescale": 1 / 255}}))
    prep = infer_preprocessing(assignments["ox"], ev)
    assert prep.interpolation == "pil:hamming" and "PIL, interpolation 'hamming'" in prep.describe()
    assert prep.describe().startswith("x/255 (ImageDataGenerator(rescale=1/255) on the validation data)")


def test_a_train_on_batch_loop_is_evidence_of_training_and_of_scaling(tmp_path, assignments):
    model = {"built": True, "layers": [{"type": "Dense", "params": 3}], "total_params": 3}
    ev = read(tmp_path, [{"kind": "probe_start"},
                         {"kind": "training_loop", "api": "train_on_batch", "model": model,
                          "x": {"kind": "array", "min": 0.0, "max": 1.0}}])
    assert ev.fits == [] and len(ev.training_loops) == 1
    assert ev.last_model()["total_params"] == 3 and ev.last_model()["layers"][0]["type"] == "Dense"
    prep = infer_preprocessing(assignments["ox"], ev)
    assert prep.scale == "x/255" and "train_on_batch" in prep.source


def test_a_custom_layer_that_cannot_be_scored_gets_a_message_saying_what_to_change():
    message = _explain_failure({"stage": "load", "error": "TypeError", "graph": True,
                                "message": "Could not locate class 'MyScale'. Make sure custom classes ...",
                                "graph_error": "ValueError: the exported graph uses operations that touch "
                                               "files or run Python: EagerPyFunc"}, "")
    assert "'MyScale' is defined in your code" in message and "EagerPyFunc" in message
    assert "TensorFlow operations only" in message
    lam = _explain_failure({"stage": "load", "error": "ValueError", "graph": False,
                            "message": "Requested the deserialization of a `Lambda` layer ..."}, "")
    assert "Lambda layer" in lam and "Rescaling(1/255)" in lam and "No TensorFlow graph" in lam


def test_lanczos_overshoot_is_still_pixels_divided_by_255():
    from harness.evaluate import _scale_from_range
    assert _scale_from_range(-0.268, 1.29) == "x/255"  # image_dataset_from_directory(interpolation='lanczos3') / 255
    assert _scale_from_range(-1.3, 1.2) == "x/127.5-1"
    assert _scale_from_range(0.0, 1.0) == "x/255" and _scale_from_range(-1.0, 1.0) == "x/127.5-1"
    assert _scale_from_range(0.0, 255.0) == "none" and _scale_from_range(-12.0, 270.0) == "none"


def test_the_data_a_gradient_tape_loop_iterated_over_tells_scaling_and_resizing(tmp_path, assignments):
    ev = read(tmp_path, [{"kind": "probe_start"},
                         {"kind": "training_loop", "api": "GradientTape", "model": None,
                          "data": {"kind": "object", "type": "_BatchDataset", "min": 0.0, "max": 255.0,
                                   "origin": {"what": "image_dataset_from_directory", "interpolation": "bicubic"}}}])
    prep = infer_preprocessing(assignments["ox"], ev)
    assert (prep.scale, prep.interpolation) == ("none", "tf:bicubic")
    assert "the data the GradientTape loop iterated over had values in [0, 255]" in prep.describe()
