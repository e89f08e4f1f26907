"""A class run at scale: killed with SIGKILL halfway and resumed whole; the same class graded by the local
pool and by Ray on a local cluster; a job that fits on no Ray node. Real bubblewrap, real TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import record
from harness.sandbox import leftovers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def records_in(out: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in record.files(out)} if out.is_dir() else {}


def owned_by(tag: str) -> dict[str, list[str]]:
    """What a run left on the host: its cgroups, its job folders, the mounts in them."""
    groups = [str(p) for p, t in leftovers._cgroup_dirs(leftovers.CGROUP_ROOT) if t == tag]
    import tempfile
    folders = []
    for folder in Path(tempfile.gettempdir()).glob("harness-*"):
        try:
            if (folder / leftovers.MARKER).read_text().strip() == tag:
                folders.append(str(folder))
        except OSError:
            pass
    mounts = [m for f in folders for m in leftovers.mounts_under(Path(f))]
    return {"cgroups": groups, "folders": folders, "mounts": mounts}


def test_a_class_run_killed_halfway_resumes_whole(tmp_path):
    cls = tmp_path / "class"
    students = [f"s{i}" for i in range(6)]
    for i, name in enumerate(students):
        (cls / name).mkdir(parents=True)
        (cls / name / "mnist-cnn.py").write_text(f"import time\ntime.sleep({2 + i % 2})\n")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "harness.cli", str(cls), "--quick", "--jobs", "2", "--no-html", "--out", str(out),
            "--assignments", str(ROOT / "assignments")]
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    tag = f"{proc.pid}.{leftovers.start_time(proc.pid)}"
    deadline = time.monotonic() + 300
    while len(records_in(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # the next two jobs are in their sandboxes now
    before = records_in(out)
    assert proc.poll() is None and 2 <= len(before) < len(students), "the kill must land halfway"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for path in before.values():
        record.load(path)  # every record file on disk is whole and valid
    left = owned_by(tag)
    assert left["folders"], "a job was running at the kill: its folder is left for the sweep"
    kept = {name: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for name, path in before.items()}

    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "leftover" in done.stderr  # the sweep said what it removed
    assert owned_by(tag) == {"cgroups": [], "folders": [], "mounts": []}, "the killed run's leftovers are gone"
    after = records_in(out)
    assert sorted(after) == students
    assert not list(out.glob("*/.*.tmp")), "no temporary file of an interrupted write is left"
    for name, path in after.items():
        rec = record.load(path)
        assert rec.status == "no-model" and rec.student == name
        assert len(list(path.parent.glob("*.json"))) == 1
        assert path.with_suffix(".md").is_file() and (path.parent / "mnist-cnn.evidence" / "run.json").is_file()
    for name, (inode, mtime, data) in kept.items():
        path = after[name]
        assert (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) == (inode, mtime, data), \
            f"{name} was finished before the kill and must not be graded again"


# ---- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is a dependency (pyproject); run `make install`")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})  # workers import the harness under test
    yield ray
    ray.shutdown()


def grade(argv: list[str], out: Path, assignments: Path = ROOT / "assignments") -> tuple[int, dict[str, dict]]:
    from harness.cli import grade_main
    code = grade_main([*argv, "--no-html", "--out", str(out), "--assignments", str(assignments)])
    return code, {p.parent.name: json.loads(p.read_text()) for p in record.files(out)}


COMPARED = ("status", "score", "max_score", "summary", "checks", "findings", "model")


def test_ray_and_the_local_pool_give_the_same_records(tmp_path, ray_cluster):
    cls = tmp_path / "class"
    for name in ("ref", "empty", "broken"):
        (cls / name).mkdir(parents=True)
    shutil.copyfile(ROOT / "reference" / "mnist-cnn.py", cls / "ref" / "mnist-cnn.py")
    (cls / "empty" / "mnist-cnn.py").write_text("x = 1\n")
    (cls / "broken" / "mnist-cnn.py").write_text("def f(:\n")
    common = [str(cls), "--quick", "--memory", "2048"]
    local_code, local = grade([*common, "--jobs", "2"], tmp_path / "local")
    ray_code, remote = grade([*common, "--executor", "ray"], tmp_path / "ray")
    assert local_code == ray_code == 1
    assert set(local) == set(remote) == {"ref", "empty", "broken"}
    assert local["ref"]["status"] == "graded" and local["ref"]["model"]["total_params"] == 3_156_098
    for name in local:
        for key in COMPARED:
            assert local[name][key] == remote[name][key], (name, key)
        assert local[name]["submission"] == remote[name]["submission"], name
    for name in ("ref", "empty"):  # the evidence came back from the worker and was written here
        kept = sorted(p.relative_to(tmp_path / "ray").as_posix() for p in (tmp_path / "ray" / name).rglob("*")
                      if p.is_file())
        assert kept == sorted(p.relative_to(tmp_path / "local").as_posix()
                              for p in (tmp_path / "local" / name).rglob("*") if p.is_file()), name
    # rescoring the Ray run from its stored evidence gives the same grades: the evidence is complete
    from harness.cli import harness_main
    assert harness_main(["rescore", str(tmp_path / "ray"), "--assignments", str(ROOT / "assignments")]) == 1
    rescored = {p.parent.name: json.loads(p.read_text()) for p in record.files(tmp_path / "ray")}
    assert all(rescored[n]["checks"] == remote[n]["checks"] for n in remote)


@pytest.mark.timeout(300)
def test_a_job_asking_for_more_gpus_than_the_cluster_has_gets_an_error_record(tmp_path, ray_cluster):
    assignments = tmp_path / "assignments"
    shutil.copytree(ROOT / "assignments" / "mnist-cnn", assignments / "mnist-cnn")
    toml = assignments / "mnist-cnn" / "assignment.toml"
    original = toml.read_text()
    cls = tmp_path / "class"
    (cls / "ann").mkdir(parents=True)
    (cls / "ann" / "mnist-cnn.py").write_text("x = 1\n")
    toml.write_text(original + "\n[resources]\ngpus = 1\n")
    code, records = grade([str(cls), "--quick", "--memory", "2048", "--executor", "ray"], tmp_path / "one", assignments)
    assert records["ann"]["status"] == "no-model" and records["ann"]["run"]["gpus"] == ["0"]
    toml.write_text(original + "\n[resources]\ngpus = 2\n")
    began = time.monotonic()
    code, records = grade([str(cls), "--quick", "--memory", "2048", "--executor", "ray"], tmp_path / "two", assignments)
    assert code == 3 and time.monotonic() - began < 60, "refused at once, not left waiting"
    rec = records["ann"]
    assert rec["status"] == "error"
    assert "asks for 2 GPU(s) per job and the largest node of the Ray cluster has 1" in rec["summary"]
    assert "not the student's fault" in rec["summary"]


SMALL_FIT = """from tensorflow.keras import datasets, layers, models
(x, y), _ = datasets.fashion_mnist.load_data()
model = models.Sequential([layers.Input((28, 28)), layers.Flatten(), layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:600] / 255.0, y[:600], epochs=2, verbose=2)
"""


@pytest.mark.timeout(300)
def test_a_ray_job_shows_its_stages_and_epochs_in_the_live_view_while_it_runs(tmp_path, ray_cluster, data_root,
                                                                              monkeypatch):
    """The worker reads the job's epochs and sends them back while it trains: the caller's view sees them
    before the job is evaluated, not only its start and end."""
    import io

    from harness import progress

    class Recorder(progress.PlainLog):
        def __init__(self) -> None:
            super().__init__(stream=io.StringIO(), epoch_every=0)
            self.seen: list[tuple[str, object]] = []

        def stage_changed(self, job, stage):
            self.seen.append(("stage", stage))
            super().stage_changed(job, stage)

        def epoch_seen(self, job, epoch):
            self.seen.append(("epoch", epoch))
            super().epoch_seen(job, epoch)

    recorder = Recorder()
    monkeypatch.setattr(progress, "make", lambda *args, **kwargs: recorder)
    cls = tmp_path / "class"
    (cls / "ann").mkdir(parents=True)
    (cls / "ann" / "fashion-mnist-cnn.py").write_text(SMALL_FIT)
    code, records = grade([str(cls), "--executor", "ray", "--memory", "4096", "--data-root", str(data_root)],
                          tmp_path / "out")
    assert records["ann"]["status"] == "graded", records["ann"]["summary"]
    stages = [value for kind, value in recorder.seen if kind == "stage"]
    assert stages[:3] == ["preparing", "waiting", "preparing"]  # queued here, pending on the cluster, started there
    assert stages[3:] == ["running", "evaluating", "judging"]
    epochs = [value for kind, value in recorder.seen if kind == "epoch"]
    assert epochs and epochs[-1].epoch == 2 and epochs[-1].epochs == 2 and epochs[-1].loss is not None
    first = recorder.seen.index(("epoch", epochs[0]))
    assert recorder.seen.index(("stage", "running")) < first < recorder.seen.index(("stage", "evaluating"))
    log = recorder.stream.getvalue()
    assert "epoch ann/fashion-mnist-cnn: epoch 2/2 loss " in log and "end   ann/fashion-mnist-cnn: graded" in log
