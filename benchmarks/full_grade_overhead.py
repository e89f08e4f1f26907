"""A full `grade` of the fashion-mnist-cnn reference (training included) against executing the
same notebook with plain nbclient outside any sandbox, in one run.

Target (issue: trusted evaluation): the grade costs at most 5 % more, apart from the trusted
evaluation itself, which is timed separately. Usage: python benchmarks/full_grade_overhead.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NOTEBOOK = ROOT / "reference" / "fashion-mnist-cnn.ipynb"

PLAIN = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=None, kernel_name="python3").execute()
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([str(BIN / "harness"), "data", "prepare", "fashion_mnist", "--data-root", str(tmp / "data")],
                       check=True, stdout=subprocess.DEVNULL)
        keras_home = tmp / "keras"
        shutil.copytree(tmp / "data" / "fashion_mnist" / "served" / "fashion-mnist",
                        keras_home / "datasets" / "fashion-mnist")
        env = dict(os.environ, KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="2")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PLAIN, str(NOTEBOOK)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        plain = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run([str(BIN / "grade"), str(NOTEBOOK), "--data-root", str(tmp / "data"), "--out", str(tmp / "out")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = time.perf_counter() - start
        record = json.loads((tmp / "out" / "reference" / "fashion-mnist-cnn.json").read_text())
    evaluation = record["run"]["evaluation_seconds"] or 0.0
    graded = total - evaluation
    print(f"plain nbclient, no sandbox:           {plain:7.1f} s")
    print(f"grade (total):                        {total:7.1f} s")
    print(f"  of which trusted evaluation:        {evaluation:7.1f} s  (holdout accuracy "
          f"{record['metrics']['holdout_accuracy']}, {record['metrics']['holdout_size']} images)")
    print(f"  of which the sandboxed run:         {record['run']['wall_seconds']:7.1f} s")
    print(f"grade without the trusted evaluation: {graded:7.1f} s")
    print(f"overhead ratio: {graded / plain:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
