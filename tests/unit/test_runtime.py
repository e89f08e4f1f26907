"""harness.runtime: the runtime chosen before a run (command line > assignment pin > the code's signs), read
statically; and the error of a run that stopped on an API its runtime lacks, explained."""

from __future__ import annotations

import json

import pytest

from harness import runtime, static


def module(tmp_path, text, name="sub.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def notebook(tmp_path, cells, name="ox.ipynb"):
    path = tmp_path / name
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c} for c in cells], "metadata": {},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


LEGACY = [
    ("history = model.fit_generator(train, epochs=3)\n", "fit_generator at sub.py:1"),
    ("model.evaluate_generator(test)\n", "evaluate_generator at sub.py:1"),
    ("p = model.predict_generator(test)\n", "predict_generator at sub.py:1"),
    ("from keras import optimizers\nopt = optimizers.RMSprop(lr=1e-4)\n", "RMSprop(lr=...) at sub.py:2"),
    ("from keras.preprocessing.image import ImageDataGenerator\n",
     "keras.preprocessing.image.ImageDataGenerator at sub.py:1"),
    ("import keras\ng = keras.preprocessing.image.ImageDataGenerator(rescale=1/255)\n",
     "keras.preprocessing.image.ImageDataGenerator at sub.py:2"),
    ("from keras.preprocessing import image\ng = image.ImageDataGenerator()\n",
     "keras.preprocessing.image.ImageDataGenerator at sub.py:2"),
    ("from tensorflow.keras import layers\nr = layers.experimental.preprocessing.Rescaling(1/255)\n",
     "layers.experimental.preprocessing at sub.py:2"),
    ("from tensorflow.keras.layers.experimental import preprocessing\n",
     "layers.experimental.preprocessing at sub.py:1"),
    # Keras 2 era: gone from tf-keras 2.21 too, still the code's era
    ("y = model.predict_classes(x)\n", "predict_classes at sub.py:1"),
    ("from keras.utils import np_utils\ny = np_utils.to_categorical(y)\n", "keras.utils.np_utils at sub.py:1"),
    ("from keras.models import Model\nm = Model(input=a, output=b)\n", "Model(input=..., output=...) at sub.py:2"),
]


@pytest.mark.parametrize("code,evidence", LEGACY)
def test_each_keras2_sign_chooses_legacy_and_names_where(tmp_path, code, evidence):
    choice = runtime.detect_entry(module(tmp_path, code))
    assert choice.runtime == "legacy" and evidence in choice.reason, choice


KERAS3 = [
    ("import keras\nx = keras.ops.sum(y)\n", "keras.ops at sub.py:2"),
    ("from keras import ops\n", "keras.ops at sub.py:1"),
    ("import keras.random\n", "keras.random at sub.py:1"),
    ("from keras import layers\na = layers.RandAugment(value_range=(0, 255))\n", "layers.RandAugment at sub.py:2"),
    ("from keras.layers import MixUp\n", "layers.MixUp at sub.py:1"),
]


@pytest.mark.parametrize("code,evidence", KERAS3)
def test_keras3_only_signs_choose_keras3(tmp_path, code, evidence):
    choice = runtime.detect_entry(module(tmp_path, code))
    assert choice.runtime == "keras3" and evidence in choice.reason, choice


NOT_SIGNS = [
    "# model.fit_generator(train) was Keras 2\nmodel.fit(train)\n",  # a comment
    "note = 'fit_generator and RMSprop(lr=1e-4) are gone'\nprint(note)\n",  # a string
    'def train():\n    """Uses fit_generator in Keras 2; here model.fit."""\n    model.fit(x)\n',  # a docstring
    "from tensorflow.keras.preprocessing.image import ImageDataGenerator\n",  # tf.keras: Keras 3 has it
    "import tensorflow as tf\ng = tf.keras.preprocessing.image.ImageDataGenerator()\n",
    "from tensorflow import keras\ng = keras.preprocessing.image.ImageDataGenerator()\n",  # keras is tf.keras here
    "from keras.preprocessing.image import load_img\nfrom keras import layers\n",  # in both runtimes
    "opt = RMSprop(learning_rate=1e-4)\nlr = 0.1\nf(lr=3)\n",  # lr= outside an optimizer
    "import random\nrandom.seed(0)\nimport numpy as np\nnp.random.rand(3)\n",  # not keras.random
    "model.compile(optimizer='rmsprop', loss='binary_crossentropy', metrics=['acc'])\n",  # 'acc' runs in both
]


@pytest.mark.parametrize("code", NOT_SIGNS)
def test_comments_strings_and_apis_both_runtimes_have_do_not_count(tmp_path, code):
    path = module(tmp_path, code)
    assert runtime.signs(static.units(path), path.name) == []
    choice = runtime.detect_entry(path)
    assert choice.runtime == "keras3" and "no API that only tf-keras has" in choice.reason


