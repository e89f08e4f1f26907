"""A leak verdict needs evidence: no fit reached → no-leaks is a skip worth 0 of its points, and the
code's augmenting validation generator is a warning ("seen in the code, not observed")."""

import json

from harness import checks, evidence
from harness.checks import leaks
from harness.sandbox import SandboxResult

CODE = ("from keras.preprocessing.image import ImageDataGenerator\n"
        "train_datagen = ImageDataGenerator(rescale=1./255, rotation_range=40)\n"
        "validation_generator = train_datagen.flow_from_directory('/root/x/validation')\n"
        "open('/root/Downloads/cats_and_dogs_small/test/x.jpg')\n")


def _context(tmp_path, assignments, events):
    folder = tmp_path / "evidence"
    folder.mkdir()
    lines = [{"seq": n, "kind": kind, **data} for n, (kind, data) in enumerate(events, 1)]
    (folder / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    entry = tmp_path / "dogs-vs-cats-small.py"
    entry.write_text(CODE)
    result = SandboxResult(exit_code=1, timed_out=False, memory_exceeded=False, wall_seconds=1.0,
                           peak_memory_mb=None, output_tail="", sandbox="bwrap")
    return checks.Context(assignment=assignments["dogs-vs-cats-small"], evidence=evidence.read(folder),
                          result=result, quick=True, entry=entry)


def test_crash_before_fit_is_a_skip_that_keeps_its_max_points(tmp_path, assignments):
    ctx = _context(tmp_path, assignments, [
        ("probe_start", {}),
        ("exception", {"during": "run", "type": "FileNotFoundError", "message": "No such file or directory",
                       "where": {"file": "dogs-vs-cats-small.py", "line": 4}})])
    outcome = leaks.no_leaks(ctx)
    assert outcome.check.status == "skip" and outcome.check.points == 0 and outcome.check.max_points == 10
    (hit,) = [f for f in outcome.findings if f.rule == "augmented-validation"]
    assert hit.severity == "warning" and hit.where == "dogs-vs-cats-small.py:3"
    assert hit.message.startswith("Seen in the code, not observed")


def test_the_static_warning_is_not_given_when_a_fit_was_observed(tmp_path, assignments):
    ctx = _context(tmp_path, assignments, [("probe_start", {}), ("fit_start", {"fit": 1})])
    outcome = leaks.no_leaks(ctx)
    assert outcome.check.status == "pass"
    assert not [f for f in outcome.findings if f.rule == "augmented-validation"]
