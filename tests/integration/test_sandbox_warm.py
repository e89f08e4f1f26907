"""A sandbox's home starts with matplotlib's font list (harness/sandbox/warm.py): `import tensorflow` in a job
then costs what it costs on a used machine, without listing and scanning the system's fonts every run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import docker_missing
from harness.sandbox import Limits, SandboxRequest, get, warm

pytestmark = pytest.mark.integration
SANDBOXES = ["bwrap", pytest.param("docker", marks=pytest.mark.skipif(docker_missing() is not None,
                                                                      reason=str(docker_missing())))]
CHECK = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
         "import matplotlib, matplotlib.font_manager; print('cache at', matplotlib.get_cachedir())")


def run_in(name: str, tmp_path: Path, code: str):
    sandbox = get(name)
    if sandbox.unavailable_reason():
        pytest.fail(sandbox.unavailable_reason())  # make install provides both: not a reason to skip
    (tmp_path / "stage").mkdir()
    python = sandbox.layout(tmp_path).python or sys.executable
    request = SandboxRequest(argv=[python, "-c", code], job_dir=tmp_path, stage=tmp_path / "stage",
                             timeout=120, env={"HARNESS_WORKSPACE": "/workspace", "HOME": "/home/student",
                                               "PATH": "/usr/bin:/bin"},
                             limits=Limits(), log=tmp_path / "output.log")
    result = sandbox.run(request)
    return result, (tmp_path / "output.log").read_text(errors="replace")


@pytest.mark.parametrize("name", SANDBOXES)
def test_a_job_finds_the_font_list_and_does_not_make_it_again(name, tmp_path):
    assert warm.font_cache() is not None
    result, output = run_in(name, tmp_path, CHECK)
    assert result.exit_code == 0, output
    assert "cache at /home/student/.cache/matplotlib" in output
    assert "generated new fontManager" not in output  # what matplotlib logs when it lists the fonts itself


def test_the_first_shell_line_copies_the_cache_only_when_there_is_one():
    assert warm.stage_script(None) == 'cp -R /submission/. "$HARNESS_WORKSPACE"/ 2>/dev/null; exec "$@"'
    line = warm.stage_script("/opt/harness-cache/matplotlib")
    assert 'cp -R /opt/harness-cache/matplotlib "$HOME/.cache/"' in line and line.endswith('exec "$@"')


def test_making_the_cache_imports_nothing_from_the_folder_grade_runs_in(tmp_path, monkeypatch):
    """`grade .` runs in a student's folder; the cache is made on the host, outside any sandbox, so a
    `matplotlib.py` handed in there must not be what that interpreter imports."""
    student = tmp_path / "alice"
    student.mkdir()
    marker = tmp_path / "ran-on-the-host"
    (student / "matplotlib.py").write_text(f"open({str(marker)!r}, 'w').write('student code')\n")
    monkeypatch.chdir(student)
    found = warm.font_cache(root=tmp_path / "cache")
    assert not marker.exists()
    assert found is not None and any(found.glob("fontlist-*.json"))


def test_a_job_cannot_change_the_font_list_other_jobs_start_with(tmp_path):
    """The cache is bound read-only: a job changes only its own copy in its home."""
    cache = warm.font_cache()
    assert cache is not None
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    code = (f"import glob, os, sys\n"
            f"for path in glob.glob({warm.INSIDE!r} + '/*'):\n"
            f"    try:\n"
            f"        open(path, 'w').write('{{}}')\n"
            f"        print('wrote', path)\n"
            f"    except OSError as exc:\n"
            f"        print('refused', exc.errno)\n"
            f"try:\n"
            f"    open({warm.INSIDE!r} + '/fontlist-extra.json', 'w')\n"
            f"    print('wrote a new file')\n"
            f"except OSError as exc:\n"
            f"    print('refused', exc.errno)\n"
            f"mine = glob.glob(os.path.expanduser('~/.cache/matplotlib/fontlist-*.json'))\n"
            f"open(mine[0], 'w').write('{{}}')\n"
            f"print('own copy changed')\n")
    result, output = run_in("bwrap", tmp_path, code)
    assert result.exit_code == 0, output
    assert "wrote" not in output and "refused" in output and "own copy changed" in output, output
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before
