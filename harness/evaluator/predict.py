"""Runs in the evaluation sandbox: the saved model + holdout images (no labels) → predictions.

Trusted code, but it loads an untrusted model, so it runs sandboxed and imports nothing from
the `harness` package. Writes `predictions.npy` and `status.json` to the output folder; the
harness validates both and scores the predictions against labels that never come here.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile

BATCH_SIZE = 256  # the trusted evaluation predicts in batches of this size (the throughput benchmark too)
TIMING_PASS_SECONDS = 10  # a scoring pass shorter than this is followed by a timing-only pass (best of two)
TIMING_PASS_BATCHES = 40
GRAPH_FILE = "model-graph.zip"  # beside the model: the probe's export of it as a TensorFlow graph
MAX_GRAPH_BYTES = 4 * 2**30
# Keras's directory iterators (ImageDataGenerator.flow_from_directory, load_img) resize with PIL;
# image_dataset_from_directory and tf.data pipelines with tf.image.resize.
PIL_METHODS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
TF_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
# Graph ops that read or write files or call back into Python: never run on the grader's side.
DENIED_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile", "MatchingFiles",
              "ImmutableConst", "LoadAndRemapMatrix", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints",
              "Restore", "RestoreV2", "RestoreSlice", "DeleteFile"}
DENIED_OP_PARTS = ("File", "Reader", "Summary", "Dataset", "PyFunc", "Socket")
PASS_THROUGH = {"Dropout", "Flatten", "Reshape", "Identity", "ActivityRegularization", "SpatialDropout1D",
                "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "AlphaDropout"}


def status(out, **data):
    with open(os.path.join(out, "status.json"), "w") as fh:
        json.dump({**data, "gpus": gpus_seen()}, fh)


def gpus_seen():
    """The GPUs TensorFlow sees in this sandbox (their names), for the record; None when it cannot tell."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    try:
        return [device.name for device in tf.config.list_physical_devices("GPU")]
    except Exception:
        return None


CONFIG_KEYS = (
    "units", "filters", "kernel_size", "strides", "padding", "activation", "pool_size",
    "rate", "use_bias", "target_shape", "scale", "offset", "mode", "factor", "axis",
)


def _shape_list(shape):
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_shape_list(s) for s in shape]
    if hasattr(shape, "as_list"):
        return shape.as_list()
    return [None if d is None else int(d) for d in shape]


def _output_shape(layer):
    try:
        out = layer.output
        if isinstance(out, (list, tuple)):
            return [_shape_list(getattr(o, "shape", None)) for o in out]
        return _shape_list(out.shape)
    except Exception:
        pass
    try:
        return _shape_list(layer.output_shape)
    except Exception:
        return None


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str, type(None))) for v in value):
        return list(value)
    return None


def _size(weights):
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total


def describe(model):
    """The layer table of the loaded model, measured here (the probe's table is only a claim)."""
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        try:
            config = layer.get_config()
        except Exception:
            config = {}
        layers.append({
            "name": str(layer.name), "type": kind, "output_shape": _output_shape(layer),
            "params": int(layer.count_params()) if layer.built else None,
            "trainable": bool(layer.trainable),
            "config": {k: _plain(config[k]) for k in CONFIG_KEYS if k in config and _plain(config[k]) is not None},
        })
    shape = None
    try:
        shape = _shape_list(model.inputs[0].shape)
    except Exception:
        pass
    return {"class": type(model).__name__, "layers": layers, "total_params": int(model.count_params()),
            "trainable_params": _size(model.trainable_weights), "input_shape": shape}


def resize_method(interpolation):
    """('pil' | 'tf', method) from 'pil:nearest', 'tf:area' or a bare name (PIL's when PIL has it)."""
    library, sep, method = str(interpolation).partition(":")
    if not sep:
        library, method = "", library
    method = method.lower()
    if not library:
        library = "pil" if method in PIL_METHODS else "tf"
    if (library, method) not in [("pil", m) for m in PIL_METHODS] + [("tf", m) for m in TF_METHODS]:
        raise ValueError("unknown interpolation %r" % interpolation)
    return library, method


