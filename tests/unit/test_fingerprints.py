import importlib.util
import sys

import numpy as np

from harness import fingerprints


def probe_data_module(root):
    """The probe's copy of the signature code, loaded by path (the harness never imports it)."""
    sys.path.insert(0, str(root / "harness" / "probe"))
    try:
        spec = importlib.util.spec_from_file_location("probe_data_copy", root / "harness" / "probe" / "harness_probe_data.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.pop(0)


def images(n=300, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def test_probe_and_harness_compute_the_same_signatures(root):
    x = images()
    assert np.array_equal(probe_data_module(root).signatures(x), fingerprints.signatures(x))


def test_usual_preprocessing_still_matches():
    raw = images()
    for transformed in (raw / 255.0, (raw / 127.5 - 1).astype(np.float32), raw.reshape(-1, 28, 28, 1).astype("float32"),
                        raw.astype(np.float64).reshape(-1, 784)):
        rows, refs = fingerprints.match(fingerprints.signatures(transformed[:100]), fingerprints.signatures(raw))
        assert sorted(rows) == list(range(100)) and list(refs) == list(rows)


def test_different_images_do_not_match():
    rows, _ = fingerprints.match(fingerprints.signatures(images(seed=1)), fingerprints.signatures(images(seed=2)))
    assert len(rows) == 0


def test_sparse_digit_like_images_are_told_apart():
    rng = np.random.default_rng(3)
    base = np.zeros((500, 28, 28), dtype=np.uint8)
    for img in base:  # a few strokes on black, like MNIST
        r = rng.integers(4, 24, size=6)
        img[r[0]:r[0] + 3, r[1]:r[1] + 10] = 255
        img[r[2]:r[2] + 10, r[3]:r[3] + 2] = rng.integers(100, 256)
    rows, refs = fingerprints.match(fingerprints.signatures(base[:250] / 255.0), fingerprints.signatures(base[250:]))
    assert len(rows) <= 2
    rows, refs = fingerprints.match(fingerprints.signatures(base / 255.0), fingerprints.signatures(base[250:]))
    assert set(range(250, 500)) <= set(rows)


def test_huge_and_non_finite_values_do_not_break_matching():
    raw = images(50)
    huge = raw.astype(np.float64) * 1e35
    rows, _ = fingerprints.match(fingerprints.signatures(huge), fingerprints.signatures(raw))
    assert len(rows) == 50
    broken = raw.astype(np.float32)
    broken[0, 0, 0] = np.nan
    broken[1, 0, 0] = np.inf
    rows, _ = fingerprints.match(fingerprints.signatures(broken), fingerprints.signatures(raw))
    assert set(range(2, 50)) <= set(rows)


def test_the_fast_way_agrees_with_normalising_every_value(root):
    """signatures() normalises the sums, not each value; it must give what min-max normalising every
    value gives (within float16 rounding), and take the element-wise way for rows it cannot sum."""
    rng = np.random.default_rng(4)
    x = np.concatenate([images(200).astype(np.float32), rng.normal(100, 0.5, (50, 28, 28)).astype(np.float32),
                        np.full((3, 28, 28), 7, np.float32), (images(20) * 1e35).astype(np.float32)])
    x[0, 0, 0], x[1, 3, 3], x[2, 5, 5] = np.nan, np.inf, -np.inf
    flat = x.reshape(len(x), -1)
    starts = np.linspace(0, 784, 65).astype(int)[:-1]
    expected = fingerprints._elementwise(flat, starts, np.diff(np.append(starts, 784)).astype(np.float32))
    got = fingerprints.signatures(x).astype(np.float32)
    assert np.all(np.isfinite(got))
    assert np.all(np.abs(got - expected) < 2e-3 * np.maximum(1, np.abs(expected)))  # float16 steps: 4.9e-4 near 1
    assert np.array_equal(probe_data_module(root).signatures(x), fingerprints.signatures(x))


def test_a_large_offset_does_not_hide_the_test_images(root):
    """x / 255 + 30,000 in float32 still tells every grey level apart (a first layer subtracting the offset
    trains as well as on x / 255): the signatures must still find the images, as normalising each value does."""
    raw = np.random.default_rng(5).integers(0, 256, size=(100, 32, 32, 3), dtype=np.uint8)
    for offset in (3e4, 1e5):
        shifted = (raw / 255.0 + offset).astype(np.float32)
        rows, _ = fingerprints.match(fingerprints.signatures(shifted), fingerprints.signatures(raw))
        assert len(rows) == 100, offset
        assert np.array_equal(probe_data_module(root).signatures(shifted), fingerprints.signatures(shifted))


def test_one_non_finite_pixel_does_not_hide_an_image():
    """A NaN or an infinite pixel in each image (the model can ignore one pixel) counts as the image's darkest
    (NaN, -inf) or brightest (+inf) value; the rest of the image is normalised by its finite range, so the
    image matches itself with that pixel at its end (before, the whole row became zeros)."""
    raw = (images(60) / 255.0).astype(np.float32)
    flat = raw.reshape(len(raw), -1)
    for bad, end in ((np.nan, flat.min(axis=1)), (-np.inf, flat.min(axis=1)), (np.inf, flat.max(axis=1))):
        poisoned, same = raw.copy(), raw.copy()
        poisoned[:, 0, 0] = bad
        same[:, 0, 0] = end
        rows, refs = fingerprints.match(fingerprints.signatures(poisoned), fingerprints.signatures(same))
        assert len(rows) == 60 and list(rows) == list(refs), bad


def test_threads_give_what_one_thread_gives(root, monkeypatch):
    """Signatures of a large array are computed in several threads, chunk by chunk; the result (odd rows
    included) is the one thread's, in both copies of the code."""
    x = (images(3 * fingerprints.CHUNK + 77, seed=6) / 255.0).astype(np.float32)
    x[5, 0, 0], x[-1, 1, 1] = np.nan, 3e4
    probe = probe_data_module(root)
    threaded = fingerprints.signatures(x)
    monkeypatch.setattr(fingerprints, "WORKERS", 1)
    monkeypatch.setattr(probe, "WORKERS", 1)
    assert np.array_equal(fingerprints.signatures(x), threaded)
    assert np.array_equal(probe.signatures(x), threaded)


def test_signatures_leave_the_students_array_as_it_was(root):
    """The probe computes signatures of the student's own arrays: a float32 array (which converting to float32
    does not copy) must come back unchanged."""
    x = (images(500, seed=7) / 255.0).astype(np.float32)
    before = x.copy()
    probe_data_module(root).signatures(x)
    assert np.array_equal(x, before)


def test_the_signatures_pass_also_finds_the_arrays_min_and_max(root):
    """describe_data's min and max come from the signatures' pass (the probe skips two more passes): they must
    be the array's own, in both copies, NaN when a value is NaN."""
    x = images(3 * fingerprints.CHUNK + 5, seed=8) / 127.5 - 1
    x[7, 1, 1], x[-1, 2, 2] = -3.5, 9.25
    for signatures in (fingerprints.signatures, probe_data_module(root).signatures):
        extent = []
        signatures(x, extent)
        assert extent == [-3.5, 9.25]
        x[100, 0, 0] = np.nan
        extent = []
        signatures(x, extent)
        assert np.isnan(extent[0]) and np.isnan(extent[1])
        x[100, 0, 0] = 0


def test_matched_rows_finds_what_match_finds_with_the_tree_on_either_side():
    """matched_rows builds its tree on the smaller array; the rows it finds must be match's, also when a
    probe row's nearest reference row is nearer to another probe row (near-duplicates in the probe)."""
    rng = np.random.default_rng(9)
    reference = fingerprints.signatures(images(2000, seed=10)).astype(np.float32)
    probe = np.concatenate([reference[:40], reference[:40] + 0.0015, reference[:40] - 0.0015,
                            fingerprints.signatures(images(300, seed=11))]).astype(np.float16)
    probe[5, 0] = np.nan
    rng.shuffle(probe)
    expected = np.unique(fingerprints.match(probe, reference)[0])
    assert len(expected) > 100
    assert np.array_equal(fingerprints.matched_rows(probe, reference), expected)
    assert np.array_equal(fingerprints.matched_rows(reference, probe), np.unique(fingerprints.match(reference, probe)[0]))
    assert len(fingerprints.matched_rows(probe[:0], reference)) == 0


def test_cached_signatures_of_earlier_versions_are_removed(tmp_path):
    folder = tmp_path / "data" / "test"
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", images(20))
    stale = tmp_path / "data" / f"holdout-signatures-v{fingerprints.VERSION - 1}.npy"
    np.save(stale, np.zeros(3))
    sig = fingerprints.holdout_signatures(folder / "images.npy")
    assert not stale.exists() and len(sig) == 20
    assert (tmp_path / "data" / f"holdout-signatures-v{fingerprints.VERSION}.npy").is_file()


def test_matched_rows_of_many_near_identical_rows_keeps_its_memory_small():
    """A submission's validation set of many distinct rows all within 2 x TOLERANCE of each other, each also in
    the training set: matched_rows once listed every such row's neighbours (n x n indices: 10,000 rows took
    gigabytes of the host's memory). It finds the same rows as match, in a few megabytes."""
    import tracemalloc
    rng = np.random.default_rng(3)
    n = 1500
    probe = (np.full((1, 66), 0.5, dtype=np.float16) + rng.integers(0, 8, size=(n, 66)) * np.float16(0.000488))
    probe = probe.astype(np.float16)
    assert len(np.unique(probe, axis=0)) == n
    reference = np.concatenate([probe[::2], rng.random((3 * n, 66)).astype(np.float16)])
    tracemalloc.start()
    try:
        found = fingerprints.matched_rows(probe, reference)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(found, np.unique(fingerprints.match(probe, reference)[0]))
    assert peak < 20e6


def test_match_builds_its_tree_on_each_distinct_row_once(monkeypatch):
    """Thousands of identical signatures (a submission's all-zero or repeated images, as training and validation
    data) made one k-d tree leaf that every query scanned in full: minutes of the host's time. The tree holds
    each distinct row once; what is found is unchanged."""
    import scipy.spatial
    sizes = []
    real = scipy.spatial.cKDTree

    def recording(data, *args, **kwargs):
        sizes.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(scipy.spatial, "cKDTree", recording)
    rows = fingerprints.signatures(images(3, seed=12))
    reference = np.concatenate([np.repeat(rows[:1], 3000, axis=0), rows[1:2], np.repeat(rows[:1], 100, axis=0)])
    probe = np.concatenate([np.repeat(rows[:1], 500, axis=0), rows[1:]])
    found, refs = fingerprints.match(probe, reference)
    assert sizes == [2]
    assert list(found) == list(range(501)) and set(refs) == {0, 3000}
    assert np.array_equal(fingerprints.matched_rows(probe, reference), np.arange(501))
    assert max(sizes) <= 3  # the probe's three distinct rows, when matched_rows builds its tree on the probe


def test_large_images_are_taken_a_few_at_a_time(root, monkeypatch):
    """Chunks are bounded in bytes as well as rows (each thread copies one chunk in the student's process, whose
    memory is limited): 4,096 images of 224 x 224 x 3 would be 2.4 GB a chunk. Smaller chunks give the same rows."""
    x = np.random.default_rng(12).integers(0, 256, size=(40, 64, 64, 3), dtype=np.uint8)
    whole = fingerprints.signatures(x)
    probe = probe_data_module(root)
    for module in (fingerprints, probe):
        monkeypatch.setattr(module, "CHUNK_BYTES", 3 * 64 * 64 * 3 * 4)  # three images a chunk: 14 chunks
        extent = []
        assert np.array_equal(module.signatures(x, extent), whole)
        assert extent == [float(x.min()), float(x.max())]
