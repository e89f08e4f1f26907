"""The docker sandbox, in real containers: a running job's container is inspected from outside (the engine's
view) and from inside (what the job sees), a GPU request reaches the engine, nothing is left behind.

Skipped only where no Docker Engine answers (the reason says why); a missing grading image fails (`make
install` builds it). On a GPU machine, `HARNESS_TEST_GPUS=0 pytest tests/integration/test_sandbox_docker.py
-k gpu` checks that a job given GPU 0 has it and that TensorFlow sees it.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import docker_missing
from harness.errors import InfrastructureError
from harness.sandbox import Limits, Mount, SandboxRequest
from harness.sandbox.docker import (INSIDE, JOB, LABEL, OWNER, DockerSandbox, _owner, container_config,
                                    signal_exit_code)

pytestmark = [pytest.mark.integration, pytest.mark.skipif(docker_missing() is not None, reason=str(docker_missing()))]

INSIDE_CHECKS = r"""
cat /proc/net/dev > /evidence/net
id -u > /evidence/uid
ls -A /usr/share/datasets > /evidence/datasets 2>&1 || echo absent > /evidence/datasets
for target in /usr/x /etc/x /x /submission/x /opt/harness-probe/x /data/x /workspace/x /tmp/x /home/student/x; do
    if (echo x > "$target") 2>/dev/null; then echo "wrote $target"; else echo "refused $target"; fi
done > /evidence/writes
grep -E 'CapEff|CapBnd' /proc/self/status > /evidence/caps
grep NoNewPrivs /proc/self/status >> /evidence/caps
echo "$CUDA_VISIBLE_DEVICES" > /evidence/cuda
touch /evidence/ready
while [ ! -e /release/go ]; do sleep 0.1; done
"""


def _job(tmp_path: Path, **fields) -> SandboxRequest:
    job = tmp_path / "job"
    for name in ("stage", "evidence", "data", "release"):
        (job / name).mkdir(parents=True)
    (job / "stage" / "hello.py").write_text("print('hi')\n")
    (job / "data" / "train.txt").write_text("served\n")
    return SandboxRequest(
        argv=["/bin/sh", "-c", INSIDE_CHECKS], job_dir=job, stage=job / "stage",
        mounts=[Mount(job / "data", "/data"), Mount(job / "release", "/release")],
        env={"HARNESS_WORKSPACE": INSIDE.workspace, "PATH": "/usr/bin:/bin"}, timeout=120,
        limits=Limits(memory_mb=700, processes=77, cpus=1.5, workspace_mb=64, tmp_mb=32),
        log=job / "output.log", label=f"test-{uuid.uuid4().hex}", **fields)


def _labelled(client, label: str):
    return client.containers.list(all=True, filters={"label": f"{JOB}={label}"})


def test_a_running_jobs_container_keeps_the_contract(tmp_path):
    sandbox = DockerSandbox()
    client = sandbox.client()
    request = _job(tmp_path)
    results = []
    runner = threading.Thread(target=lambda: results.append(sandbox.run(request)), daemon=True)
    runner.start()
    evidence = request.job_dir / "evidence"
    deadline = time.monotonic() + 60
    while not (evidence / "ready").exists() and time.monotonic() < deadline and runner.is_alive():
        time.sleep(0.1)
    assert (evidence / "ready").exists(), (results, (request.job_dir / "output.log").read_text()[-2000:])
    try:
        [container] = _labelled(client, request.label)
        attrs = container.attrs
    finally:
        (request.job_dir / "release" / "go").write_text("")
        runner.join(60)
    host, config = attrs["HostConfig"], attrs["Config"]
    assert attrs["State"]["Running"]
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == 700 * 2**20 and host["MemorySwap"] == 700 * 2**20
    assert host["NanoCpus"] == 1_500_000_000 and host["PidsLimit"] == 77
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert config["User"] == "1000:1000" and config["Labels"][LABEL] == "1"
    assert not host.get("DeviceRequests")
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]}["fsize"] == Limits().file_size_mb * 2**20
    mounts = {m["Destination"]: m["RW"] for m in attrs["Mounts"]}
    assert mounts == {"/submission": False, "/evidence": True, INSIDE.probe: False, "/data": False,
                      "/release": False}
    assert "size=64m" in host["Tmpfs"][INSIDE.workspace] and "size=32m" in host["Tmpfs"]["/tmp"]

    [result] = results
    assert result.exit_code == 0 and not result.timed_out and result.sandbox == "docker"
    interfaces = [line.split(":")[0].strip() for line in (evidence / "net").read_text().splitlines()[2:]]
    assert interfaces == ["lo"]
    assert (evidence / "uid").read_text().strip() == "1000"
    assert (evidence / "datasets").read_text().strip() == "", "the system's dataset folder is visible"
    writes = (evidence / "writes").read_text().split("\n")
    for target in ("/usr/x", "/etc/x", "/x", "/submission/x", "/opt/harness-probe/x", "/data/x"):
        assert f"refused {target}" in writes
    for target in ("/workspace/x", "/tmp/x", "/home/student/x"):
        assert f"wrote {target}" in writes
    caps = dict(line.split(":") for line in (evidence / "caps").read_text().splitlines())
    assert int(caps["CapEff"], 16) == 0 and int(caps["CapBnd"], 16) == 0 and caps["NoNewPrivs"].strip() == "1"
    assert (evidence / "cuda").read_text() == "\n", "a job given no GPU must see none"
    assert not (request.job_dir / "data" / "x").exists() and not (request.stage / "x").exists()
    assert _labelled(client, request.label) == [], "the container was not removed"


@pytest.mark.parametrize("gpus, ids, count, visible", [
    (("0",), ["0"], 0, "0"), (("1", "3"), ["1", "3"], 0, "0,1"), (("all",), [], -1, None)])
def test_a_gpu_request_reaches_the_engine(tmp_path, gpus, ids, count, visible):
    """No GPU here: the engine takes the device request at create time (checked), and refuses to start it
    without the NVIDIA runtime, which the run reports as the operator's to fix; no container is left.
    Named ids reach the engine as they are, and CUDA numbers them from 0 inside."""
    sandbox = DockerSandbox()
    api = sandbox.client().api
    request = _job(tmp_path, gpus=gpus)
    create, host = container_config(request, sandbox.image(), "test")
    created = api.create_container(host_config=api.create_host_config(**host), **create)["Id"]
    try:
        attrs = api.inspect_container(created)
    finally:
        api.remove_container(created, force=True)
    assert attrs["HostConfig"]["DeviceRequests"] == [
        {"Driver": "", "Count": count, "DeviceIDs": ids, "Capabilities": [["gpu"]], "Options": {}}]
    cuda = [e for e in attrs["Config"]["Env"] if e.startswith("CUDA_VISIBLE_DEVICES=")]
    assert cuda == ([f"CUDA_VISIBLE_DEVICES={visible}"] if visible is not None else [])
    if os.environ.get("HARNESS_TEST_GPUS"):
        pytest.skip("a GPU machine: test_a_job_given_a_gpu_sees_it runs instead")
    with pytest.raises(InfrastructureError, match="NVIDIA Container Toolkit"):
        sandbox.run(request)
    assert _labelled(sandbox.client(), request.label) == []


@pytest.mark.parametrize("asked, given", [("0,2", ["0", "2"]), ("all", ["0", "1", "2"])])
def test_grade_gpus_becomes_the_device_request_of_the_jobs_container(tmp_path, asked, given):
    """`grade --sandbox docker --gpus ...` end to end, on three logical GPUs (`--machine-gpus 3`): the pool
    hands the job those devices, the container asks the engine for them, and the engine (no NVIDIA runtime
    here) refuses: an error record that names the operator's fix and the devices the job had."""
    if os.environ.get("HARNESS_TEST_GPUS"):
        pytest.skip("a GPU machine: the container starts; test_a_job_given_a_gpu_sees_it checks a job's GPU")
    from conftest import ROOT, my_containers, run_grade
    code, records = run_grade(["--quick", "--sandbox", "docker", "--machine-gpus", "3", "--gpus", asked,
                               str(ROOT / "submissions" / "alice" / "mnist-cnn.py")], tmp_path / "out")
    [rec] = records.values()
    assert code == 3 and rec["status"] == "error", rec["summary"]
    assert "NVIDIA Container Toolkit" in rec["summary"] and "not the student's fault" in rec["summary"]
    assert rec["run"]["gpus"] == given and rec["run"]["sandbox"] == "docker"
    assert my_containers() == []


