"""Time to render the leaderboard and every export of a 500-record run folder.

Writes 500 records (100 students × 5 jobs, built from the unit tests' sample records with varied
scores, accuracies and timings) and their evaluation.json timings into a temporary run folder, then
times, from the records on disk: loading them (validated), the leaderboard (CSV, Markdown, HTML;
full and public views), and the exports (500 Gradescope results.json, validated; JUnit XML; GitHub
job summary). Target (issue 9): under 10 s. No student code runs and no sandbox starts.
Usage: python benchmarks/exports_render.py [N_RECORDS]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]  # this checkout, and the unit tests' sample records

TARGET_SECONDS = 10.0


def make_run(folder: Path, n: int) -> None:
    from harness.leaderboard import Entry
    from sample_run import entries, write_run

    templates = [e for e in entries() if e.record.status != "invalid-submission"]
    rng = random.Random(0)
    items = []
    for i in range(n):
        template = templates[i % len(templates)]
        rec = template.record
        metrics = rec.metrics
        if metrics.holdout_accuracy is not None:
            metrics = metrics.model_copy(update={"holdout_accuracy": round(rng.uniform(0.9, 0.995), 4),
                                                 "public_accuracy": round(rng.uniform(0.9, 0.995), 4)})
        rec = rec.model_copy(update={"student": f"student{i // 5:03d}", "assignment": f"{rec.assignment}-{i % 5}",
                                     "metrics": metrics, "score": round(rng.uniform(0, rec.max_score), 2)})
        timings = {**template.timings, "predict_seconds": rng.uniform(1, 5)} if template.timings else {}
        items.append(Entry(rec, timings))
    write_run(folder, items)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    from harness import exports, leaderboard
    with tempfile.TemporaryDirectory(prefix="exports-bench-") as tmp:
        run_dir = Path(tmp)
        make_run(run_dir, n)
        start = time.perf_counter()
        run = leaderboard.load_run(run_dir)
        loaded = time.perf_counter()
        files = leaderboard.write(run_dir, run.entries)
        files += leaderboard.write(run_dir, run.entries, public=True)
        boards = time.perf_counter()
        files += exports.write(run_dir, run.entries, ["gradescope", "junit", "github"])
        done = time.perf_counter()
    assert len(run.entries) == n, f"loaded {len(run.entries)} of {n} records"
    total = done - start
    print(f"{n} records -> {len(files)} files")
    print(f"  load and validate records: {loaded - start:6.2f} s")
    print(f"  leaderboard (full + public, CSV/Markdown/HTML): {boards - loaded:6.2f} s")
    print(f"  exports (Gradescope x{n}, JUnit, GitHub summary): {done - boards:6.2f} s")
    print(f"total {total:.2f} s; target < {TARGET_SECONDS:g} s; ratio {total / TARGET_SECONDS:.3f}")


if __name__ == "__main__":
    main()
