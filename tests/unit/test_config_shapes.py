"""The evaluator's layer table from a .keras archive's config (harness/evaluator/config_shapes.py, used by
quick mode instead of importing TensorFlow) is the table Keras gives for the same file, or None."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from harness.evaluator import config_shapes, predict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras")


def references():
    for path in sorted((ROOT / "assignments").glob("*/expected-model.json")):
        expected = json.loads(path.read_text())
        import tomllib
        shape = list(tomllib.loads((path.parent / "assignment.toml").read_text())["data"]["image_shape"])
        yield path.parent.name, (shape + [1] if len(shape) == 2 else shape), expected["layers"]


def models(keras):
    """Every reference, and the layers and settings the rules cover, built the ways students build them."""
    L = keras.layers
    built = {name: keras.Sequential([keras.Input(tuple(shape))] + [getattr(L, row["type"])(**row["config"])
                                                                   for row in rows])
             for name, shape, rows in references()}
    built["input_shape-kwarg"] = keras.Sequential([L.Conv2D(8, 3, input_shape=(28, 28, 1)), L.Flatten(),
                                                   L.Dense(10)])
    built["strides-and-valid"] = keras.Sequential([
        keras.Input((33, 31, 3)), L.Rescaling(1 / 255), L.RandomFlip("horizontal"), L.RandomRotation(0.1),
        L.RandomZoom(0.1), L.Conv2D(6, (5, 3), strides=(2, 3), padding="valid", use_bias=False),
        L.BatchNormalization(center=False), L.ReLU(), L.ZeroPadding2D(((1, 2), (0, 3))),
        L.AveragePooling2D(3, strides=2, padding="same"), L.MaxPooling2D((2, 2), padding="valid"),
        L.SpatialDropout2D(0.1), L.Conv2D(4, 1, padding="same"), L.GlobalAveragePooling2D(keepdims=True),
        L.Reshape((-1,)), L.Dense(7, activation="softmax")])
    built["dense-on-grid"] = keras.Sequential([keras.Input((5, 6, 2)), L.Dense(3), L.Reshape((10, 9)),
                                               L.Flatten(), L.Dropout(0.5), L.Dense(2, use_bias=False)])
    built["resize-and-global-max"] = keras.Sequential([keras.Input((40, 40, 3)), L.Resizing(20, 24),
                                                       L.Conv2D(5, 3), L.GlobalMaxPooling2D(), L.Activation("relu"),
                                                       L.Dense(4)])
    frozen = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(3, 3), L.Flatten(), L.Dense(2)])
    frozen.layers[0].trainable = False
    built["frozen-layer"] = frozen
    return built


def test_the_config_table_is_the_table_keras_gives(keras, tmp_path):
    for name, model in models(keras).items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        config = predict.archive_config(path)
        from_config = config_shapes.table(predict.describe_archive(path, config), config)
        assert from_config is not None, name
        loaded = keras.models.load_model(path, compile=False, safe_mode=True)
        assert from_config == predict.describe(loaded), name
        assert predict.table_from_config(path) == from_config


def test_what_the_rules_do_not_cover_goes_to_keras(keras, tmp_path):
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    beyond = {
        "functional": keras.Model(inputs, L.Dense(2)(L.Flatten()(inputs))),
        "nested-sequential": keras.Sequential([keras.Input((8, 8, 1)), keras.Sequential([L.RandomFlip()]),
                                               L.Flatten(), L.Dense(2)]),
        "dilated": keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3, dilation_rate=2), L.Flatten()]),
        "normalization": keras.Sequential([keras.Input((4,)), L.Normalization(), L.Dense(2)]),
        "conv1d": keras.Sequential([keras.Input((8, 1)), L.Conv1D(2, 3), L.Flatten(), L.Dense(2)]),
    }
    for name, model in beyond.items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        assert predict.table_from_config(path) is None, name


def test_a_config_that_disagrees_with_its_weights_goes_to_keras(keras, tmp_path):
    L = keras.layers
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(20), L.Dense(10)]).save(path)
    assert predict.table_from_config(path) is not None
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][2]["config"]["units"] = 30  # the weights still hold 20 units
    files["config.json"] = json.dumps(config).encode()
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    assert predict.table_from_config(tampered) is None
    not_a_zip = tmp_path / "plain.keras"
    not_a_zip.write_bytes(b"HDF5 pretending")
    assert predict.table_from_config(not_a_zip) is None


def _rewrite(source, target, change):
    with zipfile.ZipFile(source) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_a_negative_window_keras_refuses_goes_to_keras(keras, tmp_path):
    """kernel_size -1 has the parameters of a 1x1 kernel and grows the image by 2: weights sized for that
    (a 30x30 input) under a 28x28 config made a table; Keras refuses a window that is not positive."""
    L = keras.layers
    source = tmp_path / "m.keras"
    keras.Sequential([keras.Input((30, 30, 1)), L.Conv2D(8, 1), L.MaxPooling2D(2, strides=1), L.Flatten(),
                      L.Dense(10)]).save(source)

    def kernel(config):
        layers = config["config"]["layers"]
        layers[0]["config"]["batch_shape"] = [None, 28, 28, 1]
        layers[1]["config"]["kernel_size"] = -1
    _rewrite(source, tmp_path / "kernel.keras", kernel)
    with pytest.raises(Exception):
        keras.models.load_model(tmp_path / "kernel.keras", compile=False, safe_mode=True)
    assert predict.table_from_config(tmp_path / "kernel.keras") is None


def _conv_with(keras, tmp_path, key, value) -> Path:
    """A small saved Conv2D model whose Conv2D config has `key` set to `value` (rewritten in the file)."""
    L = keras.layers
    source = tmp_path / "m.keras"
    keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(3, 3), L.Flatten(), L.Dense(2)]).save(source)

    def change(config):
        config["config"]["layers"][1]["config"][key] = value
    target = tmp_path / f"{key}.keras"
    _rewrite(source, target, change)
    return target


def test_a_trainable_flag_that_is_not_a_bool_goes_to_keras(keras, tmp_path):
    """`trainable: 0` made a row 'not trainable' whose parameters were still counted as trainable."""
    assert predict.table_from_config(_conv_with(keras, tmp_path, "trainable", 0)) is None


def test_a_low_rank_adapter_on_any_layer_goes_to_keras(keras, tmp_path):
    """Keras 3 takes `lora_rank` on Conv2D too (through its keyword arguments): it counts the adapter's
    variables, which the weights file does not hold, so the config table would disagree with Keras."""
    lora = _conv_with(keras, tmp_path, "lora_rank", 2)
    by_keras = predict.describe(keras.models.load_model(lora, compile=False, safe_mode=True))
    table = predict.table_from_config(lora)
    assert table is None or table == by_keras


def test_a_setting_keras_does_not_take_goes_to_keras(keras, tmp_path):
    """Keras refuses a layer setting it does not know (and a name that is not text, renormalisation without
    its variables); the config table took any. Every setting Keras itself writes still makes a table."""
    L = keras.layers
    source = tmp_path / "m.keras"
    keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(3, 3), L.BatchNormalization(), L.Flatten(),
                      L.Dense(2)]).save(source)
    assert predict.table_from_config(source) is not None
    for n, (index, key, value) in enumerate([(1, "filter", 4), (4, "batch_shape", [None, 5]), (1, "name", 3),
                                             (2, "renorm", True)]):
        def change(config):
            config["config"]["layers"][index]["config"][key] = value
        _rewrite(source, tmp_path / f"{n}.keras", change)
        with pytest.raises(Exception):
            keras.models.load_model(tmp_path / f"{n}.keras", compile=False, safe_mode=True)
        assert predict.table_from_config(tmp_path / f"{n}.keras") is None, key
    for kind, keys in config_shapes.SETTINGS.items():
        if kind in ("InputLayer", "Conv2D", "Dense", "BatchNormalization", "Flatten"):
            continue  # written above
        layer = getattr(L, kind)
        try:
            made = layer()
        except TypeError:  # a required first argument
            made = layer(*{"Reshape": ((4,),), "Resizing": (4, 4), "Activation": ("relu",),
                           "RandomTranslation": (0.1, 0.1), "AveragePooling2D": (2,)}.get(kind, (0.1,)))
        assert set(made.get_config()) <= keys, kind
