"""What `grade` loads before its first sandbox starts: the modules that reach a job's start (command line,
spec, discovery, pool, sandbox, run and run stage) load no numpy, scipy, jsonschema, nbformat or judge; those
are loaded while the run goes (benchmarks/quick_vs_import.py: they cost a quick grade 0.3-0.4 s before)."""

import json
import subprocess
import sys

HEAVY = ("numpy", "scipy", "jsonschema", "nbformat", "harness.judge", "harness.checks", "harness.webreport")


def test_a_job_starts_without_the_heavy_modules():
    code = ("import json, sys\n"
            "import harness.cli, harness.grade, harness.worker, harness.execute, harness.run, harness.executors\n"
            "import harness.sandbox.bwrap, harness.sandbox.docker, harness.data.serve, harness.data.standin\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    found = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not found, f"loaded before a sandbox starts: {found[:10]}"
