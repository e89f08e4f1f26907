"""The architecture comparison is a pure function: fake layer tables are fine here."""

import pytest

from harness.checks.architecture import compare, points
from harness.spec import ExpectedModel


def layer(kind, shape, params, **config):
    return {"type": kind, "output_shape": shape, "params": params, "config": config}


CATS = [
    layer("Conv2D", [None, 160, 160, 16], 448, filters=16),
    layer("MaxPooling2D", [None, 80, 80, 16], 0),
    layer("Conv2D", [None, 80, 80, 32], 4640, filters=32),
    layer("MaxPooling2D", [None, 40, 40, 32], 0),
    layer("Conv2D", [None, 40, 40, 64], 18496, filters=64),
    layer("MaxPooling2D", [None, 20, 20, 64], 0),
    layer("Flatten", [None, 25600], 0),
    layer("Dense", [None, 512], 13_107_712, units=512, activation="relu"),
    layer("Dense", [None, 2], 1026, units=2, activation="softmax"),
]


def expected(layers):
    total = sum(l["params"] for l in layers)
    return ExpectedModel(schema_version=1, assignment="cats-vs-dogs", derived_from="reference/x.ipynb",
                         reference_sha256="0" * 64, total_params=total, trainable_params=total,
                         non_trainable_params=0, layers=layers)


def actual(layers, names=True):
    rows = [dict(l, name=f"layer_{i}") if names else dict(l) for i, l in enumerate(layers)]
    total = sum(l["params"] for l in layers)
    return {"layers": rows, "total_params": total, "trainable_params": total}


def test_identical_model_matches_whatever_the_names():
    verdict = compare(expected(CATS), actual(CATS))
    assert verdict.exact and verdict.matched_layers == 9
    assert points(verdict, 40, "per-layer") == 40


def test_input_layer_is_ignored():
    table = actual(CATS)
    table["layers"].insert(0, {"type": "InputLayer", "output_shape": [None, 160, 160, 3], "params": 0, "name": "in"})
    assert compare(expected(CATS), table).exact


def test_dense_256_names_both_numbers_and_why():
    changed = list(CATS)
    changed[7] = layer("Dense", [None, 256], 6_553_856, units=256, activation="relu")
    changed[8] = layer("Dense", [None, 2], 514, units=2, activation="softmax")
    verdict = compare(expected(CATS), actual(changed))
    text = " ".join(verdict.differences)
    assert "layer 8" in text and "6,553,856 params where 13,107,712 were expected" in text
    assert "units 256 vs 512" in text
    assert "(None, 256)" in text and "(None, 512)" in text
    assert "total params 6,577,954 where 13,132,322" in text
    assert 0 < points(verdict, 40, "per-layer") < 40
    assert points(verdict, 40, "none") == 0


def test_extra_batchnormalization_is_named_with_its_place():
    changed = CATS[:1] + [layer("BatchNormalization", [None, 160, 160, 16], 64)] + CATS[1:]
    verdict = compare(expected(CATS), actual(changed))
    assert any(d.startswith("extra BatchNormalization (64 params) after layer 1 (Conv2D")
               for d in verdict.differences), verdict.differences
    assert verdict.matched_layers == 9


def test_missing_layer_is_named():
    changed = CATS[:5] + CATS[6:]
    verdict = compare(expected(CATS), actual(changed))
    assert any("missing MaxPooling2D" in d for d in verdict.differences)


def test_wrong_layer_type_in_place():
    changed = list(CATS)
    changed[1] = layer("AveragePooling2D", [None, 80, 80, 16], 0)
    verdict = compare(expected(CATS), actual(changed))
    assert any("is a AveragePooling2D where a MaxPooling2D was expected" in d for d in verdict.differences)


def test_same_params_different_activation_is_a_difference():
    changed = list(CATS)
    changed[8] = layer("Dense", [None, 2], 1026, units=2, activation="sigmoid")
    verdict = compare(expected(CATS), actual(changed))
    assert verdict.differences == ["layer 9 (Dense, 'layer_8') differs from the reference: activation sigmoid vs softmax"]


def test_unbuilt_or_empty_model_matches_nothing():
    verdict = compare(expected(CATS), {"layers": [], "total_params": None, "trainable_params": None})
    assert verdict.matched_layers == 0 and len(verdict.differences) == 10
    assert points(verdict, 40, "per-layer") == 0


@pytest.mark.parametrize("trainable", [0, 13_000_000])
def test_frozen_layers_change_trainable_count(trainable):
    table = actual(CATS)
    table["trainable_params"] = trainable
    verdict = compare(expected(CATS), table)
    assert any("trainable params" in d for d in verdict.differences)
