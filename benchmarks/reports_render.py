"""Time to render the HTML reports (`harness.webreport.write_run`) of a 500-record run folder, and the
whole of issue 9's rendering: reports + leaderboard + exports.

Writes 500 records (one per student, built from the unit tests' sample records with varied scores,
accuracies, timings and 20-epoch learning curves), each with its evaluation.json timings; every
`NOTEBOOK_EVERY`-th job also keeps an executed notebook (12 code cells with text and a 200×150 PNG
output) that `harness.notebook_page` renders. Then times, from the records on disk: the HTML reports (instructor +
student page per record, submission pages, index), a second `write_run` on the unchanged folder, the
leaderboard and the exports. Target (issue 9): reports + leaderboard + exports under 10 s. The CPU seconds of this process
are printed beside the wall time: on a machine shared with other work they say what the wall time
would be on an idle one.
No student code runs and no sandbox starts.
Usage: python benchmarks/reports_render.py [N_RECORDS]
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]  # this checkout, and the unit tests' sample records

TARGET_SECONDS = 10.0
NOTEBOOK_EVERY = 5
EPOCHS = 20


def _png() -> str:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (200, 150), (40, 120, 200)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def _notebook(evidence: Path, entry: str, png: str) -> None:
    import nbformat
    v4 = nbformat.v4
    cells = [v4.new_markdown_cell("# Assignment\nTrain a CNN.")]
    for i in range(12):
        cell = v4.new_code_cell(f"import numpy as np\nx = np.arange({i})\nprint(x.sum())\nmodel_{i} = None")
        cell.outputs = [v4.new_output("stream", name="stdout", text=f"{i * (i - 1) // 2}\n" * 5)]
        if i % 4 == 0:
            cell.outputs.append(v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}))
        cells.append(cell)
    nb = v4.new_notebook(cells=cells)
    (evidence / "code").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, evidence / "code" / entry)
    nbformat.write(nb, evidence / "executed.ipynb")
    (evidence / "run.json").write_text(json.dumps({"entry": entry}))


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
        update = {"student": f"student{i:03d}", "metrics": metrics, "score": round(rng.uniform(0, rec.max_score), 2)}
        if rec.history:
            loss = [1.0 / (e + 1) + rng.uniform(0, 0.05) for e in range(EPOCHS)]
            acc = [1 - v / 2 for v in loss]
            update["history"] = {"loss": loss, "accuracy": acc, "val_loss": [v * 1.1 for v in loss],
                                 "val_accuracy": [a * 0.98 for a in acc]}
        rec = rec.model_copy(update=update)
        timings = {**template.timings, "predict_seconds": rng.uniform(1, 5)} if template.timings else {}
        items.append(Entry(rec, timings))
    write_run(folder, items)
    png = _png()
    for i, item in enumerate(items):
        if i % NOTEBOOK_EVERY == 0 and item.record.status != "invalid-submission":
            evidence = folder / item.record.student / f"{item.record.assignment}.evidence"
            evidence.mkdir(parents=True, exist_ok=True)
            _notebook(evidence, f"{item.record.assignment}.ipynb", png)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    from harness import exports, leaderboard, spec, webreport
    assignments = spec.load_all(ROOT / "assignments")
    with tempfile.TemporaryDirectory(prefix="reports-bench-") as tmp:
        run_dir = Path(tmp)
        make_run(run_dir, n)
        start, cpu_start = time.perf_counter(), time.process_time()
        pages = webreport.write_run(run_dir, assignments, data_root=run_dir / "no-data")
        reports, cpu_reports = time.perf_counter(), time.process_time()
        again = webreport.write_run(run_dir, assignments, data_root=run_dir / "no-data")
        unchanged, cpu_unchanged = time.perf_counter(), time.process_time()
        run = leaderboard.load_run(run_dir)
        files = leaderboard.write(run_dir, run.entries) + leaderboard.write(run_dir, run.entries, public=True)
        files += exports.write(run_dir, run.entries, ["gradescope", "junit", "github"])
        done, cpu_done = time.perf_counter(), time.process_time()
    assert len(run.entries) == n, f"loaded {len(run.entries)} of {n} records"
    total = (reports - start) + (done - unchanged)
    cpu = (cpu_reports - cpu_start) + (cpu_done - cpu_unchanged)
    print(f"{n} records ({n // NOTEBOOK_EVERY} with an executed notebook) -> {len(pages)} pages, {len(files)} other files")
    print(f"  HTML reports, first write_run:       {reports - start:6.2f} s  (CPU {cpu_reports - cpu_start:.2f} s)")
    print(f"  HTML reports, unchanged folder again: {unchanged - reports:6.2f} s  (CPU {cpu_unchanged - cpu_reports:.2f} s, "
          f"{len(again)} files)")
    print(f"  leaderboard + exports:                {done - unchanged:6.2f} s  (CPU {cpu_done - cpu_unchanged:.2f} s)")
    print(f"total (first reports + leaderboard + exports) {total:.2f} s (CPU {cpu:.2f} s); target < {TARGET_SECONDS:g} s; "
          f"ratio {total / TARGET_SECONDS:.3f} (CPU {cpu / TARGET_SECONDS:.3f}); load average "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
