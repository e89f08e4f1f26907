"""Paths from the author's machine: which literals are mapped to the served splits, and where."""

from harness import static
from harness.data import paths

CODE = """
base_dir = '/root/Downloads/cats_and_dogs_small'
kaggle = '../input/car-or-truck/train'
drive = '/content/drive/MyDrive/data/train/'
home = '~/Downloads/cats_and_dogs_small/validation'
served = 'data/dogs-vs-cats-small/train'
system = '/usr/lib/train'
raw = '/root/Downloads/dogs-vs-cats/train'
archive = '/root/Downloads/dogs-vs-cats.zip'
url = 'https://example.org/cats_and_dogs_small/train'
"""


def _plan(tmp_path, assignments, aid, isolated=True, exists=lambda relative: False):
    (tmp_path / "sub.py").write_text(CODE)
    return {m.literal: m for m in paths.plan(assignments[aid].spec.data, static.units(tmp_path / "sub.py"),
                                             "/workspace", "/home/student", exists, isolated)}


def test_served_layout_tails_are_mapped_and_nothing_else(tmp_path, assignments):
    found = _plan(tmp_path, assignments, "dogs-vs-cats-small")
    assert set(found) == {"/root/Downloads/cats_and_dogs_small", "/content/drive/MyDrive/data/train/",
                          "~/Downloads/cats_and_dogs_small/validation"}
    base = found["/root/Downloads/cats_and_dogs_small"]
    assert base.splits == (("/root/Downloads/cats_and_dogs_small/train", "train"),
                           ("/root/Downloads/cats_and_dogs_small/validation", "validation"))
    assert base.where == "sub.py:2"
    assert found["/content/drive/MyDrive/data/train/"].splits == (("/content/drive/MyDrive/data/train", "train"),)
    home = found["~/Downloads/cats_and_dogs_small/validation"]
    assert home.anchor == "/home/student/Downloads/cats_and_dogs_small"
    assert home.folder == "~/Downloads/cats_and_dogs_small"


def test_kaggle_input_folder_of_the_dataset(tmp_path, assignments):
    found = _plan(tmp_path, assignments, "car-or-truck")
    kaggle = found["../input/car-or-truck/train"]
    assert kaggle.anchor == "/input/car-or-truck" and kaggle.folder == "../input/car-or-truck"
    assert kaggle.splits == (("/input/car-or-truck/train", "train"), ("/input/car-or-truck/valid", "valid"))
    assert kaggle.describe("car-or-truck") == ("data/car-or-truck/train (as train/) and "
                                                "data/car-or-truck/valid (as valid/)")


def test_the_holdout_split_is_never_a_target(tmp_path, assignments):
    for aid in ("dogs-vs-cats-small", "car-or-truck", "cats-vs-dogs", "ox"):
        for mapped in _plan(tmp_path, assignments, aid).values():
            assert "test" not in {split for _, split in mapped.splits}


def test_without_isolation_only_the_jobs_own_folders(tmp_path, assignments):
    found = _plan(tmp_path, assignments, "dogs-vs-cats-small", isolated=False)
    assert set(found) == {"~/Downloads/cats_and_dogs_small/validation"}


def test_a_folder_the_student_handed_in_is_left_alone(tmp_path, assignments):
    (tmp_path / "sub.py").write_text("d = 'cats_and_dogs_small/train'\n")
    found = paths.plan(assignments["dogs-vs-cats-small"].spec.data, static.units(tmp_path / "sub.py"), "/workspace",
                       "/home/student", lambda relative: relative.startswith("cats_and_dogs_small"), True)
    assert found == []


def test_system_places_are_never_targets(tmp_path, assignments):
    (tmp_path / "sub.py").write_text(
        "a = '/usr/lib/cats_and_dogs_small'\nb = '/etc/cats_and_dogs_small/train'\n"
        "c = '/workspace/../proc/cats_and_dogs_small'\nd = '/opt/harness-probe/cats_and_dogs_small'\n"
        "e = '/evidence/cats_and_dogs_small'\nf = '/root/../usr/cats_and_dogs_small'\ng = 'data/../../bin/train'\n")
    found = paths.plan(assignments["dogs-vs-cats-small"].spec.data, static.units(tmp_path / "sub.py"), "/workspace",
                       "/home/student", lambda relative: False, True)
    assert found == []
