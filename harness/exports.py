"""Exports of a run for gradebooks and CI: Gradescope `results.json`, JUnit XML and a GitHub Actions
job summary. Pure functions of records (and the trusted evaluation's timings); nothing runs.

What a student may see: scores, check messages, findings and the public leaderboard figures.
Never exported: per-image details of the private holdout (`metrics.misclassified`), its confusion
matrix and per-class accuracy. In Gradescope, the holdout-accuracy test (the private score) is shown
only when grades are published (`PRIVATE_VISIBILITY`), as Kaggle reveals its private leaderboard at
the end; the other tests are visible at once.

Gradescope's format: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (written down
as a JSON Schema in `harness/schema/gradescope-results.schema.json`).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path


from harness.leaderboard import Entry, flops_per_image, inference
from harness.record import Record, SchemaCheck, write_atomic
from harness.reports import PRIVATE_RULES
from harness.reports import MARK, STATUS_WORDS

GRADESCOPE_SCHEMA_PATH = Path(__file__).parent / "schema" / "gradescope-results.schema.json"
EXPORTS_DIR = "exports"
PRIVATE_CHECKS = {"holdout-accuracy"}
PRIVATE_VISIBILITY = "after_published"
GITHUB_SUMMARY_LIMIT = 1024 * 1024  # GitHub Actions: 1 MiB per step summary
CHECK_TITLES = {"completes": "The submission runs to the end", "architecture": "Model architecture",
                "holdout-accuracy": "Accuracy on held-out data", "no-leaks": "No data leaks"}


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colour codes a student's output may carry


def _title(check_id: str) -> str:
    return CHECK_TITLES.get(check_id, check_id)


def _findings_text(rec: Record, private: bool = False) -> list[str]:
    """Findings as lines; without those that hold the private result (e.g. `accuracy-review`) unless `private`."""
    return [f"- {f.rule} [{f.severity}]{f' ({f.where})' if f.where else ''}: {f.message}" for f in rec.findings
            if private or f.rule not in PRIVATE_RULES]


# ---- Gradescope

def gradescope_results(entry: Entry, private_visibility: str = PRIVATE_VISIBILITY) -> dict:
    """Gradescope's results.json for one job: one test per check, the public leaderboard figures."""
    rec = entry.record
    tests = []
    for number, check in enumerate(rec.checks, 1):
        test = {"name": f"{_title(check.id)} ({check.id})", "number": str(number),
                "score": check.points, "max_score": check.max_points,
                "output": _ANSI.sub("", check.message if check.status != "skip" else f"Skipped: {check.message}"),
                "output_format": "text", "name_format": "text", "tags": [check.id],
                "visibility": private_visibility if check.id in PRIVATE_CHECKS else "visible"}
        if check.status in ("pass", "fail", "error"):
            test["status"] = "passed" if check.status == "pass" else "failed"
        tests.append(test)
    output = [_visible_summary(rec, private_visibility)]
    findings = _findings_text(rec, private=private_visibility == "visible")
    if findings:
        output += ["", "Findings:", *findings]
    if rec.metrics.public_accuracy is not None:
        output += ["", f"Accuracy on the public part of the test split: {rec.metrics.public_accuracy:.4f} "
                       f"(shown on the leaderboard; grades use a private part)."]
    time = rec.run.wall_seconds + (rec.run.evaluation_seconds or 0.0)
    return {
        "score": rec.score,
        "execution_time": math.ceil(time),
        "output": _ANSI.sub("", "\n".join(output)),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"student": rec.student, "assignment": rec.assignment, "status": rec.status,
                       "max_score": rec.max_score, "harness_version": rec.harness_version},
        "tests": tests,
        "leaderboard": gradescope_leaderboard(entry),
    }


def _visible_summary(rec: Record, private_visibility: str) -> str:
    """The record's summary, except that a graded job's summary (which names every failed check) is
    rebuilt without the private checks while their tests are not visible yet; the total score is
    left to Gradescope, which hides it while a test is hidden."""
    private = [c for c in rec.checks if c.id in PRIVATE_CHECKS]
    if rec.status != "graded" or not private or private_visibility == "visible":
        return rec.summary
    failed = [c.id for c in rec.checks if c.status in ("fail", "error") and c.id not in PRIVATE_CHECKS]
    return ("Graded." + (f" Not passed: {', '.join(failed)}." if failed else "")
            + " The accuracy on held-out data is shown when grades are published.")


