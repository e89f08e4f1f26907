"""Per-sample signatures that survive the usual preprocessing, and matching them (trusted side).

The probe computes the same signatures inside the student's process (`harness/probe/
harness_probe_data.py`); the harness may not import the probe, so the few lines of the algorithm
are repeated here, and a test checks that both give identical results. Each sample is min-max
normalised (so dtype casts, /255, /127.5 - 1 and reshapes do not change it) and reduced to its
normalised mean, spread and the means of 64 bands of pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIGNATURE_BANDS = 64
VERSION = 7  # bump when the signature changes: cached holdout signatures are keyed by it
CHUNK = 4096  # rows at a time at most
CHUNK_BYTES = 32 * 2**20  # and at most this much of float32 per chunk (each thread copies one)
WORKERS = 4  # threads computing signatures at most
FAR = 256  # rows whose offset is more than this many times their range are normalised value by value
TOLERANCE = 4e-3


def signatures(array, extent=None):
    """(N, 2 + 64) float16: per-sample normalised mean, spread and the means of 64 bands of pixels.
    Computed from the raw values (min, max, band sums and the sum of squares about the minimum, then
    normalised: a few passes over the data instead of a normalised copy), in up to WORKERS threads of
    whole chunks (numpy lets go of the GIL in each pass); rows with non-finite values take the
    element-wise way. `extent`, a list, receives the array's [min, max] (in float32; NaN if any value is NaN)."""
    n = len(array)
    flat_size = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    bands = min(SIGNATURE_BANDS, flat_size)
    starts = np.linspace(0, flat_size, bands + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, flat_size)).astype(np.float32)
    out = np.zeros((n, 2 + SIGNATURE_BANDS), dtype=np.float16)
    rows = max(1, min(CHUNK, CHUNK_BYTES // (4 * flat_size)))  # 224 x 224 x 3 images: 55 at a time
    ends = np.full((-(-n // rows), 2), np.nan, dtype=np.float32)  # each chunk's min and max

    def chunk(start):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # huge or non-finite inputs
            block = np.array(array[start:start + rows], dtype=np.float32).reshape(-1, flat_size)  # a copy: changed below
            low, high = block.min(axis=1, keepdims=True), block.max(axis=1, keepdims=True)
            ends[start // rows] = low.min(), high.max()
            span = high - low
            span[~(span > 0)] = 1.0  # a constant sample
            band = np.add.reduceat(block, starts, axis=1)
            mean = band.sum(axis=1, keepdims=True) / flat_size - low  # about the minimum, as the squares
            block -= low
            square = np.einsum("ij,ij->i", block, block)[:, None] / flat_size
            spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
            sig = np.concatenate([mean / span, spread / span, (band / sizes - low) / span], axis=1)
            # a large offset against a small range (x / 255 + 30,000) leaves the float32 sums too few digits
            # for the normalised means: those rows, like non-finite ones, take the element-wise way
            odd = np.flatnonzero(~np.isfinite(sig).all(axis=1) | (np.abs(low[:, 0]) > FAR * span[:, 0]))
            if len(odd):
                raw = np.asarray(array[start:start + rows])[odd]  # those rows only, from the values as given
                sig[odd] = _elementwise(raw.astype(np.float32).reshape(-1, flat_size), starts, sizes)
        out[start:start + len(block), :2 + bands] = sig

    _in_threads(chunk, range(0, n, rows))
    if extent is not None and n:
        extent[:] = [float(ends[:, 0].min()), float(ends[:, 1].max())]
    return out


def _in_threads(work, items):
    """`work(item)` for every item, in up to WORKERS threads (one when there are few items); the first
    exception of any thread is raised here."""
    import os
    import threading
    items = list(items)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    count = max(1, min(WORKERS, cores, len(items) // 2))
    if count == 1:
        for item in items:
            work(item)
        return
    failed = []

    def run(share):
        try:
            for item in share:
                work(item)
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=run, args=(items[i::count],), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]


def _elementwise(block, starts, sizes):
    """Signatures of samples with non-finite values or an offset far larger than their range: the range is
    that of the finite values (a NaN or an infinite pixel does not hide the image), NaN then counts as the
    minimum, +-inf as the ends."""
    import warnings
    finite = np.where(np.isfinite(block), block, np.nan)
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row of no finite value: low and span stay NaN
        low = np.nanmin(finite, axis=1, keepdims=True)
        span = np.nanmax(finite, axis=1, keepdims=True) - low
        low[~np.isfinite(low)] = 0.0
        span[~(span > 0) | ~np.isfinite(span)] = 1.0
        norm = np.nan_to_num((block - low) / span, nan=0.0, posinf=1.0, neginf=0.0)
    return np.concatenate([norm.mean(axis=1, keepdims=True), norm.std(axis=1, keepdims=True),
                           np.add.reduceat(norm, starts, axis=1) / sizes], axis=1)


def match(probe: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices into `probe`, indices into `reference`) of samples that are the same image: the
    nearest reference signature (max-norm, a k-d tree) lies within TOLERANCE."""
    if len(probe) == 0 or len(reference) == 0:
        return np.empty(0, int), np.empty(0, int)
    from scipy.spatial import cKDTree
    ref_ok = np.flatnonzero(np.all(np.isfinite(reference), axis=1))
    probe_ok = np.flatnonzero(np.all(np.isfinite(probe), axis=1))
    if not len(ref_ok) or not len(probe_ok):
        return np.empty(0, int), np.empty(0, int)
    ref_ok = _distinct(reference, ref_ok)
    tree = cKDTree(reference[ref_ok].astype(np.float32), balanced_tree=False, compact_nodes=False)  # quicker to build
    distance, nearest = tree.query(probe[probe_ok].astype(np.float32), k=1, p=np.inf, distance_upper_bound=TOLERANCE,
                                   workers=-1)
    found = np.flatnonzero(np.isfinite(distance))
    return probe_ok[found], ref_ok[nearest[found]].astype(int)


def _distinct(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`rows` of `array` without repeats of an identical row (the first of each kept, in order): a k-d tree cannot
    split equal points, so thousands of identical images (constant or zero images, a repeated sample) made one
    leaf that every query scanned: minutes of the host's time for one submission. Matching needs each value once."""
    block = np.ascontiguousarray(array[rows])
    if len(block) < 2 or block.ndim != 2:
        return rows
    _, first = np.unique(block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel(),
                         return_index=True)
    return rows if len(first) == len(rows) else rows[np.sort(first)]


def matched_rows(probe: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The distinct rows of `probe` that have a row of `reference` within TOLERANCE: what `match` finds,
    with the k-d tree built on the smaller array (building it is most of the cost). When `probe` is the
    smaller, each reference row's nearest probe row is found; a probe row near a reference row whose
    nearest is another probe row lies within 2 x TOLERANCE of that one, so the rows not found that have a
    found row that near are checked one by one as well. Each row asks for its one nearest found row, never
    for all of them: a probe of many near-identical rows (a submission's choice) costs no more than others."""
    if len(probe) >= len(reference):
        return np.unique(match(probe, reference)[0])
    _, found = match(reference, probe)
    found = np.unique(found)
    if len(found):
        from scipy.spatial import cKDTree
        rest = np.setdiff1d(np.flatnonzero(np.all(np.isfinite(probe), axis=1)), found)
        if len(rest):
            tree = cKDTree(probe[found].astype(np.float32), balanced_tree=False, compact_nodes=False)
            # a little over 2 x TOLERANCE: a superset of the rows to check, each then checked exactly
            distance, _ = tree.query(probe[rest].astype(np.float32), k=1, p=np.inf,
                                     distance_upper_bound=2.01 * TOLERANCE, workers=-1)
            others = rest[np.isfinite(distance)]
            if len(others):
                rows, _ = match(probe[others], reference)
                found = np.union1d(found, others[rows])
    return found


def holdout_signatures(images_file: Path) -> np.ndarray:
    """Signatures of a holdout array, cached next to it (never inside any sandbox)."""
    cache = images_file.parent.parent / f"holdout-signatures-v{VERSION}.npy"
    if cache.exists() and cache.stat().st_mtime >= images_file.stat().st_mtime:
        return np.load(cache)
    sig = signatures(np.load(images_file, mmap_mode="r"))
    np.save(cache, sig)
    forget_older(cache.parent)
    return sig


def forget_older(folder: Path) -> None:
    """Remove the cached holdout signatures of earlier signature versions in `folder` (one file each per
    dataset: never read again once VERSION changed)."""
    for old in folder.glob("holdout-signatures-v*.npy"):
        if old.name != f"holdout-signatures-v{VERSION}.npy" and not old.is_symlink():
            try:
                old.unlink()
            except OSError:
                pass
