"""Training curves and missing evidence, from real (short) training runs in the sandbox."""

from __future__ import annotations

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.integration
DIAG = FIXTURES / "diagnostics"


def marked_line(name):
    text = (DIAG / name).read_text()
    return next(i for i, line in enumerate(text.splitlines(), 1) if "# <- finding" in line)


@pytest.mark.parametrize("fixture,rule", [("overfits.py", "overfitting"), ("diverges.py", "divergence")])
def test_curve_findings_point_at_the_fit(fixture, rule, student, grade, data_root):
    folder = student(fixture[:-3], {"fashion-mnist-cnn.py": DIAG / fixture})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[(folder.name, "fashion-mnist-cnn")]
    hits = [f for f in rec["findings"] if f["rule"] == rule]
    assert hits, (rec["findings"], rec["history"])
    assert hits[0]["where"] == f"fashion-mnist-cnn.py:{marked_line(fixture)}"
    assert rec["history"]["loss"], "the curves are in the record for the reports"


@pytest.mark.parametrize("fixture", ["empties_evidence.py", "bypasses_probe.py"])
def test_tampering_never_looks_clean(fixture, student, grade, data_root):
    folder = student(fixture[:-3], {"fashion-mnist-cnn.py": DIAG / fixture})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[(folder.name, "fashion-mnist-cnn")]
    assert any(f["rule"] == "evidence-missing" and f["severity"] == "error" for f in rec["findings"]), rec["findings"]
    assert rec["status"] != "graded" or rec["score"] < rec["max_score"]
    leaks = next(c for c in rec["checks"] if c["id"] == "no-leaks")
    assert leaks["status"] == "fail"