def gradescope_leaderboard(entry: Entry) -> list[dict]:
    """The public figures only (never the private accuracy); a figure that was not measured is left out."""
    rec = entry.record
    rate, _ = inference(entry.timings)
    flops = flops_per_image(rec.model.layers) if rec.model and rec.model.layers else None
    figures = [("Public accuracy", rec.metrics.public_accuracy, "desc"),
               ("Parameters", rec.model.total_params if rec.model else None, "asc"),
               ("FLOPs per image", flops, "asc"),
               ("Inference images/s", round(rate, 1) if rate else None, "desc")]
    return [{"name": name, "value": value, "order": order} for name, value, order in figures if value is not None]


_GRADESCOPE_CHECK = SchemaCheck(GRADESCOPE_SCHEMA_PATH)


def validate_gradescope(results: dict) -> None:
    """Raises jsonschema.ValidationError when `results` is not in Gradescope's documented format."""
    _GRADESCOPE_CHECK(results)


# ---- JUnit XML

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Terminal colour codes and characters XML 1.0 cannot hold (from a student's output) are dropped."""
    return _XML_INVALID.sub("", _ANSI.sub("", text))


def _suite(rec: Record) -> ET.Element:
    name = f"{rec.student}/{rec.assignment}"
    suite = ET.Element("testsuite", name=_xml(name), timestamp=rec.created_at, time=f"{rec.run.wall_seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key, value in (("student", rec.student), ("assignment", rec.assignment), ("status", rec.status),
                       ("score", f"{rec.score:g}"), ("max_score", f"{rec.max_score:g}")):
        ET.SubElement(props, "property", name=key, value=_xml(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases = [(c.id, c.status, c.message, f"{c.points:g} / {c.max_points:g} points") for c in rec.checks]
    if not cases:  # nothing was checked (an invalid submission): one failing case says why
        cases = [("grading", "fail", rec.summary, STATUS_WORDS[rec.status])]
    for check_id, status, message, points in cases:
        case = ET.SubElement(suite, "testcase", name=_xml(check_id), classname=_xml(name.replace("/", ".")), time="0")
        counts["tests"] += 1
        if status == "fail":
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=_xml(message), type="fail").text = _xml(f"{message} ({points})")
        elif status == "error":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=_xml(message), type="error").text = _xml(message)
        elif status == "skip":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=_xml(message))
    out = [rec.summary, *_findings_text(rec)]
    ET.SubElement(suite, "system-out").text = _xml("\n".join(out))
    for key, value in counts.items():
        suite.set(key, str(value))
    return suite


