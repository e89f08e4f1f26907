"""Per-job overhead of the docker sandbox against bubblewrap.

Prints, in one run: the median wall time of `grade --quick` on the same submission in each sandbox
(runs alternate, so both see the same machine), their difference (the per-job overhead of docker in a
real grade: a quick job starts two sandboxes, the run and the model reader, which overlap), and the
median time of an empty job (`true`) in each sandbox, which is the sandbox's own start-and-stop cost.
Usage: python benchmarks/docker_vs_bwrap.py [--runs N] [--submission PATH]
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
sys.path.insert(0, str(ROOT))


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def empty_job(name: str) -> float:
    """Wall time of one job that runs `true` in the sandbox `name`, as supervise measures it end to end."""
    from harness.sandbox import Limits, SandboxRequest, get
    sandbox = get(name)
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)
        (job / "stage").mkdir()
        (job / "evidence").mkdir()
        request = SandboxRequest(argv=["/bin/true"], job_dir=job, stage=job / "stage", timeout=60,
                                 env={"HARNESS_WORKSPACE": sandbox.layout(job).workspace, "PATH": "/usr/bin:/bin"},
                                 limits=Limits(), log=job / "output.log")
        start = time.perf_counter()
        result = sandbox.run(request)
        took = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"an empty job failed in {name}: {result.output_tail}")
    return took


def line(label: str, times: list[float]) -> str:
    return f"{label:<34} median {statistics.median(times):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--empty-runs", type=int, default=10)
    parser.add_argument("--submission", default="submissions/alice/mnist-cnn.py")
    args = parser.parse_args()
    names = ("bwrap", "docker")
    empty: dict[str, list[float]] = {n: [] for n in names}
    empty_job("docker")  # the first container after the engine started pays for the page cache
    for _ in range(args.empty_runs):
        for name in names:
            empty[name].append(empty_job(name))
    grades: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as out:
        def grade(name: str) -> float:
            return timed([sys.executable, "-m", "harness.cli", "--quick", "--force", "--no-html", "--sandbox", name,
                          "--out", f"{out}/{name}", args.submission])
        for name in names:
            grade(name)  # warm the stand-in data cache and the page cache once
        for _ in range(args.runs):
            for name in names:
                grades[name].append(grade(name))
    print(f"empty job (true), {args.empty_runs} runs each:")
    for name in names:
        print("  " + line(name, empty[name]))
    overhead = statistics.median(empty["docker"]) - statistics.median(empty["bwrap"])
    print(f"  docker - bwrap: {overhead:+.2f} s per sandbox started")
    print(f"grade --quick {args.submission}, {args.runs} runs each:")
    for name in names:
        print("  " + line(name, grades[name]))
    b, d = statistics.median(grades["bwrap"]), statistics.median(grades["docker"])
    print(f"  docker - bwrap: {d - b:+.2f} s per job (ratio {d / b:.2f})")


if __name__ == "__main__":
    main()
