"""The environment every sandboxed job starts with: numpy's huge-page setting follows the kernel's THP defrag."""

import pytest

from harness.sandbox.base import numpy_env


@pytest.mark.parametrize("line, expected", [
    ("always defer defer+madvise [madvise] never\n", {"NUMPY_MADVISE_HUGEPAGE": "0"}),
    ("[always] defer defer+madvise madvise never\n", {"NUMPY_MADVISE_HUGEPAGE": "0"}),
    ("always defer [defer+madvise] madvise never\n", {"NUMPY_MADVISE_HUGEPAGE": "0"}),
    ("always [defer] defer+madvise madvise never\n", {}),
    ("always defer defer+madvise madvise [never]\n", {}),
    ("garbled\n", {}),
])
def test_numpy_huge_pages_off_only_where_faults_compact(tmp_path, line, expected):
    defrag = tmp_path / "defrag"
    defrag.write_text(line)
    assert numpy_env(str(defrag)) == expected


def test_no_thp_file_sets_nothing(tmp_path):
    assert numpy_env(str(tmp_path / "missing")) == {}
