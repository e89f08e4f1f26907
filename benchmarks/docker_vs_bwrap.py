"""The docker sandbox against bubblewrap, and what its grading image costs to build (issue 8), in one run.

Prints:
1. the grading image's build times: cold (`--no-cache`: every layer again; the base image and the wheelhouse
   are made once and kept), cached (nothing changed: the tag is found and reused) and after a one-line code
   change (only the project layer is rebuilt; made in a copy of the checkout, whose image is removed after);
2. the median time of an empty job (`true`) in each sandbox: the sandbox's own start-and-stop cost;
3. the median wall time of `grade --quick` on the same submission in each sandbox (runs alternate, so both
   see the same machine) and their difference: the per-job overhead of docker in a real grade (a quick job
   starts two sandboxes, the run and the model reader, which overlap).
Targets: the cold build a few minutes at most (CI builds it inside a 30-minute test budget), a cached build
about a second, a code change seconds; docker's per-job overhead small against a quick grade.
Usage: python benchmarks/docker_vs_bwrap.py [--skip-cold] [--runs N] [--empty-runs N] [--submission PATH]
(`--skip-cold` leaves out the cold build, which takes minutes).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_timed(label: str, action) -> tuple[float, str]:
    start = time.perf_counter()
    tag = action()
    seconds = time.perf_counter() - start
    print(f"  {label:<38s} {seconds:7.1f} s   {tag}", flush=True)
    return seconds, tag


def image_builds(skip_cold: bool) -> None:
    """The grading image's build times (cold unless `skip_cold`, cached, after a code change), and its size."""
    from harness import image

    quiet = lambda text: None  # noqa: E731
    client = image.connect()
    print("grading image build:", flush=True)
    start = time.perf_counter()
    image.build_base(client, log=quiet)
    print(f"  {'base image (present or made)':<38s} {time.perf_counter() - start:7.1f} s   {image.BASE_IMAGE}")
    if skip_cold:
        cold, tag = None, image.build(client, log=quiet)
    else:
        cold, tag = build_timed("cold build (--no-cache) + check",
                                lambda: image.build(client, no_cache=True, log=quiet))
    cached, _ = build_timed("cached build (nothing changed)", lambda: image.build(client, log=quiet))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "checkout"
        shutil.copytree(image.ROOT / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(image.ROOT / "docker", copy / "docker")
        shutil.copyfile(image.ROOT / "pyproject.toml", copy / "pyproject.toml")
        with (copy / "harness" / "probe" / "run_module.py").open("a") as f:
            f.write(f"# benchmark change {time.time()}\n")
        changed, changed_tag = build_timed("code change (project layer) + check",
                                           lambda: image.build(client, log=quiet, root=copy))
        client.images.remove(changed_tag, noprune=False)
    attrs = client.images.get(tag).attrs
    base = client.images.get(image.BASE_IMAGE).attrs
    print(f"  grading image size {attrs['Size'] / 1e9:.2f} GB (base {base['Size'] / 1e6:.0f} MB)")
    if cold:
        print(f"  cached / cold = {cached / cold:.4f}; code change / cold = {changed / cold:.3f}")
    else:
        print("  (cold build left out: --skip-cold)")


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
    parser.add_argument("--skip-cold", action="store_true", help="leave out the cold image build (minutes)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--empty-runs", type=int, default=10)
    parser.add_argument("--submission", default="submissions/alice/mnist-cnn.py")
    args = parser.parse_args()
    image_builds(args.skip_cold)  # first: the docker runs below need this checkout's image
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
