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
    p.add_argument("--images", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--scale", required=True, choices=["none", "x/255", "x/127.5-1"])
    p.add_argument("--interpolation", default="bilinear")
    p.add_argument("--runtime", default="keras3")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()

    if args.runtime == "legacy":
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras as keras
    else:
        import keras
    import numpy as np

    start = time.perf_counter()
    try:
        model = keras.models.load_model(args.model, compile=False, safe_mode=True)
    except Exception as exc:
        status(args.out, ok=False, stage="load", error=type(exc).__name__, message=str(exc)[:2000])
        sys.exit(3)
    loaded = time.perf_counter()
    shape = [d for d in model.inputs[0].shape]
    with open(args.ids) as fh:
        ids = json.load(fh)
    array_file = os.path.join(args.images, "images.npy")
    if os.path.exists(array_file):
        x = np.load(array_file, allow_pickle=False).astype(np.float32)
        x = x.reshape((len(x),) + tuple(int(d) for d in shape[1:]))
    else:
        if len(shape) != 4:
            status(args.out, ok=False, stage="input", error="InputShape",
                   message=f"the model expects input of shape {shape}, not images")
            sys.exit(3)
        x = load_images(args.images, ids, (int(shape[1]), int(shape[2])), int(shape[3]), args.interpolation)
    if args.scale == "x/255":
        x = x / 255.0
    elif args.scale == "x/127.5-1":
        x = x / 127.5 - 1.0
    prepared = time.perf_counter()
    try:
        predictions = model.predict(x, batch_size=args.batch_size, verbose=0)
    except Exception as exc:
        status(args.out, ok=False, stage="predict", error=type(exc).__name__, message=str(exc)[:2000])
        sys.exit(3)
    done = time.perf_counter()
    if isinstance(predictions, (list, tuple, dict)):
        status(args.out, ok=False, stage="predict", error="MultipleOutputs",
               message="the model has several outputs; one class-probability output is expected")
        sys.exit(3)
    np.save(os.path.join(args.out, "predictions.npy"), np.asarray(predictions))
    status(args.out, ok=True, n=len(x), load_seconds=round(loaded - start, 3),
           prepare_seconds=round(prepared - loaded, 3), predict_seconds=round(done - prepared, 3),
           input_shape=[None if d is None else int(d) for d in shape])


if __name__ == "__main__":
    main()
