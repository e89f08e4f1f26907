"""GPU devices of a job, as each sandbox hands them over; the container a docker job asks the engine for."""

from pathlib import Path

from harness.sandbox import Limits, Mount, SandboxRequest
from harness.sandbox.base import cuda_visible_devices
from harness.sandbox.bwrap import BwrapSandbox


def request(tmp_path: Path, **fields) -> SandboxRequest:
    (tmp_path / "stage").mkdir(exist_ok=True)
    return SandboxRequest(argv=["python", "x.py"], job_dir=tmp_path, stage=tmp_path / "stage",
                          mounts=[Mount(tmp_path, "/data")], env={"HARNESS_WORKSPACE": "/workspace"}, **fields)


def test_no_gpu_asked_means_none_visible_and_ids_are_renumbered_in_a_container():
    assert cuda_visible_devices((), renumbered=True) == "" == cuda_visible_devices((), renumbered=False)
    assert cuda_visible_devices(("2", "3"), renumbered=False) == "2,3"
    assert cuda_visible_devices(("2", "3"), renumbered=True) == "0,1"
    assert cuda_visible_devices(("all",), renumbered=True) is None


def test_bwrap_sets_cuda_visible_devices(tmp_path):
    command = BwrapSandbox().command(request(tmp_path, gpus=("1",)))
    at = command.index("CUDA_VISIBLE_DEVICES")
    assert command[at - 1] == "--setenv" and command[at + 1] == "1"
    command = BwrapSandbox().command(request(tmp_path))
    assert command[command.index("CUDA_VISIBLE_DEVICES") + 1] == ""


def test_docker_config_carries_the_contract_and_the_device_request(tmp_path):
    from harness.sandbox.docker import container_config
    create, host = container_config(request(tmp_path, gpus=("0", "2"), limits=Limits(memory_mb=512, cpus=2)),
                                    "image:tag", "owner")
    assert host["network_mode"] == "none" and host["read_only"] and host["cap_drop"] == ["ALL"]
    assert host["mem_limit"] == host["memswap_limit"] == 512 * 2**20 and host["nano_cpus"] == 2 * 10**9
    assert host["security_opt"] == ["no-new-privileges"] and create["user"] == "1000:1000"
    [device] = host["device_requests"]
    assert device["DeviceIDs"] == ["0", "2"] and device["Capabilities"] == [["gpu"]]
    assert create["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert {m["Target"]: m["ReadOnly"] for m in host["mounts"]} == {
        "/submission": True, "/evidence": False, "/opt/harness-probe": True, "/data": True}
    create, host = container_config(request(tmp_path), "image:tag", "owner")
    assert host["device_requests"] is None and create["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    create, host = container_config(request(tmp_path, gpus=("all",)), "image:tag", "owner")
    assert host["device_requests"][0]["Count"] == -1 and "CUDA_VISIBLE_DEVICES" not in create["environment"]


def test_docker_folders_leading_to_a_mount_in_home_belong_to_the_job(tmp_path):
    """Keras reads its datasets from ~/.keras only when ~/.keras is writable (else /tmp/.keras)."""
    from harness.sandbox.docker import container_config
    req = request(tmp_path)
    req = SandboxRequest(**{**req.__dict__, "mounts": [Mount(tmp_path, "/home/student/.keras/datasets/fashion-mnist")]})
    _, host = container_config(req, "image:tag", "owner")
    for folder in ("/home/student/.keras", "/home/student/.keras/datasets"):
        assert "uid=1000" in host["tmpfs"][folder]
    assert "/home/student/.keras/datasets/fashion-mnist" not in host["tmpfs"]
