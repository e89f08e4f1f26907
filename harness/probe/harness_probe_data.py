"""The probe's data lineage: where the arrays, generators and pipelines fed to `fit` came from.

Part of the probe (runs in the untrusted process, only observes, never raises into student
code, imports nothing from the `harness` package). It records:
- per-sample signatures of arrays (robust to dtype casts, /255, /127.5 - 1 and reshapes: each
  sample is min-max normalised before its mean, spread and 64 band means are kept), written as
  `sig-<n>.npy` files in the evidence folder for the harness to compare with the holdout;
- content hashes of the image files behind directory iterators and `image_dataset_from_directory`;
- where each generator, iterator or pipeline was created, and which `tf.data` maps apply random
  operations (tf.image.random_*, tf.random.*, Random* layers called with training=True);
- what `Normalization.adapt` and `ImageDataGenerator.fit` were fitted on.
"""

import functools
import hashlib
import json
import os
import sys
import threading

import harness_probe as core

SIGNATURE_BANDS = 64
CHUNK = 4096  # rows at a time at most
CHUNK_BYTES = 32 * 2**20  # and at most this much of float32 per chunk (each thread copies one)
WORKERS = 4  # threads computing signatures at most
FAR = 256  # rows whose offset is more than this many times their range are normalised value by value
MAX_FILES = 200_000

_local = threading.local()
_origins = {}       # id(object) -> {"where": ..., "what": ...}
_random_maps = {}   # id(dataset) -> {"where": ..., "ops": [...]}
_keep = []          # objects whose ids are keys above stay alive, so ids are not reused
_counter = {"sig": 0, "files": 0}


def _remember(obj, table, value):
    try:
        table[id(obj)] = value
        _keep.append(obj)
    except BaseException:
        pass


# ---------------------------------------------------------------- signatures and file hashes


def signatures(array, extent=None):
    """(N, 2 + 64) float16: per-sample normalised mean, spread and the means of 64 bands of pixels.
    Computed from the raw values (min, max, band sums and the sum of squares about the minimum, then
    normalised: a few passes over the data instead of a normalised copy), in up to WORKERS threads of
    whole chunks (numpy lets go of the GIL in each pass); rows with non-finite values take the
    element-wise way. `extent`, a list, receives the array's [min, max] (in float32; NaN if any value is NaN)."""
    import numpy as np
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
    import numpy as np
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


def _save_signatures(array, described=False):
    """Writes the signatures of `array`; `described`: the array is about to be described (describe_data),
    which then takes its min and max from this pass instead of two more passes over the data."""
    import numpy as np
    _counter["sig"] += 1
    name = "sig-%d.npy" % _counter["sig"]
    extent = []
    np.save(os.path.join(core.EVIDENCE_DIR, name), signatures(array, extent))
    if described and extent:
        core.known_range(array, extent)
    return name


def _hash_files(paths):
    _counter["files"] += 1
    name = "files-%d.json" % _counter["files"]
    hashes = {}
    for path in list(paths)[:MAX_FILES]:
        try:
            with open(path, "rb") as fh:
                hashes[str(path)] = hashlib.sha1(fh.read()).hexdigest()
        except OSError:
            continue
    with open(os.path.join(core.EVIDENCE_DIR, name), "w") as fh:
        json.dump(hashes, fh)
    return name


def _ancestors(dataset, limit=200):
    """A tf.data dataset and every dataset it was built from."""
    seen, todo, out = set(), [dataset], []
    while todo and len(out) < limit:
        ds = todo.pop()
        if id(ds) in seen:
            continue
        seen.add(id(ds))
        out.append(ds)
        try:
            todo.extend(ds._inputs())
        except BaseException:
            pass
    return out


def lineage(value, role):
    """Extra evidence about one thing passed to fit (an array, a generator, a pipeline)."""
    out = {}
    try:
        if value is None or isinstance(value, (list, tuple)):
            return out
        origin = _origins.get(id(value))
        if origin:
            out["origin"] = origin
        if hasattr(value, "shape") and hasattr(value, "dtype") and len(getattr(value, "shape", ())) >= 2 \
                and role in ("x", "validation_x"):
            out["signatures"] = _save_signatures(value, described=True)
        paths = getattr(value, "filepaths", None)
        if paths is None and hasattr(value, "element_spec"):
            for ds in _ancestors(value):
                paths = getattr(ds, "file_paths", None)
                if paths is not None:
                    out.setdefault("origin", _origins.get(id(ds)))
                    break
        if paths is not None and role in ("x", "validation_x"):
            out["files"] = _hash_files(paths)
        if hasattr(value, "element_spec"):
            randoms = [_random_maps[id(ds)] for ds in _ancestors(value) if id(ds) in _random_maps]
            if randoms:
                out["random_maps"] = randoms
        array = getattr(value, "x", None)  # NumpyArrayIterator from ImageDataGenerator.flow
        if array is not None and hasattr(array, "shape") and role in ("x", "validation_x"):
            out["signatures"] = _save_signatures(array)
    except BaseException as exc:
        core._problem("lineage", exc)
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------- wrappers


