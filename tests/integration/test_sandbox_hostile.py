"""Hostile submissions in the real sandboxes (bubblewrap, docker): nothing survives `grade`, no network,
the same outcomes in both; no container is left behind."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest

from conftest import FIXTURES, docker_missing, my_containers, processes_with

pytestmark = pytest.mark.integration
HOSTILE = FIXTURES / "hostile"
SANDBOXES = ["bwrap", pytest.param("docker", marks=pytest.mark.skipif(docker_missing() is not None,
                                                                      reason=str(docker_missing())))]


@pytest.fixture(params=SANDBOXES)
def grade(request, grade):
    """`grade` in each sandbox; afterwards no container of the harness is left (docker)."""
    name = request.param

    def _grade(*args: str):
        return grade("--sandbox", name, *args)
    yield _grade
    if name == "docker":
        assert my_containers() == [], "containers were left behind"


@pytest.mark.parametrize("fixture", ["forks_1000_sleepers.py", "daemonizes_with_setsid.py", "ignores_sigterm.py"])
def test_no_process_survives_and_the_next_job_runs(fixture, student, grade, tmp_path, root):
    token = f"harness-test-{uuid.uuid4().hex}"
    student("hostile", {"mnist-cnn.py": HOSTILE / fixture, "token.txt": token})
    student("next", {"mnist-cnn.py": root / "reference" / "mnist-cnn.py"})
    # one job at a time: "next" runs after the hostile job is gone (run beside it, 20 s is too short here)
    code, records = grade("--quick", "--timeout", "20", "--jobs", "1", str(tmp_path / "submissions"))
    assert processes_with(token) == [], f"{fixture} left processes behind"
    hostile = records[("hostile", "mnist-cnn")]
    assert hostile["status"] in ("timeout", "no-model", "error")
    if fixture == "ignores_sigterm.py":
        assert hostile["status"] == "timeout"
    nxt = records[("next", "mnist-cnn")]
    assert nxt["status"] == "graded" and nxt["model"]["total_params"] == 3_156_098
    assert code == 1


def test_cannot_connect_to_a_listener_on_host_loopback(student, grade, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        folder = student("sneaky", {"mnist-cnn.py": HOSTILE / "connects_to_host.py",
                                    "port.txt": str(server.getsockname()[1])})
        code, records = grade("--quick", "--timeout", "30", str(folder))
    finally:
        stop.set()
        thread.join()
        server.close()
    assert accepted == [], "the submission reached the host"
    rec = records[("sneaky", "mnist-cnn")]
    assert rec["status"] == "error"
    assert "connection refused inside the sandbox" in rec["summary"] or "Connection refused" in rec["summary"]


def test_memory_limit_kills_the_job_and_says_so(student, grade):
    folder = student("greedy", {"mnist-cnn.py": HOSTILE / "eats_memory.py"})
    code, records = grade("--quick", "--memory", "1024", "--timeout", "60", str(folder))
    rec = records[("greedy", "mnist-cnn")]
    assert rec["status"] == "memory-limit", rec["summary"]
    assert rec["run"]["peak_memory_mb"] is None or rec["run"]["peak_memory_mb"] <= 1100


def test_flooding_the_evidence_folder_is_stopped(student, grade, monkeypatch):
    from harness.sandbox import base
    folder = student("flood", {"mnist-cnn.py": HOSTILE / "floods_evidence.py"})
    original = base.Limits
    monkeypatch.setattr("harness.run.Limits", lambda **kw: original(**kw, evidence_mb=300))
    code, records = grade("--quick", "--timeout", "120", str(folder))
    rec = records[("flood", "mnist-cnn")]
    assert rec["status"] == "error" and "evidence folder" in rec["summary"], rec["summary"]
    assert rec["run"]["wall_seconds"] < 60


def test_writes_outside_the_workspace_are_refused(student, grade):
    folder = student("scribbler", {"mnist-cnn.py": HOSTILE / "writes_outside.py"})
    code, records = grade("--quick", "--timeout", "60", str(folder))
    rec = records[("scribbler", "mnist-cnn")]
    output = (folder.parent.parent / "reports" / "scribbler" / "mnist-cnn.evidence" / "output-tail.log").read_text()
    for target in ("/usr/x", "/etc/x", "/x", "/submission/x", "/opt/harness-probe/x", "/usr/share/datasets/x"):
        assert f"refused {target}" in output, output
    for target in ("workspace", "/tmp/x", "home"):
        assert f"wrote {target}" in output, output
    assert rec["status"] == "error" and "done probing the file system" in rec["summary"], rec["summary"]
