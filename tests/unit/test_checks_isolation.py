"""One check's crash is that check's `error`; the other checks still run."""

from harness import checks, evidence
from harness.sandbox import SandboxResult


def test_a_crashing_check_is_an_error_and_the_others_still_run(tmp_path, assignments, monkeypatch):
    def explodes(ctx):
        raise KeyError("surprise")
    monkeypatch.setitem(checks._REGISTRY, "architecture", explodes)
    result = SandboxResult(exit_code=0, timed_out=False, memory_exceeded=False, wall_seconds=1.0,
                           peak_memory_mb=None, output_tail="", sandbox="bwrap")
    ctx = checks.Context(assignment=assignments["ox"], evidence=evidence.read(tmp_path), result=result, quick=False)
    checked, findings = checks.run_all(ctx)
    by_id = {c.id: c for c in checked}
    assert by_id["architecture"].status == "error" and by_id["architecture"].max_points == 40
    assert "harness's fault" in by_id["architecture"].message and "KeyError" in by_id["architecture"].message
    assert {"completes", "holdout-accuracy", "no-leaks"} <= set(by_id)
    assert by_id["completes"].status == "fail"  # no model was loaded: measured, not crashed
