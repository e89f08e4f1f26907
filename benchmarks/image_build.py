"""Grading image build times, in one run: cold (no layer cache, base image and wheelhouse present), cached (nothing
changed: the tag is found and reused) and after a one-line code change (only the project layer is rebuilt).

The code change is made in a copy of the checkout, and the image built from it is removed afterwards.
Targets (issue 8): the cold build a few minutes at most (CI builds it inside a 30-minute test budget), a cached
`harness image build` about a second, a code change seconds.
Usage: python benchmarks/image_build.py [--skip-cold]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path


def timed(label: str, action) -> tuple[float, str]:
    start = time.perf_counter()
    tag = action()
    seconds = time.perf_counter() - start
    print(f"{label:<40s} {seconds:7.1f} s   {tag}", flush=True)
    return seconds, tag


def main() -> None:
    from harness import image

    quiet = lambda text: None  # noqa: E731
    client = image.connect()
    start = time.perf_counter()
    image.build_base(client, log=quiet)
    print(f"{'base image (present or made)':<40s} {time.perf_counter() - start:7.1f} s   {image.BASE_IMAGE}")
    if "--skip-cold" not in sys.argv:
        cold, tag = timed("cold build (--no-cache) + check", lambda: image.build(client, no_cache=True, log=quiet))
    else:
        cold, tag = None, image.build(client, log=quiet)
    cached, _ = timed("cached build (nothing changed)", lambda: image.build(client, log=quiet))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "checkout"
        shutil.copytree(image.ROOT / "harness", copy / "harness", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(image.ROOT / "docker", copy / "docker")
        shutil.copyfile(image.ROOT / "pyproject.toml", copy / "pyproject.toml")
        with (copy / "harness" / "probe" / "run_module.py").open("a") as f:
            f.write(f"# benchmark change {time.time()}\n")
        changed, changed_tag = timed("code change (project layer) + check",
                                     lambda: image.build(client, log=quiet, root=copy))
        client.images.remove(changed_tag, noprune=False)
    attrs = client.images.get(tag).attrs
    base = client.images.get(image.BASE_IMAGE).attrs
    print(f"grading image size {attrs['Size'] / 1e9:.2f} GB (base {base['Size'] / 1e6:.0f} MB)")
    if cold:
        print(f"cached / cold = {cached / cold:.4f}; code change / cold = {changed / cold:.3f}")


if __name__ == "__main__":
    main()
