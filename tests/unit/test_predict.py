"""The evaluator's model loading (harness/evaluator/predict.py): what a submission saved is never run."""

import pytest

from harness.evaluator.predict import LoadFailed, load_model_or_graph


def test_an_hdf5_file_named_model_keras_is_refused_before_its_lambda_runs(tmp_path):
    """tf-keras loads a `model.keras` that is not a zip archive as HDF5, where `safe_mode` is not passed on:
    a Lambda's marshalled bytecode would run in the evaluator (and could write the predictions it scores).
    A student reaches the legacy runtime by writing `fit_generator` anywhere in the code."""
    tf_keras = pytest.importorskip("tf_keras", reason="the legacy runtime's Keras is part of the grading image")
    marker = tmp_path / "ran"
    where = str(marker)
    inputs = tf_keras.Input(shape=(2,))
    outputs = tf_keras.layers.Lambda(lambda x: (open(where, "w").close(), x)[1])(inputs)
    tf_keras.Model(inputs, outputs).save(tmp_path / "model.h5")
    (tmp_path / "model.h5").rename(tmp_path / "model.keras")
    marker.unlink()
    with pytest.raises(LoadFailed):
        load_model_or_graph(tf_keras, str(tmp_path / "model.keras"))
    assert not marker.exists()
