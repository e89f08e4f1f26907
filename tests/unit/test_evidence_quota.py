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
