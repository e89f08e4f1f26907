"""The grading image, on the real Docker Engine: built by `make install`, run here with no network."""

import shutil
from pathlib import Path

import pytest

from harness import image
from harness.errors import InfrastructureError

ROOT = Path(__file__).resolve().parents[2]
REASON = image.engine_unavailable_reason()
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(REASON is not None, reason=f"no Docker Engine can run here: {REASON}")]

INSIDE = """
import os, pwd, socket, sys
me = pwd.getpwuid(os.getuid())
print(os.getuid(), os.getgid(), me.pw_name, me.pw_dir, os.path.isdir(me.pw_dir), sys.executable)
print(sorted(os.listdir("/sys/class/net")))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    print("connected")
except OSError as exc:
    print("no network:", type(exc).__name__)
"""


@pytest.fixture(scope="module")
def engine():
    client = image.connect()
    yield client
    client.close()


@pytest.fixture(scope="module")
def tag(engine) -> str:
    return image.ensure_present(engine)  # fails (does not skip) with "run `harness image build`" when not built


def run(engine, tag: str, code: str) -> str:
    out = engine.containers.run(tag, [image.PYTHON_IN_IMAGE, "-c", code], network_mode="none", remove=True,
                                read_only=True, tmpfs={"/tmp": "size=16m"})
    return out.decode()


def test_the_image_of_this_checkout_is_present_under_its_content_tag(engine, tag):
    assert tag == image.required_tag(engine)
    labels = engine.images.get(tag).labels
    assert labels[f"{image.LABEL}.tag"] == tag


def test_python_runs_as_the_student_user_with_no_network(engine, tag):
    lines = run(engine, tag, INSIDE).splitlines()
    assert lines[0] == "1000 1000 student /home/student True /opt/harness/venv/bin/python"
    assert lines[1] == "['lo']"
    assert lines[2].startswith("no network")


@pytest.mark.parametrize("runtime, keras_major", [("keras3", "3."), ("legacy", "2.")])
def test_both_runtimes_import_offline_with_the_probe_switch(engine, tag, runtime, keras_major):
    python, tensorflow, keras, said = image.run_check(engine, tag, runtime).split()
    assert python.startswith("3.11.") and tensorflow.startswith("2.21.")
    assert keras.startswith(keras_major) and said == runtime


def test_ensure_present_never_builds_and_says_what_to_run(engine, tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docker", copy / "docker")
    shutil.copyfile(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "harness" / "probe" / "run_module.py").write_text("# a change that is not built\n")
    before = {i.id for i in engine.images.list()}
    with pytest.raises(InfrastructureError, match=r"is not built; run `harness image build`"):
        image.ensure_present(engine, root=copy)
    with pytest.raises(InfrastructureError, match=r"base image nothing-here:x is not on this machine; run `harness"):
        image.ensure_present(engine, base="nothing-here:x")
    assert {i.id for i in engine.images.list()} == before
