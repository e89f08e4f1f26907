"""Wall time of `grade --quick` on one reference against `python -c "import tensorflow"`.

Target (issue 10): ratio <= 1.3. Prints the median of several runs of each, measured alternately on
the same machine, with the load average around them (the machine may be shared: compare ratios, not
seconds). `grade` is run as its console script runs it, with this checkout's `harness` package.
`--baseline DIR` also times another checkout (e.g. a worktree of main) in the same rotation, so
that before and after are measured under the same load.
Each run's own events (the probe's timestamps, kept with the record) split the time of `grade --quick` into the
TensorFlow import inside the sandbox, the submission's own cells up to its first fit (its data loading and model
building, and the probe's evidence at `fit`) and the rest (harness start, sandbox, trusted model reading, judging,
reports); the ratio without the submission's own cells is what the harness adds to a bare import.
Usage: python benchmarks/quick_vs_import.py [--runs N] [--reference FILE] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what the `grade` console script runs (an older checkout given as --baseline: its grade_main)
GRADE = ("import sys\nfrom harness import cli\n"
         "cli.grade_script() if hasattr(cli, 'grade_script') else sys.exit(cli.grade_main())")


def phases(out: str) -> tuple[float, float] | None:
    """(TensorFlow import, the submission's cells up to the first fit) in seconds, from the kept events."""
    found = sorted(Path(out).rglob("events.jsonl"))
    if not found:
        return None
    times = {}
    for line in found[0].read_text().splitlines():
        event = json.loads(line)
        times.setdefault(event.get("kind"), event.get("time"))
    if not {"probe_start", "runtime", "quick_stop"} <= times.keys():
        return None
    return times["runtime"] - times["probe_start"], times["quick_stop"] - times["runtime"]


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference", default="reference/fashion-mnist-cnn.ipynb")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout, timed in the same rotation")
    args = parser.parse_args()
    trees = {"this checkout": ROOT}
    if args.baseline:
        trees["baseline " + str(args.baseline)] = args.baseline.resolve()
    times: dict[str, list[float]] = {name: [] for name in trees}
    split: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    imports: list[float] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as out:
        def grade(tree: Path) -> list[str]:
            return [sys.executable, "-c", GRADE, "--quick", "--force", str(ROOT / args.reference), "--out",
                    os.path.join(out, tree.name), "--assignments", str(ROOT / "assignments")]

        for tree in trees.values():
            timed(grade(tree), tree)  # warm the stand-in data cache and the page cache once
        for _ in range(args.runs):
            for name, tree in trees.items():
                times[name].append(timed(grade(tree), tree))
                found = phases(os.path.join(out, tree.name))
                if found:
                    split[name].append(found)
            imports.append(timed([sys.executable, "-c", "import tensorflow"], ROOT))
            loads.append(os.getloadavg()[0])
    i = statistics.median(imports)
    load = f"load average {min(loads):.1f}-{max(loads):.1f} over the runs"
    print(f"python -c 'import tensorflow': median {i:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in imports)})")
    for name, found in times.items():
        g = statistics.median(found)
        ratios = sorted(t / m for t, m in zip(found, imports))
        print(f"grade --quick {args.reference} [{name}]: median {g:.2f} s  "
              f"(runs: {', '.join(f'{t:.2f}' for t in found)})")
        print(f"  ratio to the import: {g / i:.2f} (median of per-rotation ratios {statistics.median(ratios):.2f}); "
              f"target <= 1.3")
        if split[name]:
            tf_import = statistics.median(p[0] for p in split[name])
            cells = statistics.median(p[1] for p in split[name])
            print(f"  of which: TensorFlow import in the sandbox {tf_import:.2f} s, the submission's cells up to its "
                  f"first fit {cells:.2f} s (from the end of TensorFlow's import: Keras's own import is in it), "
                  f"the rest {g - tf_import - cells:.2f} s (harness start, sandbox, model reading, judging, reports)")
            print(f"  ratio to the import without the submission's own cells: {(g - cells) / i:.2f}")
    print(load)


if __name__ == "__main__":
    main()
