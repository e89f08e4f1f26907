"""The start-of-run sweep removes what a dead run left, and nothing a live run owns."""

import os
import subprocess

from harness.sandbox import leftovers


def dead_owner() -> str:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{proc.pid}.1"


def test_owner_tags_tell_the_living_from_the_dead():
    assert leftovers.alive(leftovers.owner())
    assert not leftovers.alive(dead_owner())
    pid, start = leftovers.owner().split(".")
    assert int(pid) == os.getpid()
    assert not leftovers.alive(f"{pid}.{int(start) + 1}"), "a reused pid is not the owner"


def test_sweep_removes_a_dead_owners_cgroups_and_job_folders_only(tmp_path):
    tmp, groups = tmp_path / "tmp", tmp_path / "cgroup"
    dead, live = dead_owner(), leftovers.owner()
    for tag, name in ((dead, "harness-job-a"), (live, "harness-job-b")):
        folder = tmp / name
        (folder / "stage").mkdir(parents=True)
        (folder / leftovers.MARKER).write_text(tag)
    (tmp / "harness-job-unmarked").mkdir()
    (groups / "memory" / "process_api" / "x" / f"harness-{dead}-0123456789ab").mkdir(parents=True)
    (groups / "pids" / f"harness-{dead}-0123456789ab").mkdir(parents=True)
    (groups / "pids" / f"harness-{live}-ba9876543210").mkdir(parents=True)
    (groups / "pids" / "harness-8ab0b8705c8b").mkdir(parents=True)  # made before owners were tagged: left alone
    removed = leftovers.sweep(tmp, groups)
    assert sorted(p.name for p in tmp.iterdir()) == ["harness-job-b", "harness-job-unmarked"]
    assert sorted(p.name for p in (groups / "pids").iterdir()) == [f"harness-{live}-ba9876543210",
                                                                   "harness-8ab0b8705c8b"]
    assert not any((groups / "memory" / "process_api" / "x").iterdir())
    assert len(removed) == 3


def test_cgroups_are_named_after_their_owner():
    from harness.sandbox import limits
    name = limits._name()
    match = leftovers.TAGGED.match(name)
    assert match and f"{match.group(1)}.{match.group(2)}" == leftovers.owner()
