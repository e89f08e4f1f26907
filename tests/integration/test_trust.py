"""The grade rests on what the harness measured: the model file it read, the private holdout, and
evidence parsed as claims. Each fixture is named after its attack."""

from __future__ import annotations

import shutil

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.integration
TRUST = FIXTURES / "trust"


def check(rec, check_id):
    return next(c for c in rec["checks"] if c["id"] == check_id)


@pytest.mark.parametrize("mode", ["--quick", "full"])
def test_forged_layer_table_does_not_earn_architecture_points(mode, student, grade, data_root):
    folder = student("forger", {"fashion-mnist-cnn.py": TRUST / "forges_layer_table.py"})
    args = [mode] if mode == "--quick" else []
    code, records = grade(*args, "--data-root", str(data_root), str(folder))
    rec = records[("forger", "fashion-mnist-cnn")]
    architecture = check(rec, "architecture")
    assert architecture["status"] == "fail" and architecture["points"] < 10, architecture
    assert rec["model"]["total_params"] == 7_850, rec["model"]     # the file, not the claim
    mismatch = [f for f in rec["findings"] if f["rule"] == "evidence-mismatch"]
    assert mismatch and mismatch[0]["severity"] == "error"
    assert "3,156,098 claimed" in mismatch[0]["message"] and "7,850 in the file" in mismatch[0]["message"]
    assert check(rec, "no-leaks")["status"] == "fail"
    if mode == "full":
        assert rec["status"] == "graded" and rec["metrics"]["holdout_accuracy"] is not None


def test_training_on_the_served_test_split_does_not_raise_the_trusted_score(student, grade, data_root):
    folder = student("peeker", {"fashion-mnist-cnn.py": TRUST / "trains_on_served_test.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("peeker", "fashion-mnist-cnn")]
    metrics = rec["metrics"]
    assert rec["status"] == "graded", rec["summary"]
    assert metrics["holdout_size"] == 5_000 and metrics["public_size"] == 5_000
    # memorised the public part it was served; the private part, which grades, shows what it really learned
    assert metrics["public_accuracy"] > metrics["holdout_accuracy"] + 0.04, metrics
    assert metrics["claimed_accuracy"] > metrics["holdout_accuracy"] + 0.04
    assert any(f["rule"] == "test-in-training" for f in rec["findings"])


def test_malformed_evidence_of_every_kind_is_a_finding_not_a_crash(student, grade):
    folder = student("scribbler", {"fashion-mnist-cnn.py": TRUST / "writes_malformed_evidence.py"})
    code, records = grade("--quick", str(folder))
    rec = records[("scribbler", "fashion-mnist-cnn")]
    assert rec["status"] == "graded", rec["summary"]
    assert all(c["status"] != "error" for c in rec["checks"]), rec["checks"]
    assert check(rec, "architecture")["status"] == "pass"
    problems = " ".join(rec["evidence_problems"])
    for kind in ("fit_start", "fit_end", "compile", "epoch", "evaluate", "model_saved", "exception",
                 "statistics_fit", "admin_override"):
        assert f"'{kind}'" in problems or kind in problems, (kind, problems)
    missing = [f for f in rec["findings"] if f["rule"] == "evidence-missing" and f["severity"] == "error"]
    assert missing, rec["findings"]


def test_rescore_changes_nothing_then_applies_a_new_threshold_without_a_sandbox(student, grade, data_root,
                                                                                 tmp_path, root, monkeypatch):
    from harness.cli import harness_main
    from harness.record import load
    folder = student("again", {"fashion-mnist-cnn.py": FIXTURES / "evaluation" / "trains_briefly.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    before = records[("again", "fashion-mnist-cnn")]
    assert before["metrics"]["holdout_accuracy"] < 0.85  # below the shipped floor: 0 accuracy points

    started = []
    import harness.sandbox.base as base
    import harness.sandbox.bwrap as bwrap
    import harness.sandbox.process as process

    def refuse(*args, **kwargs):
        started.append(args)
        raise AssertionError("rescore started a sandbox")
    for module in (base, bwrap, process):
        monkeypatch.setattr(module, "supervise", refuse)

    out = tmp_path / "reports"
    assert harness_main(["rescore", str(out), "--assignments", str(root / "assignments"),
                         "--data-root", str(data_root)]) == 1
    same = load(out / "again" / "fashion-mnist-cnn.json").model_dump(mode="json")
    assert {k: v for k, v in same.items() if k != "created_at"} == \
        {k: v for k, v in before.items() if k != "created_at"}

    easier = tmp_path / "assignments"
    shutil.copytree(root / "assignments", easier)
    toml = easier / "fashion-mnist-cnn" / "assignment.toml"
    text = toml.read_text()
    assert "threshold = 0.90" in text and "floor = 0.85" in text
    toml.write_text(text.replace("threshold = 0.90", "threshold = 0.5").replace("floor = 0.85", "floor = 0.4"))
    harness_main(["rescore", str(out), "--assignments", str(easier), "--data-root", str(data_root)])
    after = load(out / "again" / "fashion-mnist-cnn.json")
    accuracy = next(c for c in after.checks if c.id == "holdout-accuracy")
    assert accuracy.status == "pass" and accuracy.points == accuracy.max_points
    assert after.metrics.holdout_accuracy == before["metrics"]["holdout_accuracy"]
    assert started == []


def test_a_swapped_graph_is_not_scored_for_the_archive(student, grade, data_root):
    folder = student("swapper", {"ox.py": TRUST / "swaps_exported_graph.py"})
    code, records = grade("--data-root", str(data_root), str(folder))
    rec = records[("swapper", "ox")]
    accuracy = check(rec, "holdout-accuracy")
    assert rec["metrics"]["holdout_accuracy"] is None and accuracy["points"] == 0, rec["metrics"]
    assert "not the" in accuracy["message"] and "saved model" in accuracy["message"], accuracy["message"]
    assert rec["status"] == "no-model"
