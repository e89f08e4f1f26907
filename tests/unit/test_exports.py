"""Exports: Gradescope results.json (golden, validated against Gradescope's documented fields),
JUnit XML (parsed with junitparser), the GitHub job summary (golden, within 1 MiB), and that no
private holdout detail reaches what students see. UPDATE_GOLDEN=1 rewrites the golden files."""

import json

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from harness import exports
from harness.cli import harness_main
from harness.leaderboard import Entry
from sample_run import SECRET_IDS, entries, full_marks, write_run
from test_leaderboard import golden


def by_job():
    return {(e.record.student, e.record.assignment): e for e in entries()}


# ---- Gradescope

@pytest.mark.parametrize("job", [("alice", "mnist-cnn"), ("bob", "mnist-cnn"), ("carol", "mnist-cnn"),
                                 ("frank", "unknown"), ("alice", "ox"), ("grace", "ox")])
def test_gradescope_results_match_golden_files(job):
    results = exports.gradescope_results(by_job()[job])
    golden(f"gradescope-{job[0]}-{job[1]}.json", json.dumps(results, indent=2) + "\n")


def test_every_results_json_validates_against_gradescopes_documented_format():
    for entry in entries():
        exports.validate_gradescope(exports.gradescope_results(entry))


def test_the_schema_rejects_what_gradescope_does_not_document():
    good = exports.gradescope_results(by_job()[("bob", "mnist-cnn")])
    for bad in ({**good, "grade": 1},                                               # an undocumented field
                {**good, "visibility": "students"},                                 # not a visibility
                {**good, "tests": [{**good["tests"][0], "status": "skipped"}]},     # passed | failed only
                {**good, "leaderboard": [{"name": "Accuracy"}]},                    # a figure without value
                {k: v for k, v in good.items() if k not in ("score", "tests")}):    # no score anywhere
        with pytest.raises(jsonschema.ValidationError):
            exports.validate_gradescope(bad)


def test_gradescope_tests_follow_the_checks():
    results = exports.gradescope_results(by_job()[("bob", "mnist-cnn")])
    assert results["score"] == 81.67 and results["execution_time"] == 249  # 240.5 s run + 8 s evaluation
    assert [(t["tags"][0], t["score"], t["max_score"], t.get("status")) for t in results["tests"]] == [
        ("completes", 10, 10, "passed"), ("architecture", 35, 40, "failed"),
        ("holdout-accuracy", 26.67, 40, "failed"), ("no-leaks", 10, 10, "passed")]
    skipped = exports.gradescope_results(by_job()[("alice", "ox")])["tests"][0]
    assert "status" not in skipped and skipped["output"].startswith("Skipped: ")


def test_the_private_score_waits_for_publication_and_the_leaderboard_is_public_only():
    results = exports.gradescope_results(by_job()[("alice", "mnist-cnn")])
    visibility = {t["tags"][0]: t["visibility"] for t in results["tests"]}
    assert visibility == {"completes": "visible", "architecture": "visible",
                          "holdout-accuracy": "after_published", "no-leaks": "visible"}
    board = {item["name"]: item["value"] for item in results["leaderboard"]}
    assert board == {"Public accuracy": 0.9898, "Parameters": 3156098, "FLOPs per image": 10872580,
                     "Inference images/s": 4000.0}
    assert 0.9912 not in board.values(), "the private accuracy is never on Gradescope's leaderboard"


def test_no_private_holdout_detail_reaches_any_export():
    items = entries()
    texts = [json.dumps(exports.gradescope_results(e)) for e in items]
    texts += [exports.junit_xml([e.record for e in items]), exports.github_summary(items)]
    for text in texts:
        assert not any(secret in text for secret in SECRET_IDS), "misclassified private images are instructor-only"
        assert "4321" not in text and "0.9876" not in text, "no confusion matrix or per-class accuracy"


# ---- JUnit

def test_junit_parses_with_one_suite_per_job_and_one_case_per_check(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(exports.junit_xml([e.record for e in entries()]))
    xml = JUnitXml.fromfile(str(path))
    suites = {suite.name: suite for suite in xml}
    assert sorted(suites) == ["alice/mnist-cnn", "alice/ox", "bob/mnist-cnn", "carol/mnist-cnn",
                              "dave/mnist-cnn", "frank/unknown", "grace/ox"]
    cases = {case.name: case for case in suites["bob/mnist-cnn"]}
    assert list(cases) == ["completes", "architecture", "holdout-accuracy", "no-leaks"]
    assert cases["completes"].is_passed
    (failure,) = cases["architecture"].result
    assert isinstance(failure, Failure) and failure.message.startswith("The model differs from the reference: extra")
    carol = {case.name: case.result for case in suites["carol/mnist-cnn"]}
    assert isinstance(carol["no-leaks"][0], Error) and "\x1b" not in carol["no-leaks"][0].message
    ox = {case.name: case.result for case in suites["alice/ox"]}
    assert isinstance(ox["completes"][0], Skipped)
    (frank,) = list(suites["frank/unknown"])
    assert isinstance(frank.result[0], Failure) and "named after no assignment" in frank.result[0].message
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (25, 7, 1, 2)
    assert suites["bob/mnist-cnn"].tests == 4 and suites["bob/mnist-cnn"].failures == 2


def test_junit_matches_golden_file():
    golden("junit.xml", exports.junit_xml([e.record for e in entries()]))


# ---- GitHub job summary

def test_github_summary_matches_golden_file():
    golden("github-summary.md", exports.github_summary(entries()))


def test_github_summary_stays_within_its_limit_and_says_what_it_left_out():
    many = [Entry(full_marks(f"student-{i:05d}-" + "x" * 60, 0.99, 0.99)) for i in range(10000)]
    text = exports.github_summary(many)
    assert len(text.encode()) <= exports.GITHUB_SUMMARY_LIMIT == 1024 * 1024
    assert "more job(s) not shown" in text
    small = exports.github_summary(entries(), limit=1500)
    assert len(small.encode()) <= 1500 and "not shown" in small and small.startswith("# Grading results")
    tiny = exports.github_summary(entries(), limit=300)
    assert len(tiny.encode()) <= 300 and tiny.startswith("# Grading results") and tiny.endswith("\n")


# ---- CLI

def test_cli_writes_every_export_into_the_run_folder(tmp_path, monkeypatch):
    run = write_run(tmp_path / "reports")
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert harness_main(["export", str(run), "--to", "gradescope", "--to", "junit", "--to", "github"]) == 0
    results = sorted((run / "exports" / "gradescope").glob("*/*/results.json"))
    assert len(results) == 7
    for path in results:
        exports.validate_gradescope(json.loads(path.read_text()))
    assert JUnitXml.fromfile(str(run / "exports" / "junit.xml")).tests == 25
    assert summary.read_text().startswith("earlier step\n# Grading results")
    assert (run / "exports" / "github-summary.md").read_text() == summary.read_text()[len("earlier step\n"):]
    assert not [p for p in run.glob("*/*.json") if p.parent.name in ("exports", "leaderboard")], \
        "nothing is written where `grade`, `rescore` and the loaders look for records"
    assert harness_main(["export", str(run)]) == 4, "--to is required"


def test_gradescope_output_does_not_reveal_the_private_check_before_publication():
    results = exports.gradescope_results(by_job()[("bob", "mnist-cnn")])
    assert "holdout" not in results["output"] and "81.67" not in results["output"]
    assert "Not passed: architecture." in results["output"]
    shown = exports.gradescope_results(by_job()[("bob", "mnist-cnn")], private_visibility="visible")
    assert "holdout accuracy is below the threshold" in shown["output"]