@pytest.mark.skipif(not os.environ.get("HARNESS_TEST_GPUS"), reason="needs a GPU machine (HARNESS_TEST_GPUS=<ids>)")
def test_a_job_given_a_gpu_sees_it(tmp_path):
    gpus = tuple(os.environ["HARNESS_TEST_GPUS"].split(","))
    sandbox = DockerSandbox()
    request = _job(tmp_path, gpus=gpus)
    request = dataclasses.replace(request, argv=[INSIDE.python, "-c", (
        "import tensorflow as tf; open('/evidence/gpus', 'w').write(str(len(tf.config.list_physical_devices('GPU'))))")])
    result = sandbox.run(request)
    assert result.exit_code == 0, result.output_tail
    assert (request.job_dir / "evidence" / "gpus").read_text() == str(len(gpus))


def test_a_timeout_kills_the_container_and_a_crashed_harness_leftover_is_swept(tmp_path):
    sandbox = DockerSandbox()
    client = sandbox.client()
    request = _job(tmp_path)
    request = dataclasses.replace(request, timeout=3.0, limits=Limits(grace_seconds=1.0),
                                  argv=["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    began = time.monotonic()
    result = sandbox.run(request)
    assert result.timed_out and result.exit_code == -9 and time.monotonic() - began < 15
    assert _labelled(client, request.label) == []

    # a container whose harness died (here: a process that has exited) is swept by the next run
    gone = _dead_pid()
    create, host = container_config(request, sandbox.image(), "unused")
    api = client.api
    def make(owner: str) -> str:
        return api.create_container(host_config=api.create_host_config(**host),
                                    **{**create, "labels": {**create["labels"], OWNER: owner}})["Id"]
    leftover, live, foreign = make(f"{socket.gethostname()}:{gone}:0"), make(_owner()), make("elsewhere:1:0")
    try:
        swept = sandbox.sweep()
        assert leftover in swept and live not in swept and foreign not in swept
        assert {c.id for c in _labelled(client, request.label)} == {live, foreign}
    finally:
        for kept in (live, foreign):
            api.remove_container(kept, force=True)


def _dead_pid() -> int:
    import subprocess
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_exit_codes_of_signals_read_as_in_a_process_sandbox():
    assert signal_exit_code(137) == -9 and signal_exit_code(143) == -15
    assert signal_exit_code(0) == 0 and signal_exit_code(1) == 1 and signal_exit_code(5) == 5
