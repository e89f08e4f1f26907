import json

from harness import evidence


def write(tmp_path, events, driver=()):
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if driver:
        (tmp_path / "driver.jsonl").write_text("".join(json.dumps(d) + "\n" for d in driver))
    return evidence.read(tmp_path)


MODEL = {"built": True, "layers": [{"type": "Dense", "params": 10}], "total_params": 10, "trainable_params": 10}


def test_clean_run_has_no_problems(tmp_path):
    ev = write(tmp_path, [
        {"seq": 1, "kind": "probe_start"},
        {"seq": 2, "kind": "fit_start", "fit": 1, "model": MODEL, "where": {"cell_run": 2, "line": 3}},
        {"seq": 3, "kind": "fit_end", "fit": 1, "model": MODEL, "history": {"loss": [2, 1]}},
        {"seq": 4, "kind": "probe_end", "events": 4}],
        driver=[{"kind": "cell", "index": 0, "run": 1}, {"kind": "cell", "index": 3, "run": 2}])
    assert ev.problems == []
    model = ev.last_model()
    assert model["total_params"] == 10 and [layer["type"] for layer in model["layers"]] == ["Dense"]
    assert ev.history() == {"loss": [2.0, 1.0]}
    assert ev.where(ev.fits[0].start["where"]) == "cell 4, line 3"


def test_removed_lines_and_garbage_are_problems(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"seq": 1, "kind": "probe_start"}\nnot json\n'
                                           '{"seq": 3, "kind": "probe_end", "events": 3}\n')
    ev = evidence.read(tmp_path)
    assert any("not JSON" in p for p in ev.problems)
    assert any("gaps" in p for p in ev.problems)


def test_empty_evidence_is_not_clean(tmp_path):
    ev = evidence.read(tmp_path)
    assert ev.fits == [] and ev.last_model() is None


def test_history_falls_back_to_epoch_logs(tmp_path):
    ev = write(tmp_path, [{"seq": 1, "kind": "probe_start"},
                          {"seq": 2, "kind": "epoch", "epoch": 0, "logs": {"loss": 2.0}},
                          {"seq": 3, "kind": "epoch", "epoch": 1, "logs": {"loss": 1.5}}])
    assert ev.history() == {"loss": [2.0, 1.5]}


def test_file_locations(tmp_path):
    ev = write(tmp_path, [{"seq": 1, "kind": "probe_start"}])
    assert ev.where({"file": "train.py", "line": 12}) == "train.py:12"
    assert ev.where(None) is None
    assert ev.where("cell 1") is None