def test_notebook_cells_with_shell_lines_and_helper_modules(tmp_path):
    entry = notebook(tmp_path, ["!pip install -q tensorflow\n%matplotlib inline\nimport numpy as np\n",
                                "model.compile(optimizer=Adam(lr=1e-3), loss='mse')\n",
                                "# fit_generator below\nhistory = model.fit_generator(gen)\n"])
    module(tmp_path, "import os\nfrom keras.preprocessing.image import ImageDataGenerator\n", "data.py")
    choice = runtime.detect_entry(entry)
    assert choice.runtime == "legacy"
    # the most telling sign first, then in code order; the helper module is named by its file and line
    assert choice.reason == ("detected from the code: Keras 2 APIs that Keras 3 lacks: fit_generator at ox.ipynb "
                             "cell 3, line 2; keras.preprocessing.image.ImageDataGenerator at data.py:2; "
                             "Adam(lr=...) at ox.ipynb cell 2, line 1")


def test_mixed_code_keeps_the_default_and_says_why(tmp_path):
    choice = runtime.detect_entry(module(tmp_path, "import keras\nx = keras.ops.sum(1)\nmodel.fit_generator(g)\n"))
    assert choice.runtime == "keras3" and "mixes" in choice.reason and "keras.ops at sub.py:2" in choice.reason


def test_order_command_line_then_pin_then_code(tmp_path):
    legacy_code = module(tmp_path, "model.fit_generator(g)\n")
    assert runtime.choose("keras3", "legacy", legacy_code) == runtime.Choice(
        "keras3", "chosen on the command line (--runtime keras3)")
    assert runtime.choose("legacy", "auto", None).runtime == "legacy"
    assert runtime.choose(None, "keras3", legacy_code) == runtime.Choice(
        "keras3", 'pinned by the assignment (runtime = "keras3")')
    assert runtime.choose(None, "auto", legacy_code).runtime == "legacy"
    (tmp_path / "other").mkdir()  # every module beside the entry counts: another student folder
    assert runtime.choose(None, "auto", module(tmp_path / "other", "model.fit(x)\n")).runtime == "keras3"
    with pytest.raises(ValueError):
        runtime.choose("keras2", "auto", None)


def test_unparsable_code_or_no_code_is_the_default(tmp_path):
    assert runtime.detect_entry(None).runtime == "keras3"
    assert runtime.detect_entry(module(tmp_path, "model.fit_generator(\n")).runtime == "keras3"  # a syntax error


# error texts as the runtimes print them (seen in runs of tests/integration/test_runtimes.py)
ERRORS = [
    ("AttributeError: 'Sequential' object has no attribute 'fit_generator'", "keras3", "fit_generator", "legacy"),
    ("ImportError: cannot import name 'ImageDataGenerator' from 'keras.preprocessing.image' "
     "(/x/keras/preprocessing/image/__init__.py)", "keras3", "ImageDataGenerator", "legacy"),
    ("ValueError: Argument(s) not recognized: {'lr': 0.0001}", "keras3", "lr", "legacy"),
    ("ModuleNotFoundError: No module named 'keras.layers.experimental'", "keras3", "experimental", "legacy"),
    ("ModuleNotFoundError: No module named 'tf_keras.ops'", "legacy", "ops", "keras3"),
    ("AttributeError: module 'tf_keras.api._v2.keras.layers' has no attribute 'RandAugment'", "legacy",
     "RandAugment", "keras3"),
    ("AttributeError: 'Sequential' object has no attribute 'predict_classes'", "legacy", "predict_classes", None),
    ("TypeError: ('Keyword argument not understood:', 'input')", "legacy", "Model(input=, output=)", None),
    ("ModuleNotFoundError: No module named 'keras.layers.core'", "keras3", "layers-module", None),
]


@pytest.mark.parametrize("text,ran,key,would_run", ERRORS)
def test_an_api_error_names_the_runtime_that_has_the_api(text, ran, key, would_run):
    explained = runtime.explain(text, ran)
    assert explained is not None and (explained.key, explained.would_run) == (key, would_run)
    message = explained.message()
    if would_run:
        assert f"the {would_run} runtime would run this code" in message and f"--runtime {would_run}" in message
    else:
        assert "neither" in message.lower()


@pytest.mark.parametrize("text,ran", [
    ("AttributeError: 'Sequential' object has no attribute 'fit_generator'", "legacy"),  # legacy has it: another cause
    ("AttributeError: module 'numpy' has no attribute 'random'", "legacy"),  # not Keras
    ("ValueError: Input 0 of layer 'dense' is incompatible with the layer", "keras3"),
    ("ModuleNotFoundError: No module named 'livelossplot'", "keras3"),
])
def test_other_errors_are_not_explained(text, ran):
    assert runtime.explain(text, ran) is None


def test_a_run_stored_before_runtime_reasons_is_still_read():
    """`harness rescore` reads the run.json files written before `runtime_reason` existed."""
    from harness.execute import RunRecord
    old = RunRecord.model_validate_json(json.dumps({"schema_version": 1, "mode": "quick", "runtime": "legacy",
                                                    "entry": "a.ipynb", "result": {}}))
    assert old.runtime == "legacy" and old.runtime_reason == ""
