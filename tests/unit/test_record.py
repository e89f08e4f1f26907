import json

import jsonschema
import pytest

from harness import record
from harness.record import Check, Metrics, Record, RunInfo, SubmissionInfo


def sample(**changes) -> Record:
    base = dict(harness_version="0", created_at="2026-01-01T00:00:00+00:00", student="alice",
                assignment="mnist-cnn", status="graded", score=40, max_score=50, summary="Graded.",
                checks=[Check(id="architecture", status="pass", points=40, max_points=40, message="ok")],
                findings=[], model=None, metrics=Metrics(), history={"loss": [1.0, 0.5]},
                run=RunInfo(sandbox="bwrap", runtime="keras3", mode="quick", wall_seconds=1.0,
                            peak_memory_mb=None, exit_code=0),
                submission=SubmissionInfo(entry="mnist-cnn.py", files={"mnist-cnn.py": "a" * 64}))
    base.update(changes)
    return Record(**base)


def test_shipped_schema_is_up_to_date():
    assert json.loads(record.SCHEMA_PATH.read_text()) == record.json_schema(), "run `harness schema`"


def test_a_record_written_before_runtime_reasons_still_loads(tmp_path):
    """Records from before `run.runtime_reason` (schema_version 1 all along: the field is optional) load and
    validate, so `harness rescore` and the reports still read them."""
    data = sample().model_dump(mode="json")
    del data["run"]["runtime_reason"]
    path = tmp_path / "alice" / "mnist-cnn.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    assert record.load(path).run.runtime_reason is None


def test_round_trip(tmp_path):
    path = tmp_path / "alice" / "mnist-cnn.json"
    record.save(sample(), path)
    assert record.load(path) == sample()
    assert not list(path.parent.glob(".*tmp")), "no temporary file left behind"


def test_schema_rejects_unknown_status_and_extra_fields():
    data = sample().model_dump(mode="json")
    record.validate(data)
    with pytest.raises(jsonschema.ValidationError):
        record.validate({**data, "status": "passed"})
    with pytest.raises(jsonschema.ValidationError):
        record.validate({**data, "surprise": 1})
    with pytest.raises(jsonschema.ValidationError):
        record.validate({**data, "schema_version": 2})


def test_failed_validation_leaves_old_record_intact(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    record.save(sample(), path)
    before = path.read_text()
    bad = sample().model_copy(update={"status": "nonsense"})  # model_copy skips validation
    with pytest.raises(jsonschema.ValidationError):
        record.save(bad, path)
    assert path.read_text() == before


def test_record_is_frozen():
    with pytest.raises(Exception):
        sample().score = 50


def test_load_rejects_what_the_schema_rejects_and_shares_nothing(tmp_path):
    path = tmp_path / "alice" / "mnist-cnn.json"
    record.save(sample(), path)
    first, again = record.load(path), record.load(path)  # the second comes from the in-process memo
    assert first == again == sample()
    again.history.setdefault("loss", []).append(9.0)
    assert record.load(path) == sample(), "a caller's change to a loaded record must not reach the next load"
    data = json.loads(path.read_text())
    for bad in ({**data, "status": "passed"}, {**data, "surprise": 1}, {**data, "score": "50"}):
        path.write_text(json.dumps(bad))
        with pytest.raises(jsonschema.ValidationError):
            record.load(path)


def test_the_compiled_schema_check_gives_jsonschemas_verdict():
    check = record.SchemaCheck(record.SCHEMA_PATH, warm=0)  # compiled from the first document on
    data = sample().model_dump(mode="json")
    check(data)
    assert check._fast, "the record schema compiles"
    for bad in ({**data, "status": "passed"}, {**data, "surprise": 1}, {**data, "score": "50"},
                {**data, "checks": [{"id": "x"}]}, {**data, "schema_version": 2}):
        with pytest.raises(jsonschema.ValidationError):
            check(bad)
