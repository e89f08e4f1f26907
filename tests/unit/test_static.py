import json

from harness import static


def module(tmp_path, text, name="sub.py"):
    path = tmp_path / name
    path.write_text(text)
    return static.units(path)


def test_lr_keyword_is_found_with_its_line(tmp_path):
    found = module(tmp_path, "from keras import optimizers\nopt = optimizers.RMSprop(lr=1e-4)\nok = optimizers.Adam(learning_rate=1e-3)\n")
    (hit,) = static.optimizer_lr(found)
    assert hit.where == "sub.py:2" and hit.detail == "RMSprop(lr=0.0001)"


def test_test_statistics_numpy_and_fit(tmp_path):
    text = ("import numpy as np\nm = X_test.mean()\ns = np.std(x_test)\nok = X_train.mean()\n"
            "scaler.fit(X_test)\nmodel.fit(X_test, y_test)\ndatagen.fit(x_train)\n")
    hits = static.test_statistics(module(tmp_path, text))
    assert [h.where for h in hits] == ["sub.py:2", "sub.py:3", "sub.py:5"]


def test_overlapping_tfds_splits(tmp_path):
    text = ("import tensorflow_datasets as tfds\n"
            "a = tfds.load('cats_vs_dogs', split='train[:80%]')\n"
            "b = tfds.load('cats_vs_dogs', split='train[10%:]')\n")
    (hit,) = static.split_overlaps(module(tmp_path, text))
    assert hit.where == "sub.py:3" and "70%" in hit.detail


def test_seed_001_splits_do_not_overlap(tmp_path):
    text = "(a, b, c) = tfds.load('cats_vs_dogs', split=['train[:80%]', 'train[80%:90%]', 'train[90%:]'])\n"
    assert static.split_overlaps(module(tmp_path, text)) == []


def test_notebook_cells_and_magics(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": "x"},
                    {"cell_type": "code", "source": ["%matplotlib inline\n", "!pip install x\n", "m = X_test.std()\n"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(nb))
    (hit,) = static.test_statistics(static.units(path))
    assert hit.where == "cell 2, line 3"


def test_unparsable_code_is_skipped(tmp_path):
    assert static.units(tmp_path / "missing.py") == []
    assert static.optimizer_lr(module(tmp_path, "def broken(:\n")) == []


def test_augmented_validation_generator_across_modules(tmp_path):
    (tmp_path / "data.py").write_text(
        "from keras.preprocessing.image import ImageDataGenerator\n"
        "train_datagen = ImageDataGenerator(rescale=1./255, rotation_range=40, horizontal_flip=True)\n"
        "test_datagen = ImageDataGenerator(rescale=1./255)\n"
        "train_generator = train_datagen.flow_from_directory(train_dir)\n"
        "ok = test_datagen.flow_from_directory(validation_dir)\n")
    found = module(tmp_path, "import data\n\nvalidation_generator = data.train_datagen.flow_from_directory(\n"
                             "    validation_dir, target_size=(150, 150))\n", name="train.py")
    (hit,) = static.augmented_evaluation_generators(found)
    assert hit.where == "train.py:3"
    assert "rotation_range=40" in hit.detail and "validation_generator" in hit.detail


def test_augmenting_generator_with_validation_subset_only(tmp_path):
    text = ("g = ImageDataGenerator(zoom_range=0.2, validation_split=0.2)\n"
            "t = g.flow_from_directory(d, subset='training')\n"
            "v = g.flow_from_directory(d, subset='validation')\n"
            "flat = ImageDataGenerator(horizontal_flip=False).flow_from_directory(test_dir)\n")
    (hit,) = static.augmented_evaluation_generators(module(tmp_path, text))
    assert hit.where == "sub.py:3"
