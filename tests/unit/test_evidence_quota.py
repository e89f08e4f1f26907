"""The evidence quota counts every sub-folder; as root it is a tmpfs on the host, else a walk of the tree."""

import os
from pathlib import Path

import pytest

from harness.sandbox import base
from harness.sandbox.base import EVIDENCE_SLACK_MB, EvidenceQuota


def mounted(folder: Path) -> bool:
    return any(line.split()[1] == str(folder) for line in Path("/proc/mounts").read_text().splitlines())


def write(path: Path, mb: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "wb") as fh:
            for _ in range(mb):
                fh.write(b"x" * 2**20)
        return mb
    except OSError:
        return -1


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_tmpfs_quota_refuses_writes_in_sub_folders_and_moves_the_rest_to_disk(tmp_path):
    folder = tmp_path / "evidence"
    quota = EvidenceQuota(folder, limit_mb=8)
    try:
        assert quota.mounted and mounted(folder)
        (folder / "events.jsonl").write_text("{}\n")
        write(folder / "a" / "b" / "c" / "one.bin", 6)
        assert not quota.over()
        assert write(folder / "x" / "y" / "two.bin", 20) == -1, "the kernel refuses writes past the limit"
        assert quota.over()
        used, _ = quota.usage()
        assert used <= 8 + EVIDENCE_SLACK_MB
        (folder / "link").symlink_to("/etc/passwd")
        os.mkfifo(folder / "pipe")
    finally:
        quota.release()
    assert not mounted(folder)
    assert (folder / "events.jsonl").read_text() == "{}\n"
    assert (folder / "a" / "b" / "c" / "one.bin").stat().st_size == 6 * 2**20
    assert not (folder / "link").exists() and not (folder / "link").is_symlink()
    assert not (folder / "pipe").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_sparse_files_are_not_blown_up_on_disk(tmp_path):
    folder = tmp_path / "evidence"
    quota = EvidenceQuota(folder, limit_mb=4)
    try:
        with open(folder / "sparse.bin", "wb") as fh:
            fh.truncate(50 * 2**30)  # 50 GB that the tmpfs holds as nothing
    finally:
        quota.release()
    assert not (folder / "sparse.bin").exists()


def test_walk_quota_counts_every_sub_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_NO_EVIDENCE_TMPFS", "1")
    folder = tmp_path / "evidence"
    quota = EvidenceQuota(folder, limit_mb=8)
    assert not quota.mounted
    write(folder / "top.bin", 4)
    assert not quota.over()
    write(folder / "a" / "b" / "c" / "d" / "deep.bin", 5)
    assert quota.over()
    quota.release()
    assert (folder / "a" / "b" / "c" / "d" / "deep.bin").exists()


def test_walk_quota_counts_files_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_NO_EVIDENCE_TMPFS", "1")
    monkeypatch.setattr(base, "EVIDENCE_MAX_FILES", 50)
    folder = tmp_path / "evidence"
    quota = EvidenceQuota(folder, limit_mb=8)
    for i in range(60):
        (folder / f"f{i}").mkdir(parents=True)
    assert quota.over()


def test_a_folder_that_already_holds_files_is_not_mounted_over(tmp_path):
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "kept.txt").write_text("kept")
    quota = EvidenceQuota(folder, limit_mb=8)
    assert not quota.mounted and (folder / "kept.txt").read_text() == "kept"
    quota.release()



def _remove(folder: Path) -> None:
    """Remove a tree of folders `d` nested to any depth, by descriptor (shutil.rmtree recurses)."""
    fds = [os.open(folder, os.O_RDONLY)]
    while True:
        for name in os.listdir(fds[-1]):
            if name != "d":
                os.unlink(name, dir_fd=fds[-1])
        try:
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        except FileNotFoundError:
            break
    while len(fds) > 1:
        os.close(fds.pop())
        os.rmdir("d", dir_fd=fds[-1])
    os.close(fds.pop())


def test_moving_a_deeply_nested_evidence_folder_to_disk_keeps_the_top_and_drops_the_depths(tmp_path):
    """A job that nests 1,100 folders in its evidence made the move off the tmpfs raise RecursionError: its
    record became the grader's internal error at every run, and its job folder stayed in /tmp."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "events.jsonl").write_text("{}\n")
    fds = [os.open(source, os.O_RDONLY)]
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=fds[-1])
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        base._move_tree(source, target, 2**20)
        assert (target / "events.jsonl").read_text() == "{}\n"
        levels, folder = 0, target
        while (folder / "d").is_dir():
            folder, levels = folder / "d", levels + 1
        assert 0 < levels <= base.MAX_MOVED_DEPTH
    finally:
        for fd in fds:
            os.close(fd)
        _remove(source)
        _remove(target)


def test_folders_past_the_path_length_limit_are_dropped_not_fatal(tmp_path):
    """Twenty folders of 250-character names (made with chdir, as a job can) are a path longer than the
    system takes in one call: what cannot be named is dropped, the rest is moved."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "events.jsonl").write_text("{}\n")
    fd = os.open(source, os.O_RDONLY)
    for _ in range(20):
        os.mkdir("d" * 250, dir_fd=fd)
        inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    base._move_tree(source, target, 2**20)
    assert (target / "events.jsonl").read_text() == "{}\n"
    assert (target / ("d" * 250)).is_dir()
