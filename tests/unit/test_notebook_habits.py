"""Notebook habits: what a `!pip install` asks for, and the findings made from the probe's notes."""

import json
import sys
from pathlib import Path

from harness import checks, evidence
from harness.checks import habits
from harness.sandbox import SandboxResult

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "harness" / "probe"))
import harness_probe  # noqa: E402  (the probe's pure helpers; nothing is installed)


def test_pip_commands_are_parsed():
    assert harness_probe._pip_packages("pip install -q tensorflow-datasets livelossplot==0.5") == [
        "tensorflow-datasets", "livelossplot==0.5"]
    assert harness_probe._pip_packages("/usr/bin/python3 -m pip install --upgrade -r req.txt keras-tuner") == [
        "keras-tuner"]
    assert harness_probe._pip_packages("pip3 install 'efficientnet[tfkeras]' && ls") == ["efficientnet[tfkeras]"]
    assert harness_probe._pip_packages("wget https://x/cats.zip") is None
    assert harness_probe._pip_packages("pip list") is None
    assert harness_probe._installed("numpy") and harness_probe._installed("tensorflow-datasets")
    assert not harness_probe._installed("surely-not-a-package-here")


def test_notes_become_findings(tmp_path, assignments):
    events = [{"seq": 1, "kind": "probe_start"},
              {"seq": 2, "kind": "note", "what": "pip", "detail": "pip install -q foo numpy",
               "present": ["numpy"], "missing": ["foo"], "where": {"cell_run": 1, "line": 2}},
              {"seq": 3, "kind": "note", "what": "shell", "detail": "wget https://x/cats.zip"},
              {"seq": 4, "kind": "note", "what": "colab", "detail": "drive.mount('/content/drive')"},
              {"seq": 5, "kind": "note", "what": "learntools", "detail": "learntools.core.binder.bind(...)"},
              {"seq": 6, "kind": "note", "what": "learntools", "detail": "learntools.computer_vision.ex5.q_1.check(...)"}]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "driver.jsonl").write_text(json.dumps({"kind": "cell", "index": 0, "run": 1}) + "\n")
    ev = evidence.read(tmp_path)
    assert ev.problems == []  # the note kind is part of the typed evidence
    result = SandboxResult(exit_code=5, timed_out=False, memory_exceeded=False, wall_seconds=1.0,
                           peak_memory_mb=None, output_tail="", sandbox="bwrap")
    ctx = checks.Context(assignment=assignments["car-or-truck"], evidence=ev, result=result, quick=True)
    found = habits.notes(ctx)
    assert [f.severity for f in found] == ["error", "info", "info", "info"]
    assert "'foo'" in found[0].message and found[0].where == "cell 1, line 2"
    assert "`!wget https://x/cats.zip`" in found[1].message
    assert "binder.bind" in found[3].message and "q_1.check" in found[3].message
