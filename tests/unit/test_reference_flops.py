"""FLOPs and parameters of every reference model, as the leaderboard counts them, against an
independent count.

How the two are counted:
- The leaderboard (`harness.leaderboard.flops_per_image`) reads only the reference's layer table in
  `assignments/<id>/expected-model.json` (type, output shape, params): 2 FLOPs per parameter per
  output position for Conv2D/Dense (a multiply-add is 2 FLOPs; the bias counted as a multiply-add
  by 1, so also 2 per output value), one per value read by a pooling window, nothing for
  activations, Flatten or Dropout.
- The independent count rebuilds each reference as a Keras model from the layer configs in the same
  file (filters, kernel size, padding, units, ...) and the assignment's `image_shape`, traces
  `model(x, training=False)` for a batch of one image, freezes the graph (variables -> constants)
  and lets TensorFlow's profiler count it (`tf.compat.v1.profiler` with
  `ProfileOptionBuilder.float_operation()`). Its per-op rules (tensorflow/python/profiler/internal/
  flops_registry.py): Conv2D and MatMul 2 per multiply-add, as ours; MaxPool kernel area x output
  values, as ours; BiasAdd/AddV2 of the bias 1 per output value (ours: 2); Softmax 5 per output value
  (ours: 0); Relu and Sigmoid 0, as ours.

Why they agree: the two conventions differ only in the bias (one FLOP more per output value of every
layer that has a bias) and in the softmax (5 FLOPs per class), so the test asserts the exact identity

    ours == profiler + sum(bias output values) - 5 * softmax outputs

with both correction terms taken from the rebuilt model (its layers' `bias` and output shapes), not
from the table; and, as the figure a reader compares, that the two totals differ by under 0.5 %
(the bias term is one FLOP per output value against 2 x kernel-size x input-channels for each of
them: at most 1/(2*3*3*1+2) = 5 % for a first 3x3 conv on grey images, 0.1-0.4 % for these models).

Parameters: the table's per-layer sum equals its `total_params`, equals `model.count_params()` of
the rebuilt model, and the rebuilt model's per-layer counts and output shapes equal the table's
(so the model the profiler counted is the reference).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from harness.leaderboard import flops_per_image
from harness.record import Layer

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "assignments").glob("*/expected-model.json"))


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


def _reference(assignment: str):
    expected = json.loads((ROOT / "assignments" / assignment / "expected-model.json").read_text())
    spec = tomllib.loads((ROOT / "assignments" / assignment / "assignment.toml").read_text())
    shape = list(spec["data"]["image_shape"])
    if len(shape) == 2:  # grey images: the reference adds the channel axis before the first Conv2D
        shape.append(1)
    return expected, shape


def _profiler_flops(tf, model, shape) -> int:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    traced = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *shape], tf.float32))
    graph = convert_variables_to_constants_v2(traced).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def test_every_assignment_has_a_reference_table():
    assert {"mnist-cnn", "fashion-mnist-cnn", "ox", "cats-vs-dogs", "dogs-vs-cats-small", "car-or-truck"} <= set(ASSIGNMENTS)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_flops_and_params_match_an_independent_count(tf, assignment):
    import keras
    import math
    expected, shape = _reference(assignment)
    table = expected["layers"]

    # parameters: table sum == total_params == the rebuilt model's count, layer by layer too
    assert sum(layer["params"] for layer in table) == expected["total_params"]
    model = keras.Sequential([keras.Input(tuple(shape))]
                             + [getattr(keras.layers, layer["type"])(**layer["config"]) for layer in table])
    assert model.count_params() == expected["total_params"]
    for built, layer in zip(model.layers, table, strict=True):
        assert built.count_params() == layer["params"], (built.name, layer)
        assert list(built.output.shape) == layer["output_shape"], (built.name, layer)

    ours = flops_per_image([Layer(name=f"layer{i}", type=layer["type"], output_shape=layer["output_shape"],
                                  params=layer["params"]) for i, layer in enumerate(table)])
    assert ours is not None, "a reference layer the leaderboard cannot count"

    counted = _profiler_flops(tf, model, shape)
    bias_values = sum(math.prod(built.output.shape[1:]) for built in model.layers
                      if getattr(built, "bias", None) is not None)
    softmax_values = sum(math.prod(built.output.shape[1:]) for built in model.layers
                         if getattr(built, "activation", None) is keras.activations.softmax)
    assert ours == counted + bias_values - 5 * softmax_values, (ours, counted, bias_values, softmax_values)
    assert abs(ours - counted) / counted < 0.005, (ours, counted)
