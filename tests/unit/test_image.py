"""The grading image's tag and lock: pure functions of a checkout (no engine needed)."""

import shutil
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness import image
from harness.errors import InfrastructureError

ROOT = Path(__file__).resolve().parents[2]
BASE_ID = "sha256:" + "ab" * 32


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of what goes into the image: pyproject.toml, docker/ and harness/."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docker", copy / "docker")
    shutil.copyfile(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def tag(root: Path, base_id: str = BASE_ID) -> str:
    return image.tag_for(image.inputs(root), base_id)


def test_the_tag_is_stable_and_names_the_image_repository(checkout):
    first = tag(checkout)
    assert first == tag(checkout)
    assert first.startswith(f"{image.IMAGE_REPO}:") and len(first.split(":")[1]) == 16


@pytest.mark.parametrize("rel", ["harness/probe/harness_probe.py", "harness/evaluator/predict.py",
                                 "docker/Dockerfile", "docker/requirements.lock", "pyproject.toml"])
def test_a_change_in_what_goes_into_the_image_changes_the_tag(checkout, rel):
    before = tag(checkout)
    with (checkout / rel).open("a") as f:
        f.write("\n# changed\n")
    assert tag(checkout) != before


def test_a_new_project_file_and_another_base_change_the_tag(checkout):
    before = tag(checkout)
    assert tag(checkout, "sha256:" + "cd" * 32) != before
    (checkout / "harness" / "probe" / "extra.py").write_text("x = 1\n")
    assert tag(checkout) != before


def test_caches_editor_files_and_files_outside_the_image_leave_the_tag_alone(checkout):
    before = tag(checkout)
    (checkout / "harness" / "__pycache__").mkdir()
    (checkout / "harness" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    (checkout / "harness" / "cli.py~").write_text("backup")
    (checkout / "harness" / ".cli.py.swp").write_text("swap")
    (checkout / "README.md").write_text("docs change")
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_x.py").write_text("def test(): pass\n")
    assert tag(checkout) == before


def test_a_checkout_without_the_dockerfile_is_an_infrastructure_error(checkout):
    (checkout / "docker" / "Dockerfile").unlink()
    with pytest.raises(InfrastructureError, match="Dockerfile"):
        image.inputs(checkout)


def test_the_lock_pins_every_dependency_of_pyproject_within_its_range():
    """A dependency added to pyproject.toml without `harness image lock` would be missing from the image."""
    pins = image.locked(ROOT)
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {image.LOCK}: run `harness image lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is not {req.specifier}"


def test_the_debian_mirror_comes_from_the_main_archive_of_the_apt_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    assert image.mirror_from_sources(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert image.mirror_from_sources(tmp_path) == "http://other.example/debian"
    (tmp_path / "sources.list").write_text("# nothing\n")
    with pytest.raises(InfrastructureError, match="HARNESS_DEBIAN_MIRROR"):
        image.mirror_from_sources(tmp_path)
