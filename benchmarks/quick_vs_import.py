"""Wall time of `grade --quick` on one reference against `python -c "import tensorflow"`.

Target (issue: architecture): ratio <= 1.5. Prints the median of several runs of each, measured
alternately on the same machine. Usage: python benchmarks/quick_vs_import.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference", default="reference/fashion-mnist-cnn.ipynb")
    args = parser.parse_args()
    grade_times, import_times = [], []
    with tempfile.TemporaryDirectory() as out:
        grade = [str(BIN / "grade"), "--quick", "--force", args.reference, "--out", out]
        timed(grade)  # warm the stand-in data cache and the page cache once
        for _ in range(args.runs):
            grade_times.append(timed(grade))
            import_times.append(timed([sys.executable, "-c", "import tensorflow"]))
    g, i = statistics.median(grade_times), statistics.median(import_times)
    print(f"grade --quick {args.reference}: median {g:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in grade_times)})")
    print(f"python -c 'import tensorflow':  median {i:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in import_times)})")
    print(f"ratio: {g / i:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
