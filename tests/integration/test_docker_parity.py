"""The same sample submissions graded --quick in bubblewrap and in docker give the same records: status,
score, checks, findings and the layer table read by the grader (quick mode scores nothing, so there is no
accuracy to compare). Only the sandbox's name, timings and memory may differ."""

from __future__ import annotations

import pytest

from conftest import ROOT, docker_missing, my_containers

pytestmark = [pytest.mark.integration, pytest.mark.skipif(docker_missing() is not None, reason=str(docker_missing()))]
# a module with a finding, a notebook, a folder dataset
SAMPLES = ["alice/mnist-cnn.py", "carol/fashion-mnist-cnn.ipynb", "grace/ox.ipynb"]


def comparable(record: dict) -> dict:
    """What a record says about the submission, without what says how long or how much it took, or where."""
    return {"status": record["status"], "score": record["score"], "summary": record["summary"],
            "checks": record["checks"], "findings": record["findings"], "model": record["model"],
            "metrics": record["metrics"], "history": record["history"], "runtime": record["run"]["runtime"],
            "exit_code": record["run"]["exit_code"], "gpus": record["run"]["gpus"],
            "tensorflow_gpus": record["run"]["tensorflow_gpus"]}


def test_bwrap_and_docker_grade_the_samples_alike(tmp_path):
    from conftest import run_grade
    paths = [str(ROOT / "submissions" / sample) for sample in SAMPLES]
    seen = {}
    for sandbox in ("bwrap", "docker"):
        # a generous time limit: the same outcome on a loaded machine (the run stops at the first fit anyway)
        code, records = run_grade(["--quick", "--timeout", "240", "--sandbox", sandbox, "--jobs", "2", *paths],
                                  tmp_path / sandbox)
        assert len(records) == len(SAMPLES)
        assert {r["run"]["sandbox"] for r in records.values()} == {sandbox}
        seen[sandbox] = {key: comparable(rec) for key, rec in records.items()}
    for key, bwrap in seen["bwrap"].items():
        assert seen["docker"][key] == bwrap, key
        # a layer table read by the grader; these Sequential models are read from their config, without
        # TensorFlow, so whether it sees a GPU is not measured in quick mode (a full grade measures it)
        assert bwrap["model"] and bwrap["tensorflow_gpus"] is None
    assert my_containers() == []
