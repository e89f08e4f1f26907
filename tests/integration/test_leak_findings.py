"""A fixture for every rule, as a module and as a notebook: each is found, at the marked line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, as_notebook, header, module_where

pytestmark = pytest.mark.integration
LEAKS = FIXTURES / "leaks"
CASES = sorted(p.name for p in LEAKS.glob("*.py"))


@pytest.mark.parametrize("form", ["module", "notebook"])
@pytest.mark.parametrize("fixture", CASES)
def test_rule_is_found_at_the_marked_line(fixture, form, student, grade):
    text = (LEAKS / fixture).read_text()
    aid, rule = header(text, "assignment"), header(text, "rule")
    if form == "module":
        files, where = {f"{aid}.py": text}, module_where(f"{aid}.py", text)
    else:
        notebook, where = as_notebook(text)
        files = {f"{aid}.ipynb": notebook}
    folder = student(f"{Path(fixture).stem}-{form}", files)
    code, records = grade("--quick", str(folder))
    rec = records[(folder.name, aid)]
    hits = [f for f in rec["findings"] if f["rule"] == rule]
    assert hits, f"{rule} not found; findings: {rec['findings']}; summary: {rec['summary']}"
    assert where in [h["where"] for h in hits], (where, hits)
    if rule != "ignored-argument":
        assert any(h["severity"] == "error" for h in hits)
        leaks = next(c for c in rec["checks"] if c["id"] == "no-leaks")
        assert leaks["status"] == "fail" and leaks["points"] == 0


CLEAN = FIXTURES / "clean"


@pytest.mark.parametrize("fixture", sorted(p.name for p in CLEAN.glob("*.py")))
def test_correct_code_has_no_error_finding(fixture, student, grade):
    text = (CLEAN / fixture).read_text()
    aid = header(text, "assignment")
    folder = student(Path(fixture).stem, {f"{aid}.py": text})
    code, records = grade("--quick", str(folder))
    rec = records[(folder.name, aid)]
    assert rec["status"] == "graded", rec["summary"]
    assert [f for f in rec["findings"] if f["severity"] == "error"] == []
    assert next(c for c in rec["checks"] if c["id"] == "no-leaks")["status"] == "pass"
