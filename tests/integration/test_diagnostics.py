"""Training curves and missing evidence, from real (short) training runs in the sandbox."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, as_notebook, module_where

pytestmark = pytest.mark.integration
DIAG = FIXTURES / "diagnostics"


def files_for(fixture: str, form: str) -> tuple[dict[str, str], str]:
    text = (DIAG / fixture).read_text()
    if form == "module":
        return {"fashion-mnist-cnn.py": text}, module_where("fashion-mnist-cnn.py", text)
    notebook, where = as_notebook(text)
    return {"fashion-mnist-cnn.ipynb": notebook}, where


@pytest.mark.parametrize("form", ["module", "notebook"])
@pytest.mark.parametrize("fixture,rule", [("overfits.py", "overfitting"), ("diverges.py", "divergence")])
def test_curve_findings_point_at_the_fit(fixture, rule, form, student, grade, data_root):
    files, where = files_for(fixture, form)
    folder = student(f"{fixture[:-3]}-{form}", files)
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[(folder.name, "fashion-mnist-cnn")]
    hits = [f for f in rec["findings"] if f["rule"] == rule]
    assert hits, (rec["findings"], rec["history"])
    assert hits[0]["where"] == where
    assert rec["history"]["loss"], "the curves are in the record for the reports"


@pytest.mark.parametrize("form", ["module", "notebook"])
@pytest.mark.parametrize("fixture", ["empties_evidence.py", "bypasses_probe.py"])
def test_tampering_never_looks_clean(fixture, form, student, grade, data_root):
    files, _ = files_for(fixture, form)
    folder = student(f"{fixture[:-3]}-{form}", files)
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[(folder.name, "fashion-mnist-cnn")]
    assert any(f["rule"] == "evidence-missing" and f["severity"] == "error" for f in rec["findings"]), rec["findings"]
    assert rec["status"] != "graded" or rec["score"] < rec["max_score"]
    leaks = next(c for c in rec["checks"] if c["id"] == "no-leaks")
    assert leaks["status"] == "fail"
