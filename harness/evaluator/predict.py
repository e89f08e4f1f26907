"""Runs in the evaluation sandbox: the saved model + holdout images (no labels) → predictions.

Trusted code, but it loads an untrusted model, so it runs sandboxed and imports nothing from
the `harness` package. Writes `predictions.npy` and `status.json` to the output folder; the
harness validates both and scores the predictions against labels that never come here.
"""

import argparse
import json
import os
import sys
import time


def status(out, **data):
    with open(os.path.join(out, "status.json"), "w") as fh:
        json.dump(data, fh)


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


def load_images(folder, ids, size, channels, interpolation):
    import numpy as np
    from PIL import Image
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
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
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--wait", type=float, default=0, help="import first, then wait this long for the model "
                                                         "file's folder to hold `ready`")
    args = p.parse_args()

    if args.runtime == "legacy":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras as keras
    else:
        import keras
    import numpy as np

    if args.wait:
        ready = os.path.join(os.path.dirname(args.model), "ready")
        deadline = time.monotonic() + args.wait
        while not os.path.exists(ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(ready) if os.path.exists(ready) else open(os.devnull) as fh:
            if fh.read().strip() != "model":
                sys.exit(0)  # nothing to read: the harness knows why
    start = time.perf_counter()
    try:
        model = keras.models.load_model(args.model, compile=False, safe_mode=True)
    except Exception as exc:
        status(args.out, ok=False, stage="load", error=type(exc).__name__, message=str(exc)[:2000])
        sys.exit(3)
    loaded = time.perf_counter()
    try:
        table = describe(model)
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
        report(ok=True, n=0, load_seconds=round(loaded - start, 3))
        return
    shape = [d for d in model.inputs[0].shape]
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
        predictions = model.predict(x, batch_size=args.batch_size, verbose=0)
    except Exception as exc:
        report(ok=False, stage="predict", error=type(exc).__name__, message=str(exc)[:2000])
    done = time.perf_counter()
    if isinstance(predictions, (list, tuple, dict)):
        report(ok=False, stage="predict", error="MultipleOutputs",
               message="the model has several outputs; one class-probability output is expected")
    np.save(os.path.join(args.out, "predictions.npy"), np.asarray(predictions))
    report(ok=True, n=len(x), load_seconds=round(loaded - start, 3),
           prepare_seconds=round(prepared - loaded, 3), predict_seconds=round(done - prepared, 3),
           input_shape=[None if d is None else int(d) for d in shape])

if __name__ == "__main__":
    main()
