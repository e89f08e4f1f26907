"""Submissions as their authors wrote them (Colab, Kaggle Learn, a laptop's /root/Downloads, the seed's
tfds code): each reaches its first fit in quick mode and its planted leak is found at its line; the
seed-faithful tfds notebook gets full marks in quick and full mode; a crash before the first fit never
earns no-leaks points. The fixtures are our own code, modelled on public notebooks of these tutorials."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, as_notebook, header, module_where

pytestmark = pytest.mark.integration
AUTHORS = FIXTURES / "authors"
NOTEBOOKS = ["colab_cats_and_dogs_small.py", "kaggle_car_or_truck.py"]


def check(rec, check_id):
    return next(c for c in rec["checks"] if c["id"] == check_id)


def _notebook_student(student, fixture: str):
    text = (AUTHORS / fixture).read_text()
    aid = header(text, "assignment")
    notebook, where = as_notebook(text)
    return student(Path(fixture).stem, {f"{aid}.ipynb": notebook}), aid, text, where


def _reached_fit_and_found(rec, rule, where):
    assert rec["status"] == "graded" and rec["run"]["exit_code"] == 5, rec["summary"]  # 5: stopped at the first fit
    assert check(rec, "architecture")["status"] == "pass", check(rec, "architecture")
    hits = [f for f in rec["findings"] if f["rule"] == rule and f["severity"] == "error"]
    assert where in [h["where"] for h in hits], (where, rec["findings"])
    leaks = check(rec, "no-leaks")
    assert leaks["status"] == "fail" and leaks["points"] == 0 and leaks["max_points"] == 10


@pytest.mark.parametrize("fixture", NOTEBOOKS)
def test_colab_and_kaggle_notebooks_reach_the_fit_and_the_leak_is_found(fixture, student, grade):
    folder, aid, text, where = _notebook_student(student, fixture)
    code, records = grade("--quick", str(folder))
    rec = records[(folder.name, aid)]
    _reached_fit_and_found(rec, header(text, "rule"), where)
    rules = {f["rule"] for f in rec["findings"]}
    assert set(header(text, "expect").split(",")) <= rules, rules


def test_colab_habits_are_notes_and_a_missing_package_is_named(student, grade):
    folder, aid, _, _ = _notebook_student(student, "colab_cats_and_dogs_small.py")
    code, records = grade("--quick", str(folder))
    habits = [f for f in records[(folder.name, aid)]["findings"] if f["rule"] == "notebook-habit"]
    by_text = {f["message"].split(" was not run")[0]: f for f in habits}
    assert by_text["`pip install -q tensorflow-datasets`"]["severity"] == "info"
    missing = by_text["`pip install -q livelossplot`"]
    assert missing["severity"] == "error" and "'livelossplot'" in missing["message"]
    assert missing["where"] == "cell 1, line 6"
    assert any("`!nvidia-smi`" in f["message"] for f in habits)
    assert any("drive.mount('/content/drive')" in f["message"] and f["where"] == "cell 2, line 2" for f in habits)
    mapped = [f for f in records[(folder.name, aid)]["findings"] if f["rule"] == "path-mapped"]
    assert [f["where"] for f in mapped] == ["cell 3, line 7"]
    assert "'/content/drive/MyDrive/Colab Notebooks/cats_and_dogs_small'" in mapped[0]["message"]


def test_chollet_two_file_module_from_root_downloads(student, grade):
    source = AUTHORS / "chollet_two_files"
    folder = student("chollet", {p.name: p for p in source.iterdir()})
    code, records = grade("--quick", str(folder))
    rec = records[("chollet", "dogs-vs-cats-small")]
    assert rec["run"]["runtime"] == "legacy"
    _reached_fit_and_found(rec, "augmented-validation", module_where("data.py", (source / "data.py").read_text()))
    (mapped,) = [f for f in rec["findings"] if f["rule"] == "path-mapped"]
    assert mapped["where"] == "data.py:6" and "'/root/Downloads/cats_and_dogs_small'" in mapped["message"]
    assert "data/dogs-vs-cats-small/train" in mapped["message"]


def test_a_crash_before_the_first_fit_earns_no_leak_points(student, grade):
    folder, aid, _, where = _notebook_student(student, "crashes_before_fit.py")
    code, records = grade("--quick", str(folder))
    rec = records[(folder.name, aid)]
    assert rec["status"] == "error" and "cell 2, line 1" in rec["summary"]
    assert "'/root/Downloads/dogs-vs-cats.zip'" in rec["summary"] and "download to unpack" in rec["summary"]
    assert "data/dogs-vs-cats-small/train" in rec["summary"]
    leaks = check(rec, "no-leaks")
    assert leaks["status"] == "skip" and leaks["points"] == 0 and leaks["max_points"] == 10
    assert rec["max_score"] == sum(c["max_points"] for c in rec["checks"] if c["status"] != "skip" or c["max_points"])
    assert rec["score"] == 0 and rec["max_score"] >= 10  # the skip counts as 0 of 10
    (seen,) = [f for f in rec["findings"] if f["rule"] == "augmented-validation"]
    assert seen["severity"] == "warning" and seen["where"] == where
    assert seen["message"].startswith("Seen in the code, not observed")
    # the raw Kaggle folder is another dataset: not mapped to the served split
    assert not any("dogs-vs-cats/train" in f["message"] for f in rec["findings"] if f["rule"] == "path-mapped")


# ---- seed 001 as written: tfds.load with split strings

SEED = "cats_vs_dogs_tfds_seed.py"


def test_seed_tfds_notebook_full_marks_in_quick_mode(student, grade):
    folder, aid, _, _ = _notebook_student(student, SEED)
    code, records = grade("--quick", str(folder))
    rec = records[(folder.name, aid)]
    assert rec["status"] == "graded" and rec["score"] == rec["max_score"] > 0, rec["summary"]
    assert rec["model"]["total_params"] == 13_132_322
    assert [f for f in rec["findings"] if f["severity"] == "error"] == []


def test_overlapping_tfds_split_strings_are_still_split_overlap(student, grade):
    text = (AUTHORS / SEED).read_text().replace("'train[80%:90%]'", "'train[70%:90%]'")
    notebook, _ = as_notebook(text)
    folder = student("overlap", {"cats-vs-dogs.ipynb": notebook})
    code, records = grade("--quick", str(folder))
    rec = records[("overlap", "cats-vs-dogs")]
    hits = [f for f in rec["findings"] if f["rule"] == "split-overlap"]
    assert hits and "10%" in hits[0]["message"] and check(rec, "no-leaks")["status"] == "fail"


def _learnable_cats_vs_dogs(folder: Path, spec) -> Path:
    """Class folders where the class shows (reddish cats, bluish dogs): a 2-epoch model learns it."""
    from PIL import Image
    rng = np.random.default_rng(1)
    counts = {"train": 24, "validation": 8, "test": 16}
    for split, n in counts.items():
        for k, label in enumerate(sorted(spec.classes)):
            out = folder / split / label
            out.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, size=(160, 160, 3), dtype=np.uint8)
                pixels[..., 0 if k == 0 else 2] += 180
                Image.fromarray(pixels, "RGB").save(out / f"{label}.{i}.png")
    return folder


@pytest.fixture(scope="module")
def cats_root(tmp_path_factory, assignments):
    from harness.data import providers
    spec = assignments["cats-vs-dogs"].spec.data
    source = _learnable_cats_vs_dogs(tmp_path_factory.mktemp("cats-source"), spec)
    root = tmp_path_factory.mktemp("cats-root")
    providers.import_folders(spec.name, source, providers.dataset_dir(spec.name, root), spec, "generated-for-tests")
    return root


def test_tfds_data_dir_holds_the_served_splits_only(cats_root, assignments, tmp_path):
    from harness.data import providers, tfds_serve
    spec = assignments["cats-vs-dogs"].spec.data
    served = providers.served_root(spec, cats_root)
    built = tfds_serve.build(spec, served, tmp_path, providers.identity(spec.name, cats_root))
    info = json.loads(next(built.glob("cats_vs_dogs/*/dataset_info.json")).read_text())
    (split,) = info["splits"]
    assert split["name"] == "train" and sum(int(n) for n in split["shardLengths"]) == 2 * (24 + 8)
    assert tfds_serve.build(spec, served, tmp_path, providers.identity(spec.name, cats_root)) == built  # cached


def test_seed_tfds_notebook_full_marks_in_full_mode(student, grade, cats_root):
    text = (AUTHORS / SEED).read_text()
    notebook, _ = as_notebook(text)
    folder = student("seed-full", {"cats-vs-dogs.ipynb": notebook})
    code, records = grade("--data-root", str(cats_root), str(folder))
    rec = records[("seed-full", "cats-vs-dogs")]
    assert rec["status"] == "graded", rec["summary"]
    assert rec["metrics"]["holdout_accuracy"] >= 0.72, rec["metrics"]
    assert rec["score"] == rec["max_score"] == 100, [(c["id"], c["points"], c["message"]) for c in rec["checks"]]
    assert len(rec["history"]["val_accuracy"]) == 2
