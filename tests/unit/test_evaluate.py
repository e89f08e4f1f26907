import numpy as np

from harness.calibrate import propose
from harness.checks.leaks import augmentations
from harness.evaluate import score, validate_predictions


def test_softmax_and_sigmoid_predictions():
    pred, problem = validate_predictions(np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32), 2, 2)
    assert problem is None and list(pred) == [1, 0]
    pred, problem = validate_predictions(np.array([[0.7], [0.2], [0.5]]), 3, 2)
    assert list(pred) == [1, 0, 0]


def test_bad_predictions_are_rejected():
    assert validate_predictions(np.zeros((5, 10)), 6, 10)[1].startswith("predictions have shape")
    assert "NaN" in validate_predictions(np.array([[np.nan, 1.0]]), 1, 2)[1]
    assert "dtype" in validate_predictions(np.array([["a", "b"]]), 1, 2)[1]
    assert "one output unit for 10 classes" in validate_predictions(np.zeros(4), 4, 10)[1]
    assert validate_predictions(None, 1, 2)[1] is not None


def test_score_confusion_and_misclassified():
    labels = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    metrics = score(predicted, labels, ["a", "b", "c", "d", "e"], ["x", "y", "z"], "x/255")
    assert metrics.holdout_accuracy == 0.6 and metrics.holdout_size == 5
    assert metrics.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.per_class_accuracy == {"x": 0.5, "y": 1.0, "z": 0.0}
    assert metrics.misclassified == ["b", "e"]


def test_proposed_threshold_allows_for_variance_and_holdout_size():
    runs = [0.91, 0.915, 0.905, 0.912]
    small, large = propose(runs, 500), propose(runs, 100_000)
    assert small["proposed_threshold"] < large["proposed_threshold"] < min(runs)
    assert small["proposed_floor"] < small["proposed_threshold"]
    assert large["review_above"] > max(runs)
    assert propose([0.9], 10_000)["std"] == 0.0


def test_only_random_settings_count_as_augmentation():
    assert augmentations({"rescale": 1 / 255, "zoom_range": [1.0, 1.0], "horizontal_flip": False}) == []
    assert augmentations({"rotation_range": 40, "zoom_range": [0.8, 1.2], "horizontal_flip": True}) == [
        "rotation_range=40", "horizontal_flip=True", "zoom_range=[0.8, 1.2]"]


def test_score_grades_the_private_part_and_keeps_the_public_one_apart():
    labels = np.array([0, 0, 1, 1, 0, 1])
    predicted = np.array([0, 0, 1, 1, 1, 0])  # perfect on the public part, wrong on the private one
    private = np.array([False, False, False, False, True, True])
    metrics = score(predicted, labels, list("abcdef"), ["x", "y"], "x/255", private)
    assert metrics.holdout_accuracy == 0.0 and metrics.holdout_size == 2
    assert metrics.public_accuracy == 1.0 and metrics.public_size == 4
    assert metrics.misclassified == ["e", "f"]
    assert sum(map(sum, metrics.confusion_matrix)) == 2


def test_private_split_is_fixed_stratified_and_never_served():
    from harness.data.providers import served_test, split_parts
    labels = np.repeat(np.arange(10), 1000)
    private = split_parts(labels)
    assert (private == split_parts(labels)).all()  # the same on every machine
    for cls in range(10):
        assert private[labels == cls].sum() == 500
    images = np.arange(10_000)[:, None] * np.ones((1, 4), dtype=np.int64)
    x, y = served_test(images, labels, private)
    assert x.shape == images.shape and y.shape == labels.shape      # the official size
    served_ids = set(x[:, 0].tolist())
    assert served_ids == set(np.flatnonzero(~private).tolist())      # public part only, every one of it
    assert (y == labels[x[:, 0]]).all()


def test_generated_ox_holdout_is_drawn_with_a_secret_seed(tmp_path, monkeypatch):
    """With a seed from the source, anyone could draw the same holdout and its labels at home."""
    from harness.data import ox, providers, standin
    from harness.spec import load_all
    from conftest import ROOT
    spec = load_all(ROOT / "assignments")["ox"].spec.data.model_copy(update={"standin_images_per_class": 2})
    seeds = []

    def fake_generate(folder, seed, image_size):
        seeds.append(seed)
        source = standin.make(spec, tmp_path / f"cache-{len(seeds)}")
        import shutil
        for split in ("train", "validation", "test"):
            shutil.copytree(source / split, folder / split)

    monkeypatch.setattr(ox, "generate", fake_generate)
    monkeypatch.setattr(providers, "_spec_for", lambda name: spec)
    providers.prepare("ox", tmp_path / "one")
    providers.prepare("ox", tmp_path / "two")
    assert len(seeds) == 2 and seeds[0] != seeds[1] and 0 not in seeds