def load_images(folder, ids, size, channels, interpolation):
    """The holdout images at the model's input size, resized the way the submission's own
    pipeline resized its images (PIL or tf.image.resize, with its interpolation)."""
    library, method = resize_method(interpolation)
    if library == "tf":
        return load_images_tf(folder, ids, size, channels, method)
    return load_images_pil(folder, ids, size, channels, method)


def load_images_tf(folder, ids, size, channels, method):
    """As keras's image_dataset_from_directory: decode_image, then tf.image.resize (always)."""
    import numpy as np
    import tensorflow as tf
    paths = [os.path.join(folder, ident) for ident in ids]
    if not paths:
        return np.empty((0, size[0], size[1], channels), dtype=np.float32)

    def load(path):
        img = tf.image.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return tf.cast(tf.image.resize(img, size, method=method), tf.float32)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    return np.concatenate([batch.numpy() for batch in dataset]).astype(np.float32)


def load_images_pil(folder, ids, size, channels, method):
    """As keras's load_img (directory iterators): PIL convert, then resize when the size differs."""
    import numpy as np
    from PIL import Image
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "hamming": Image.HAMMING, "box": Image.BOX, "lanczos": Image.LANCZOS}[method]
    mode = "L" if channels == 1 else "RGB"
    batch = np.empty((len(ids), size[0], size[1], channels), dtype=np.float32)
    for i, ident in enumerate(ids):
        with Image.open(os.path.join(folder, ident)) as img:
            img = img.convert(mode)
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), resample)
            arr = np.asarray(img, dtype=np.float32)
        batch[i] = arr.reshape(size[0], size[1], channels)
    return batch


class LoadFailed(Exception):
    """The model could not be loaded safely, nor its exported graph used."""

    def __init__(self, error, message, graph_error=None):
        super().__init__(message)
        self.error, self.message, self.graph_error = error, message, graph_error


class KerasModel:
    how = "keras"

    def __init__(self, model, keras=None):
        self.model, self._keras = model, keras
        self.input_shape = [None if d is None else int(d) for d in model.inputs[0].shape]

    def predict(self, x, batch_size, on_batch=None):
        """`on_batch()` is called as each batch's predictions are done (Keras's predict callbacks)."""
        callbacks = []
        if on_batch is not None and self._keras is not None:
            class Clock(self._keras.callbacks.Callback):
                def on_predict_batch_end(self, batch, logs=None):
                    on_batch()
            callbacks = [Clock()]
        return self.model.predict(x, batch_size=batch_size, verbose=0, callbacks=callbacks)


class GraphModel:
    """A SavedModel's serving signature, run with TensorFlow graph ops only: no Keras
    deserialisation, none of the submission's Python (a Lambda was traced in the student's sandbox)."""
    how = "graph"

    def __init__(self, folder):
        import tensorflow as tf
        loaded = tf.saved_model.load(folder)
        signature = loaded.signatures.get("serving_default")
        if signature is None:
            raise ValueError("the exported graph has no serving signature")
        ops = graph_ops(signature)
        denied = sorted(op for op in ops if op in DENIED_OPS or any(part in op for part in DENIED_OP_PARTS))
        if denied:
            raise ValueError("the exported graph uses operations that touch files or run Python: "
                             + ", ".join(denied[:10]))
        _, inputs = signature.structured_input_signature
        if len(inputs) != 1 or len(signature.structured_outputs) != 1:
            raise ValueError("the exported graph has %d inputs and %d outputs; one image input and one "
                             "output are expected" % (len(inputs), len(signature.structured_outputs)))
        (self._input, spec), = inputs.items()
        self._output = next(iter(signature.structured_outputs))
        self._dtype = spec.dtype
        self._signature, self._keep = signature, loaded
        self.input_shape = [None if d is None else int(d) for d in spec.shape]

    def predict(self, x, batch_size, on_batch=None):
        import numpy as np
        import tensorflow as tf
        out = []
        for i in range(0, len(x), batch_size):
            out.append(self._signature(**{self._input: tf.constant(x[i:i + batch_size], dtype=self._dtype)})
                       [self._output].numpy())
            if on_batch is not None:
                on_batch()
        return np.concatenate(out) if out else np.empty((0,), dtype=np.float32)


