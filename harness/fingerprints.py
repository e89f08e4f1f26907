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
VERSION = 6  # bump when the signature changes: cached holdout signatures are keyed by it
CHUNK = 4096
FAR = 256  # rows whose offset is more than this many times their range are normalised value by value
TOLERANCE = 4e-3


def signatures(array: np.ndarray) -> np.ndarray:
    """(N, 2 + 64) float16: per-sample normalised mean, spread and the means of 64 bands of pixels.
    Computed from the raw values (mean, std and band sums, then normalised: a few passes over the data
    instead of a normalised copy); rows with non-finite values take the element-wise way."""
    n = len(array)
    flat_size = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    bands = min(SIGNATURE_BANDS, flat_size)
    starts = np.linspace(0, flat_size, bands + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, flat_size)).astype(np.float32)
    out = np.zeros((n, 2 + SIGNATURE_BANDS), dtype=np.float16)
    for start in range(0, n, CHUNK):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # huge or non-finite inputs
            block = np.asarray(array[start:start + CHUNK], dtype=np.float32).reshape(-1, flat_size)
            low = block.min(axis=1, keepdims=True)
            span = block.max(axis=1, keepdims=True) - low
            span[~(span > 0)] = 1.0  # a constant sample
            band = np.add.reduceat(block, starts, axis=1)
            sig = np.concatenate([(band.sum(axis=1, keepdims=True) / flat_size - low) / span,
                                  block.std(axis=1, keepdims=True) / span, (band / sizes - low) / span], axis=1)
            # a large offset against a small range (x / 255 + 30,000) leaves the float32 sums too few digits
            # for the normalised means: those rows, like non-finite ones, take the element-wise way
            odd = np.flatnonzero(~np.isfinite(sig).all(axis=1) | (np.abs(low[:, 0]) > FAR * span[:, 0]))
            if len(odd):
                sig[odd] = _elementwise(block[odd], starts, sizes)
        out[start:start + len(block), :2 + bands] = sig
    return out


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
    tree = cKDTree(reference[ref_ok].astype(np.float32))
    distance, nearest = tree.query(probe[probe_ok].astype(np.float32), k=1, p=np.inf, distance_upper_bound=TOLERANCE)
    found = np.flatnonzero(np.isfinite(distance))
    return probe_ok[found], ref_ok[nearest[found]].astype(int)


def holdout_signatures(images_file: Path) -> np.ndarray:
    """Signatures of a holdout array, cached next to it (never inside any sandbox)."""
    cache = images_file.parent.parent / f"holdout-signatures-v{VERSION}.npy"
    if cache.exists() and cache.stat().st_mtime >= images_file.stat().st_mtime:
        return np.load(cache)
    sig = signatures(np.load(images_file, mmap_mode="r"))
    np.save(cache, sig)
    return sig
