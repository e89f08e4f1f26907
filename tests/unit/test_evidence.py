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


MALFORMED = {
    "probe_start": {"pid": "1"},
    "fit_start": {"fit": 1, "model": {"layers": ["not a dict"], "built": True}},
    "fit_end": {"fit": 1, "history": {"loss": ["low"]}},
    "model_built": {"fit": 1, "model": None},
    "compile": {"model": {"layers": [{"type": ["Dense"]}]}},
    "epoch": {"epoch": "one", "logs": {"loss": 1.0}},
    "evaluate": {"claimed": {"accuracy": 1.0}},
    "model_saved": {"model": {"total_params": "3156098"}},
    "exception": {"where": {"cell_run": "x"}},
    "statistics_fit": {"what": "adapt", "signatures": 7},
    "save": {"path": ["a"]},
    "quick_stop": {"fit": 1.5},
    "probe_end": {"events": 10**60},
    "admin_override": {"grade": 100},
}


def test_each_malformed_event_kind_is_a_problem_and_is_dropped(tmp_path):
    lines = [{"seq": 1, "kind": "probe_start"}]
    lines += [{"seq": n, "kind": kind, **body} for n, (kind, body) in enumerate(MALFORMED.items(), 2)]
    ev = write(tmp_path, lines)
    assert [e["kind"] for e in ev.events] == ["probe_start"]
    for kind in MALFORMED:
        assert any(f"'{kind}'" in p and "malformed" in p for p in ev.problems), kind
    assert ev.fits == [] and ev.last_model() is None and ev.history() == {}


def test_oversized_numbers_and_deep_nesting_do_not_raise(tmp_path):
    (tmp_path / "events.jsonl").write_text(
        '{"seq": 1, "kind": "probe_start"}\n'
        '{"seq": 2, "kind": "fit_end", "fit": 1, "history": {"loss": [' + "9" * 5000 + ']}}\n'
        '{"seq": 3, "kind": "epoch", "epoch": 0, "logs": {"loss": ' + "9" * 400 + '}}\n'
        '{"seq": 4, "kind": "fit_start", "fit": ' + "[" * 100000 + "]" * 100000 + '}\n')
    ev = evidence.read(tmp_path)
    assert len(ev.problems) >= 3 and ev.history() == {}


def test_a_symlinked_evidence_file_is_not_read(tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_text('{"seq": 1, "kind": "probe_start"}\n')
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "events.jsonl").symlink_to(target)
    assert evidence.read(folder).events == []