def _wrap_creation(original, what):
    """Iterators and datasets: remember where they were made."""
    @functools.wraps(original)
    def create(*args, **kwargs):
        result = original(*args, **kwargs)
        try:
            info = {"what": what, "where": core._where()}
            for key in ("subset", "seed", "validation_split", "shuffle", "image_size", "target_size",
                        "interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "color_mode"):
                if key in kwargs and core._plain(kwargs[key]) is not None:
                    info[key] = core._plain(kwargs[key])
            directory = args[0] if args else kwargs.get("directory")
            if isinstance(directory, str):
                info["directory"] = directory
            _remember(result, _origins, info)
            if isinstance(result, (list, tuple)):  # image_dataset_from_directory(subset="both")
                for item in result:
                    _remember(item, _origins, info)
        except BaseException as exc:
            core._problem("creation " + what, exc)
        return result
    create.__harness_probe__ = True
    return create


def _wrap_method_creation(original, what):
    @functools.wraps(original)
    def create(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        try:
            info = {"what": what, "where": core._where(), "generator": core._generator_config(self)}
            if "subset" in kwargs and core._plain(kwargs["subset"]) is not None:
                info["subset"] = kwargs["subset"]
            _remember(result, _origins, info)
        except BaseException as exc:
            core._problem("creation " + what, exc)
        return result
    create.__harness_probe__ = True
    return create


def _wrap_fitted_on(original, what):
    """Normalization.adapt / ImageDataGenerator.fit: record what the statistics came from."""
    @functools.wraps(original)
    def fitted(self, data, *args, **kwargs):
        try:
            event = {"what": what, "where": core._where(), "data": core.describe_data(data)}
            if hasattr(data, "shape") and hasattr(data, "dtype") and len(data.shape) >= 2:
                event["signatures"] = _save_signatures(data)
            core._emit("statistics_fit", **event)
        except BaseException as exc:
            core._problem("statistics " + what, exc)
        return original(self, data, *args, **kwargs)
    fitted.__harness_probe__ = True
    return fitted


def _wrap_map(original):
    @functools.wraps(original)
    def map(self, *args, **kwargs):
        outer = getattr(_local, "tracing", None)
        _local.tracing = []
        try:
            result = original(self, *args, **kwargs)
            ops = _local.tracing
        finally:
            _local.tracing = outer
        if ops:
            try:
                _remember(result, _random_maps, {"where": core._where(), "ops": sorted(set(ops))[:10]})
            except BaseException as exc:
                core._problem("map", exc)
        return result
    map.__harness_probe__ = True
    return map


def _wrap_random_op(original, name):
    @functools.wraps(original)
    def op(*args, **kwargs):
        tracing = getattr(_local, "tracing", None)
        if tracing is not None:
            tracing.append(name)
        return original(*args, **kwargs)
    op.__harness_probe__ = True
    return op


def _wrap_layer_call(original):
    @functools.wraps(original)
    def call(self, *args, **kwargs):
        tracing = getattr(_local, "tracing", None)
        if tracing is not None and kwargs.get("training") is True and type(self).__name__.startswith("Random"):
            tracing.append(type(self).__name__ + "(training=True)")
        return original(self, *args, **kwargs)
    call.__harness_probe__ = True
    return call


# ---------------------------------------------------------------- hooks


def _patch_generator_class(module):
    cls = module.ImageDataGenerator
    for name in ("flow", "flow_from_directory", "flow_from_dataframe"):
        core._patch(cls, name, _wrap_method_creation, name)
    core._patch(module.Iterator, "__next__", core._wrap_data_iter)  # custom loops: next(generator)
    core._patch(cls, "fit", _wrap_fitted_on, "ImageDataGenerator.fit")


def _patch_dataset_from_directory(module):
    original = getattr(module, "image_dataset_from_directory", None)
    if original is not None and not getattr(original, "__harness_probe__", False):
        module.image_dataset_from_directory = _wrap_creation(original, "image_dataset_from_directory")


def _patch_normalization(module):
    core._patch(module.Normalization, "adapt", _wrap_fitted_on, "Normalization.adapt")


def _patch_dataset_ops(module):
    core._patch(module.DatasetV2, "map", _wrap_map)
    core._patch(module.DatasetV2, "__iter__", core._wrap_data_iter)  # custom loops: for x, y in dataset


def _patch_random_ops(module):
    for name in dir(module):
        if name.startswith(("random_", "stateless_random_")):
            fn = getattr(module, name)
            if callable(fn) and not getattr(fn, "__harness_probe__", False):
                setattr(module, name, _wrap_random_op(fn, name))


def _patch_keras3_preprocessing_base(module):
    core._patch(module.TFDataLayer, "__call__", _wrap_layer_call)


def _patch_tf_keras_random_base(module):
    core._patch(module.BaseRandomLayer, "__call__", _wrap_layer_call)


HOOKS = {
    "keras.src.legacy.preprocessing.image": _patch_generator_class,
    "tf_keras.src.preprocessing.image": _patch_generator_class,
    "keras.src.utils.image_dataset_utils": _patch_dataset_from_directory,
    "tf_keras.src.utils.image_dataset": _patch_dataset_from_directory,
    "keras.src.layers.preprocessing.normalization": _patch_normalization,
    "tf_keras.src.layers.preprocessing.normalization": _patch_normalization,
    "tensorflow.python.data.ops.dataset_ops": _patch_dataset_ops,
    "tensorflow.python.ops.image_ops_impl": _patch_random_ops,
    "tensorflow.python.ops.random_ops": _patch_random_ops,
    "tensorflow.python.ops.stateless_random_ops": _patch_random_ops,
    "keras.src.layers.preprocessing.tf_data_layer": _patch_keras3_preprocessing_base,
    "tf_keras.src.engine.base_layer": _patch_tf_keras_random_base,
}