def graph_ops(signature):
    """Every op type in a concrete function's graph and in the functions it calls."""
    graph = signature.graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def extract_graph(archive, target):
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > MAX_GRAPH_BYTES:
            raise ValueError("the exported graph is larger than %d bytes" % MAX_GRAPH_BYTES)
        for info in infos:
            name = os.path.normpath(info.filename)
            if os.path.isabs(name) or name.startswith(".."):
                raise ValueError("the exported graph has a file outside its folder: %r" % info.filename)
        zf.extractall(target)
    return target


HIDDEN_CONSTANT_ELEMENTS = 4096  # a graph constant this large could hold weights the archive does not declare


def _archive_arrays(path):
    """(shape, digest) of every model weight in a .keras archive (the optimizer's state left out)."""
    import hashlib
    import io
    import h5py
    import numpy as np
    found = []
    with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as weights:
        def add(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer"):
                value = np.ascontiguousarray(obj[()], dtype=np.float32)
                found.append((tuple(value.shape), hashlib.sha256(value.tobytes()).hexdigest()))
        weights.visititems(add)
    return sorted(found)


def _constant_elements(signature):
    """The largest constant tensor in the graph and the functions it calls (elements)."""
    graph_def = signature.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    largest = 0
    for node in nodes:
        if node.op == "Const" and "value" in node.attr:
            size = 1
            for dim in node.attr["value"].tensor.tensor_shape.dim:
                size *= max(int(dim.size), 0)
            largest = max(largest, size)
    return largest


def graph_matches_archive(signature, archive):
    """Why the exported graph is not the saved model, or None. The layer table of a graph-scored
    model is read from the archive, so the graph must compute with exactly the archive's weights:
    the variables it captures hold the same arrays, and no large constant hides other weights."""
    import hashlib
    import numpy as np
    try:
        declared = _archive_arrays(archive)
    except Exception as exc:
        return "the saved model's weights cannot be read (%s)" % type(exc).__name__
    used = sorted((tuple(int(d) for d in v.shape),
                   hashlib.sha256(np.ascontiguousarray(v.numpy(), dtype=np.float32).tobytes()).hexdigest())
                  for v in signature.variables)
    if used != declared:
        return ("the exported graph computes with %d weight arrays that are not the %d the saved model holds"
                % (len(used), len(declared)))
    largest = _constant_elements(signature)
    if largest > HIDDEN_CONSTANT_ELEMENTS:
        return "the exported graph holds a constant of %d values that the saved model does not declare" % largest
    return None


def load_model_or_graph(keras, path):
    """The model loaded by Keras with safe_mode=True; when Keras refuses it (a Lambda layer, a layer
    class defined in the submission), the graph the probe exported beside it (`model-graph.zip`).
    Only a .keras archive (a zip) is loaded: tf-keras reads any other file as HDF5 or a SavedModel,
    without safe_mode, and would run a Lambda's bytecode."""
    if not zipfile.is_zipfile(path):
        raise LoadFailed("ValueError", "the model file is not a .keras archive (a zip file), the format "
                         "model.save('model.keras') writes")
    try:
        return KerasModel(keras.models.load_model(path, compile=False, safe_mode=True), keras)
    except Exception as exc:
        error, message = type(exc).__name__, str(exc)[:2000]
    graph = os.path.join(os.path.dirname(path), GRAPH_FILE)
    if not os.path.isfile(graph):
        raise LoadFailed(error, message)
    try:
        model = GraphModel(extract_graph(graph, tempfile.mkdtemp(prefix="graph-")))
        mismatch = graph_matches_archive(model._signature, path)
        if mismatch:
            raise ValueError(mismatch)
        return model
    except Exception as exc:
        raise LoadFailed(error, message, "%s: %s" % (type(exc).__name__, str(exc)[:1000]))


def archive_config(path):
    """The model's config.json from a .keras archive, read as plain JSON (nothing is executed)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("config.json"))
    except Exception:
        return None


def _activation_name(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # Keras 3 serialises some activations as {"class_name": "function", "config": name}
        config = value.get("config")
        if value.get("module") in ("keras.activations", "keras.src.activations.activations") and isinstance(config, str):
            return config
    return None


def output_activation(config):
    """The activation of the model's output layer, from its saved config: 'sigmoid', 'softmax',
    'linear', ... or None when it cannot be told (a Lambda or custom layer, several outputs)."""
    if not isinstance(config, dict):
        return None
    kind, inner = config.get("class_name"), config.get("config")
    if not isinstance(inner, dict):
        return None
    if kind in ("Activation",) or "activation" in inner and kind not in ("Sequential", "Functional", "Model"):
        return _activation_name(inner.get("activation"))
    if kind == "Softmax":
        return "softmax"
    if kind == "ReLU":
        return "relu"
    layers = inner.get("layers")
    if not isinstance(layers, list) or not layers:
        return None
    if kind == "Sequential":
        for layer in reversed(layers):
            if isinstance(layer, dict) and layer.get("class_name") not in PASS_THROUGH | {"InputLayer"}:
                return output_activation(layer)
        return None
    outputs = inner.get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]  # Keras 3 writes a single output as ["name", 0, 0]
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], list) or not outputs[0]:
        return None
    name = outputs[0][0]
    for layer in layers:
        if isinstance(layer, dict) and (layer.get("name") == name or (layer.get("config") or {}).get("name") == name):
            return output_activation(layer)
    return None


def _snake(name):
    """keras.src.utils.naming.to_snake_case: how a .keras weights file names a layer's group."""
    import re
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _weight_counts(path):
    """Sizes of the variables of each top-level layer group of a .keras archive's weights file, in
    the order they are stored ({group: [size, ...]})."""
    import io
    import h5py
    counts = {}
    with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as weights:
        group = weights.get("layers")
        if group is None:
            return counts
        for name in group:
            sizes = []

            def add(_, obj):
                if isinstance(obj, h5py.Dataset):
                    size = 1
                    for d in obj.shape:
                        size *= int(d)
                    sizes.append(size)
            group[name].visititems(add)
            counts[name] = sizes
    return counts


def _weights_readable(path):
    try:
        _weight_counts(path)
        return True
    except Exception:
        return False


def _model_weight_total(path):
    """Every variable the weights file holds for the model (the optimizer's state left out)."""
    import io
    import h5py
    total = [0]
    try:
        with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as weights:
            def add(name, obj):
                if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer"):
                    size = 1
                    for d in obj.shape:
                        size *= int(d)
                    total[0] += size
            weights.visititems(add)
    except Exception:
        return None
    return total[0]


def describe_archive(path, config):
    """The layer table of a model Keras would not load safely, read without running it: layer
    types, names and settings from its config.json, parameters from its weights file. Output
    shapes cannot be known this way (None)."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    try:
        counts = _weight_counts(path)
    except Exception:
        counts = None
    if not isinstance(layers, list):  # a subclassed model: its layers are its own Python; the total is known
        total = _model_weight_total(path)
        return {"class": str(config.get("class_name") if isinstance(config, dict) else None), "layers": [],
                "total_params": total, "trainable_params": None, "input_shape": None}
    seen, table, trainable = {}, [], 0
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        kind = str(layer.get("class_name"))
        conf = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        if kind == "InputLayer":
            continue
        group = _snake(kind)
        index = seen.get(group, 0)
        seen[group] = index + 1
        key = group if index == 0 else "%s_%d" % (group, index)
        sizes = counts.get(key, []) if counts is not None else []
        if conf.get("trainable", True) is not False:  # BatchNormalization's moving mean and variance are not
            trainable += sum(sizes[:-2]) if kind == "BatchNormalization" else sum(sizes)
        settings = {}
        for k in CONFIG_KEYS:
            value = _activation_name(conf.get(k)) if k == "activation" else _plain(conf.get(k))
            if value is not None:
                settings[k] = value
        table.append({"name": str(conf.get("name", layer.get("name", ""))), "type": kind, "output_shape": None,
                      "params": sum(sizes) if counts is not None else None,
                      "trainable": bool(conf.get("trainable", True)), "config": settings})
    shape = None
    for layer in layers:
        conf = layer.get("config") if isinstance(layer, dict) and isinstance(layer.get("config"), dict) else {}
        candidate = conf.get("batch_shape") or conf.get("batch_input_shape")
        if isinstance(candidate, list):
            shape = [d if isinstance(d, int) else None for d in candidate]
            break
    return {"class": str(config.get("class_name")), "layers": table,
            "total_params": sum(sum(v) for v in counts.values()) if counts is not None else None,
            "trainable_params": trainable if counts is not None else None, "input_shape": shape}


def import_keras(runtime):
    if runtime == "legacy":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras as keras
    else:
        import keras
    return keras


def table_from_config(path):
    """The layer table of a Keras 3 Sequential model read from its archive without Keras (config_shapes),
    or None when Keras must load it."""
    config = archive_config(path) if zipfile.is_zipfile(path) else None
    if not isinstance(config, dict):
        return None
    import importlib.util  # config_shapes.py lies beside this file (in the sandbox's workspace too)
    spec = importlib.util.spec_from_file_location(
        "config_shapes", os.path.join(os.path.dirname(os.path.abspath(__file__)), "config_shapes.py"))
    config_shapes = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(config_shapes)
        return config_shapes.table(describe_archive(path, config), config)
    except Exception:
        return None


def timed_predict(model, x, batch_size, clock=time.perf_counter):
    """(predictions, images/s of each whole batch) of one prediction pass: the time from one batch's end to
    the next (from the start for the first), counting the images given, not the rows a model returns."""
    ends = []
    began = clock()
    predictions = model.predict(x, batch_size=batch_size, on_batch=lambda: ends.append(clock()))
    rates = []
    for k, end in enumerate(ends[:len(x) // batch_size]):  # the whole batches; the last may be short
        took = end - (ends[k - 1] if k else began)
        rates.append(batch_size / max(took, 1e-9))
    if not rates and ends:  # fewer images than one batch
        rates.append(len(x) / max(ends[0] - began, 1e-9))
    return predictions, rates


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--images")
    p.add_argument("--ids")
    p.add_argument("--describe-only", action="store_true", help="write model.json and stop")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="none", choices=["none", "x/255", "x/127.5-1"])
    p.add_argument("--interpolation", default="bilinear")
    p.add_argument("--runtime", default="keras3")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--wait", type=float, default=0, help="import first, then wait this long for the model "
                                                         "file's folder to hold `ready`")
    args = p.parse_args()

    # a layer table alone (quick mode) of a Keras 3 model: first from its config, without TensorFlow
    # (config_shapes); Keras is imported only when the config is beyond those rules
    from_config = args.describe_only and args.runtime != "legacy"
    if not from_config:
        keras = import_keras(args.runtime)
    elif args.wait:
        try:
            import h5py  # noqa: F401  (loaded while the run goes on: the weights file is read with it)
        except ImportError:
            pass
    if args.wait:
        ready = os.path.join(os.path.dirname(args.model), "ready")
        deadline = time.monotonic() + args.wait
        while not os.path.exists(ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(ready) if os.path.exists(ready) else open(os.devnull) as fh:
            if fh.read().strip() != "model":
                sys.exit(0)  # nothing to read: the harness knows why
    start = time.perf_counter()
    if from_config:
        table = table_from_config(args.model)
        if table is not None:
            with open(os.path.join(args.out, "model.json"), "w") as fh:
                json.dump(table, fh)
            status(args.out, ok=True, n=0, load_seconds=round(time.perf_counter() - start, 3), read_with="config")
            return
        keras = import_keras(args.runtime)
        start = time.perf_counter()
    import numpy as np

    graph = os.path.isfile(os.path.join(os.path.dirname(args.model), GRAPH_FILE))
    try:
        model = load_model_or_graph(keras, args.model)
    except LoadFailed as exc:
        model, failure = None, exc
    config = archive_config(args.model)
    if model is None and not (args.describe_only and config and _weights_readable(args.model)):
        status(args.out, ok=False, stage="load", error=failure.error, message=failure.message,
               graph_error=failure.graph_error, graph=graph)
        sys.exit(3)
    loaded = time.perf_counter()
    try:  # a model Keras refused (Lambda, custom classes) is described from its saved config, as JSON
        table = describe(model.model) if model is not None and model.how == "keras" else \
            describe_archive(args.model, config)
    except Exception as exc:
        status(args.out, ok=False, stage="describe", error=type(exc).__name__, message=str(exc)[:2000])
        sys.exit(3)

    def report(**data):
        """The layer table and the status are written last, after anything of the model ran."""
        with open(os.path.join(args.out, "model.json"), "w") as fh:
            json.dump(table, fh)
        status(args.out, **data)
        if not data.get("ok"):
            sys.exit(3)

    if args.describe_only:
        report(ok=True, n=0, load_seconds=round(loaded - start, 3), read_with=model.how if model else "config")
        return
    shape = model.input_shape
    try:
        with open(args.ids) as fh:
            ids = json.load(fh)
        array_file = os.path.join(args.images, "images.npy")
        if os.path.exists(array_file):
            x = np.load(array_file, allow_pickle=False).astype(np.float32)
            x = x.reshape((len(x),) + tuple(int(d) for d in shape[1:]))
        else:
            if len(shape) != 4:
                report(ok=False, stage="input", error="InputShape",
                       message=f"the model expects input of shape {shape}, not images")
            x = load_images(args.images, ids, (int(shape[1]), int(shape[2])), int(shape[3]), args.interpolation)
    except Exception as exc:
        report(ok=False, stage="input", error=type(exc).__name__,
               message=f"the holdout images cannot be given to a model whose input shape is {shape}: {exc}"[:2000])
    if args.scale == "x/255":
        x = x / 255.0
    elif args.scale == "x/127.5-1":
        x = x / 127.5 - 1.0
    prepared = time.perf_counter()
    try:
        # warm-up, not timed: the first call builds the prediction function (a tf.function trace), and
        # the last, shorter batch may trace it again; images/s is the steady rate of batched prediction
        # (benchmarks/evaluation_throughput.py): the median over the batches of one pass, so that neither
        # a pause of the machine in one batch nor the pass's own setup moves it
        model.predict(x[:args.batch_size], batch_size=args.batch_size)
        if len(x) % args.batch_size:
            model.predict(x[len(x) - len(x) % args.batch_size:], batch_size=args.batch_size)
        warm = time.perf_counter()
        predictions, rates = timed_predict(model, x, args.batch_size)
        scored = time.perf_counter()
        steady = float(np.median(rates)) if rates else None
        if steady and scored - warm < TIMING_PASS_SECONDS and len(x) >= 2 * args.batch_size:
            # best of two passes: a second pass, for the timing only, over at most TIMING_PASS_BATCHES
            # batches (the machine's other work in one pass, e.g. just after a training run ends)
            try:
                _, again = timed_predict(model, x[:TIMING_PASS_BATCHES * args.batch_size], args.batch_size)
                steady = max(steady, float(np.median(again))) if again else steady
            except Exception:
                pass  # the scoring pass's own figure stands
    except Exception as exc:
        report(ok=False, stage="predict", error=type(exc).__name__, message=str(exc)[:2000])
    if isinstance(predictions, (list, tuple, dict)):
        report(ok=False, stage="predict", error="MultipleOutputs",
               message="the model has several outputs; one class-probability output is expected")
    np.save(os.path.join(args.out, "predictions.npy"), np.asarray(predictions))
    report(ok=True, n=len(x), load_seconds=round(loaded - start, 3),
           prepare_seconds=round(prepared - loaded, 3), warmup_seconds=round(warm - prepared, 3),
           predict_seconds=round(scored - warm, 3), batch_size=args.batch_size,
           steady_images_per_second=round(steady, 1) if steady else None,
           input_shape=[None if d is None else int(d) for d in shape], scored_with=model.how,
           output_activation=output_activation(config))

if __name__ == "__main__":
    main()
    # everything is written and closed: leave without TensorFlow's interpreter teardown (a second or
    # more of the harness waiting on a finished sandbox)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