def junit_xml(records: list[Record]) -> str:
    """One <testsuite> per student × assignment, one <testcase> per check; fail → <failure>,
    error → <error>, skip → <skipped>, each with the check's message."""
    root = ET.Element("testsuites", name="cnn-grading-harness")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    time = 0.0
    for rec in sorted(records, key=lambda r: (r.student, r.assignment)):
        suite = _suite(rec)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key))
        time += rec.run.wall_seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- GitHub Actions job summary

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _md(text: str) -> str:
    """One table cell or line of Markdown: no line breaks, pipes escaped, no raw HTML, no terminal escapes."""
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\n", " ")))
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def github_summary(entries: list[Entry], limit: int = GITHUB_SUMMARY_LIMIT) -> str:
    """Markdown for `$GITHUB_STEP_SUMMARY`, at most `limit` bytes (UTF-8): totals, one table row per
    job, then the failed checks; rows or details that do not fit are counted, not cut mid-line."""
    records = sorted((e.record for e in entries), key=lambda r: (r.student, r.assignment))
    full = sum(r.status == "graded" and r.score >= r.max_score for r in records)
    graded = sum(r.status == "graded" for r in records)
    head = ["# Grading results", "",
            f"{len(records)} job(s): {full} with full marks, {graded - full} graded below full marks, "
            f"{len(records) - graded} not gradable.", "",
            "| student | assignment | status | score | private accuracy | public accuracy | failed checks |",
            "|---|---|---|---:|---:|---:|---|"]
    rows = []
    for r in records:
        failed = ", ".join(c.id for c in r.checks if c.status in ("fail", "error"))
        private = "" if r.metrics.holdout_accuracy is None else f"{r.metrics.holdout_accuracy:.4f}"
        public = "" if r.metrics.public_accuracy is None else f"{r.metrics.public_accuracy:.4f}"
        rows.append(f"| {_md(r.student)} | {_md(r.assignment)} | {STATUS_WORDS[r.status]} | "
                    f"{r.score:g} / {r.max_score:g} | {private} | {public} | {_md(failed)} |")
    details = []
    for r in records:
        bad = [c for c in r.checks if c.status in ("fail", "error")]
        if not bad and r.status == "graded":
            continue
        lines = [f"### {_md(r.student)} / {_md(r.assignment)}: {r.score:g} / {r.max_score:g}", "", _md(r.summary)]
        lines += [""] + [f"- **{c.id}** {MARK[c.status]}: {_md(c.message)}" for c in bad] if bad else []
        lines += [f"- **{f.rule}** [{f.severity}]{f' ({_md(f.where)})' if f.where else ''}: {_md(f.message)}"
                  for f in r.findings if f.severity == "error"]
        details.append("\n".join(lines) + "\n")

    reserve = 400  # room for the notes on what was left out
    used = len("\n".join(head).encode()) + 1
    kept_rows, kept_details = [], []
    for row in rows:
        size = len(row.encode()) + 1
        if used + size > limit - reserve:
            break
        kept_rows.append(row)
        used += size
    body = head + kept_rows
    if len(kept_rows) < len(rows):
        body.append(f"\n{len(rows) - len(kept_rows)} more job(s) not shown: GitHub limits a step summary to "
                    f"1 MiB. The JUnit report and the records have every job.")
    used += 2
    for block in details if len(kept_rows) == len(rows) else []:
        size = len(block.encode()) + 1
        if used + size > limit - reserve:
            break
        kept_details.append(block)
        used += size
    if kept_details or details:
        body += ["", "## Failed checks", ""]
        body += kept_details
        if len(kept_details) < len(details):
            body.append(f"{len(details) - len(kept_details)} more job(s) with failed checks not shown "
                        f"(GitHub's 1 MiB limit).")
    text = "\n".join(body) + "\n"
    data = text.encode()
    if len(data) > limit:  # only with a limit smaller than the notes themselves: cut at a line end
        text = data[:limit].decode("utf-8", "ignore").rpartition("\n")[0] + "\n"
    return text


# ---- writing into a run folder

def write(run_dir: Path, entries: list[Entry], targets: list[str], step_summary: Path | None = None) -> list[Path]:
    """Writes the chosen exports under `RUN_DIR/exports/`:
    `gradescope/<student>/<assignment>/results.json` (validated), `junit.xml`, `github-summary.md`
    (also appended to `step_summary`, GitHub's `$GITHUB_STEP_SUMMARY`, when given)."""
    folder = run_dir / EXPORTS_DIR
    written = []
    if "gradescope" in targets:
        for entry in entries:
            results = gradescope_results(entry)
            validate_gradescope(results)
            path = folder / "gradescope" / entry.record.student / entry.record.assignment / "results.json"
            write_atomic(path, json.dumps(results, indent=2) + "\n", durable=False)
            written.append(path)
    if "junit" in targets:
        path = folder / "junit.xml"
        write_atomic(path, junit_xml([e.record for e in entries]), durable=False)
        written.append(path)
    if "github" in targets:
        path = folder / "github-summary.md"
        text = github_summary(entries)
        write_atomic(path, text, durable=False)
        written.append(path)
        if step_summary is not None:
            with open(step_summary, "a", encoding="utf-8") as out:
                out.write(text)
            written.append(step_summary)
    return written
