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


def test_a_model_with_two_outputs_is_named_as_such_when_the_holdout_spans_several_stretches(tmp_path):
    """Images/s is timed over stretches of batches, whose predictions are joined; a model with two outputs
    returns a list per stretch, and the student must still read that the model has several outputs, not a
    numpy message about joining arrays."""
    import json
    import subprocess
    import sys

    import keras
    import numpy as np

    from harness.evaluator import predict

    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(flat),
                         keras.layers.Dense(2, activation="softmax")(flat)]).save(tmp_path / "model.keras")
    n = 8 * 8 + 5  # several batches of 8, the last one short
    (tmp_path / "images").mkdir()
    np.save(tmp_path / "images" / "images.npy", np.random.default_rng(0).random((n, 4, 4, 1), dtype=np.float32))
    (tmp_path / "ids.json").write_text(json.dumps([str(i) for i in range(n)]))
    (tmp_path / "out").mkdir()
    subprocess.run([sys.executable, predict.__file__, "--model", str(tmp_path / "model.keras"), "--images",
                    str(tmp_path / "images"), "--ids", str(tmp_path / "ids.json"), "--out", str(tmp_path / "out"),
                    "--batch-size", "8"], capture_output=True, timeout=300)
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["ok"] is False and status.get("error") == "MultipleOutputs", status


class _Tiling:
    """A model (an exported graph may do this) that returns `factor` rows for every image it is given."""

    def __init__(self, factor):
        self.factor = factor

    def predict(self, x, batch_size, on_batch=None):
        import numpy as np
        for _ in range(0, len(x), batch_size):
            if on_batch is not None:
                on_batch()
        return np.repeat(np.zeros((len(x), 2), np.float32), self.factor, axis=0)


def test_images_per_second_counts_the_images_given_not_the_rows_a_model_returns():
    """A graph that returns 1,000 rows per image must not show 1,000 times its speed on the leaderboard
    (its predictions are refused, but the rate is stored with the timings)."""
    import itertools

    import numpy as np

    from harness.evaluator.predict import timed_predict

    x = np.zeros((4 * 5 + 3, 1), np.float32)  # five whole batches of 4, then 3
    for factor in (1, 1000):
        ticks = itertools.count()
        _, rates = timed_predict(_Tiling(factor), x, 4, clock=lambda: float(next(ticks)))
        assert rates == [4.0] * 5, (factor, rates)  # one clock tick per batch; the short batch not counted
    ticks = itertools.count()
    _, rates = timed_predict(_Tiling(1000), x[:3], 4, clock=lambda: float(next(ticks)))
    assert rates == [3.0]


def test_images_per_second_is_the_median_batch_not_the_pass_with_its_setup():
    """One slow batch (a pause of the machine) or the pass's setup does not move the figure: it is the rate
    of the median batch of one pass, measured by Keras's own predict callbacks."""
    import os

    import numpy as np
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from harness.evaluator.predict import KerasModel, timed_predict

    model = KerasModel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), keras)
    x = np.zeros((8 * 6 + 2, 4), np.float32)
    times = iter([0.0, 10.0, 11.0, 12.0, 13.0, 113.0, 114.0, 115.0])  # setup 10 s, one batch of 100 s
    predictions, rates = timed_predict(model, x, 8, clock=lambda: next(times))
    assert predictions.shape == (50, 2)
    assert rates == [0.8, 8.0, 8.0, 8.0, 0.08, 8.0] and float(np.median(rates)) == 8.0
