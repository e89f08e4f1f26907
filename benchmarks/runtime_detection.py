"""Cost of choosing the runtime from the code (harness.runtime), per submission, against starting the
Python that would run it (`python -c "import tensorflow"`, which every job pays). Target: detection is pure
(no TensorFlow) and costs under 1 % of that import.

The submissions are the shipped references and sample submissions; each is parsed afresh (the parse cache
cleared) several times, and the median is printed.
Usage: python benchmarks/runtime_detection.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from harness import runtime, static
    entries = sorted((ROOT / "reference").glob("*.ipynb")) + sorted((ROOT / "reference").glob("*.py")) \
        + sorted((ROOT / "submissions").glob("*/*.ipynb"))
    assert "tensorflow" not in sys.modules
    times = []
    for _ in range(5):
        for entry in entries:
            static._units.cache_clear()
            start = time.perf_counter()
            runtime.detect_entry(entry)
            times.append(time.perf_counter() - start)
    assert "tensorflow" not in sys.modules, "detection imported TensorFlow"
    detect = statistics.median(times)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    tf_import = time.perf_counter() - start
    print(f"submissions: {len(entries)} (references and sample notebooks), 5 rounds each")
    print(f"detection per submission: median {detect * 1000:.2f} ms, max {max(times) * 1000:.2f} ms")
    print(f"python -c 'import tensorflow': {tf_import:.2f} s")
    print(f"ratio detection / TensorFlow import: {detect / tf_import:.5f} (target < 0.01)")


if __name__ == "__main__":
    main()
