"""A class run at scale, in one run: N `--quick` jobs (the mnist-cnn reference, one per student) on 1 and on 2
workers of the local pool (target: speedup ≥ 1.7× on 2 cores), the unchanged re-run (target: < 5 % of the first
run), the Ray executor on a local cluster of the same size against the local pool (overhead per job), and
`grade --quick` on one reference against `python -c "import tensorflow"` (benchmarks/quick_vs_import.py, target ≤ 1.3×).

Every run is the real `grade` (in this process, so imports are paid once), real bubblewrap, real TensorFlow.
Usage: python benchmarks/class_scale.py [--count 40] [--no-ray] [--import-runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.cli import grade_main  # noqa: E402


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    code = grade_main(argv)
    elapsed = time.perf_counter() - start
    if code not in (0, 1):
        raise SystemExit(f"grade exited {code}: {' '.join(argv)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--import-runs", type=int, default=3, help="runs of the quick-vs-import figure (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="class-scale-") as tmp:
        tmp = Path(tmp)
        cls = tmp / "class"
        for i in range(args.count):
            (cls / f"s{i:03d}").mkdir(parents=True)
            shutil.copyfile(ROOT / "reference" / "mnist-cnn.py", cls / f"s{i:03d}" / "mnist-cnn.py")
        common = [str(cls), "--quick", "--no-html", "--memory", "4096", "--assignments", str(ROOT / "assignments")]
        n = args.count
        say = print
        say(f"{n} `grade --quick` jobs (mnist-cnn reference, one per student), bubblewrap, {os.cpu_count()} cores")
        say(f"load average at the start {os.getloadavg()[0]:.1f} (other work on the machine makes the figures "
            f"noisy: compare ratios)", flush=True)
        devnull = open(os.devnull, "w")
        real_stdout, real_stderr = sys.stdout, sys.stderr

        def quiet(argv: list[str]) -> float:  # the per-job lines and tables go nowhere; figures are printed
            sys.stdout = sys.stderr = devnull
            try:
                return timed(argv)
            finally:
                sys.stdout, sys.stderr = real_stdout, real_stderr

        one = quiet([*common, "--jobs", "1", "--out", str(tmp / "one")])
        say(f"local pool, 1 worker:       {one:7.1f} s  ({one / n:.2f} s per job)", flush=True)
        two = quiet([*common, "--jobs", "2", "--out", str(tmp / "two")])
        say(f"local pool, 2 workers:      {two:7.1f} s  ({two / n:.2f} s per job)   speedup {one / two:.2f}x "
            f"(target >= 1.7x)", flush=True)
        again = quiet([*common, "--jobs", "2", "--out", str(tmp / "two")])
        say(f"unchanged re-run:           {again:7.2f} s  = {100 * again / two:.1f} % of the first run "
            f"(target < 5 %)", flush=True)
        if not args.no_ray:
            ray_overhead(quiet, common, tmp, n, two)
    print(f"load average at the end of the class runs {os.getloadavg()[0]:.1f}", flush=True)
    if args.import_runs > 0:
        import subprocess
        print(f"grade --quick against a bare import (benchmarks/quick_vs_import.py --runs {args.import_runs}):",
              flush=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quick_vs_import.py"), "--runs",
                        str(args.import_runs)], check=False)


def ray_overhead(quiet, common: list[str], tmp: Path, n: int, two: float) -> None:
    say = print
    import ray
    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    startup = time.perf_counter() - began
    try:
        ray_seconds = quiet([*common, "--executor", "ray", "--out", str(tmp / "ray")])
    finally:
        ray.shutdown()
    say(f"Ray, local cluster of 2 CPUs: {ray_seconds:5.1f} s  ({ray_seconds / n:.2f} s per job); "
        f"cluster start {startup:.1f} s, not counted")
    say(f"Ray overhead against the local pool (2 workers each): {(ray_seconds - two) / n:+.2f} s per job "
        f"({100 * (ray_seconds - two) / two:+.1f} %)", flush=True)


if __name__ == "__main__":
    main()
