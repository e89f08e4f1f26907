"""The generated O-vs-X dataset (harness/data/ox.py): deterministic, laid out as
flow_from_directory expects, splits disjoint, and not separable by a trivial cue."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import ox

SMALL = {"train": 4, "validation": 2, "test": 2}
ROOT = Path(__file__).resolve().parents[2]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pixel_hash(path: Path) -> str:
    with Image.open(path) as image:
        return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def test_same_seed_gives_identical_bytes(tmp_path):
    ox.generate(tmp_path / "a", seed=7, counts=SMALL)
    ox.generate(tmp_path / "b", seed=7, counts=SMALL)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert len(a) == 2 * sum(SMALL.values())
    assert a == b


def test_result_does_not_depend_on_what_else_is_generated(tmp_path):
    ox.generate(tmp_path / "small", seed=3, counts={"test": 2})
    ox.generate(tmp_path / "big", seed=3, counts={"train": 5, "test": 4})
    for cls in ox.CLASSES:
        for i in range(2):
            name = f"test/{cls}/{i}.png"
            assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes()


def test_different_seeds_give_different_images(tmp_path):
    ox.generate(tmp_path / "a", seed=0, counts=SMALL)
    ox.generate(tmp_path / "b", seed=1, counts=SMALL)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


def test_layout_counts_and_classes(tmp_path):
    counts = {"train": 5, "validation": 3, "test": 2}
    written = ox.generate(tmp_path, seed=0, counts=counts)
    assert written == {split: {"o": n, "x": n} for split, n in counts.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ox.SPLITS)
    for split, n in counts.items():
        # lower case folder names: flow_from_directory maps o -> 0, x -> 1
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == ["o", "x"]
        for cls in ("o", "x"):
            names = sorted(p.name for p in (tmp_path / split / cls).iterdir())
            assert names == sorted(f"{i}.png" for i in range(n))


def test_default_counts():
    assert ox.DEFAULT_COUNTS == {"train": 500, "validation": 150, "test": 150}


def test_only_requested_splits_are_written(tmp_path):
    assert ox.generate(tmp_path, counts={"test": 1}) == {"test": {"o": 1, "x": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["test"]


def test_unknown_split_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        ox.generate(tmp_path, counts={"valid": 3})


@pytest.mark.parametrize("size", [64, 32])
def test_images_are_rgb_of_the_requested_size(tmp_path, size):
    ox.generate(tmp_path, seed=0, counts=SMALL, image_size=size)
    paths = sorted(tmp_path.rglob("*.png"))
    assert len(paths) == 2 * sum(SMALL.values())
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            assert image.size == (size, size)
            assert np.asarray(image).std() > 5  # not a blank picture


def test_no_image_appears_twice_within_or_across_splits(tmp_path):
    ox.generate(tmp_path, seed=0, counts={"train": 30, "validation": 10, "test": 10})
    seen: dict[str, Path] = {}
    for path in sorted(tmp_path.rglob("*.png")):
        digest = pixel_hash(path)
        assert digest not in seen, f"{path} repeats {seen.get(digest)}"
        seen[digest] = path
    assert len(seen) == 2 * 50


def _means(split: str, cls: str, n: int = 40) -> np.ndarray:
    return np.array([np.asarray(ox.draw_image(ox.image_rng(0, split, cls, i), cls), dtype=np.float32).mean()
                     for i in range(n)])


def test_classes_are_not_separable_by_brightness():
    o, x = _means("train", "o"), _means("train", "x")
    # the ink of an O and of an X covers about as much paper: mean values within a few levels
    assert abs(o.mean() - x.mean()) < 12, (o.mean(), x.mean())
    # and no brightness threshold tells them apart much better than chance
    values, labels = np.concatenate([o, x]), np.r_[np.zeros(len(o)), np.ones(len(x))]
    best = max(max(((values > t) == labels).mean(), ((values <= t) == labels).mean()) for t in values)
    assert best < 0.75, best


def test_images_vary_in_position_and_style():
    """The ink's centre moves around: a fixed-position template would not do."""
    centres = []
    for i in range(40):
        gray = np.asarray(ox.draw_image(ox.image_rng(0, "train", "o", i), "o").convert("L"), dtype=np.float32)
        ink = np.clip(np.median(gray) - gray - 30, 0, None)
        ys, xs = np.nonzero(ink)
        centres.append((xs.mean(), ys.mean()))
    spread = np.array(centres).std(axis=0)
    assert (spread > 3).all(), spread


def test_works_without_any_installed_font(tmp_path, monkeypatch):
    monkeypatch.setattr(ox, "font_files", lambda: ())
    ox._font_choices.cache_clear()
    try:
        choices = ox._font_choices()
        assert all(path is None for pairs in choices.values() for path, _ in pairs)
        for cls in ox.CLASSES:
            mask, _ = ox._font_mask(np.random.default_rng(0), cls, 128)
            assert np.asarray(mask).max() > 0
        ox.generate(tmp_path, seed=0, counts={"test": 3})
        assert len(list(tmp_path.rglob("*.png"))) == 6
    finally:
        ox._font_choices.cache_clear()


def test_finds_system_fonts_when_there_are_some():
    if not ox.font_files():
        pytest.skip("no TrueType fonts installed")
    assert any(path is not None for path, _ in ox._font_choices()["o"])


def test_does_not_import_tensorflow():
    code = "import sys, harness.data.ox; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
