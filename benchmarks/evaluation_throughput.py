"""Trusted-evaluation throughput (images/s) against plain `model.predict` on the same model and
data, in one run. Target (issue: trusted evaluation): ratio >= 0.8.

The model is the fashion-mnist-cnn architecture trained for one epoch on 6,000 images; the data
is the 10,000 official test images. Trusted throughput counts the evaluator's own preparation
and prediction (images scaled and predicted inside the evaluation sandbox); sandbox start,
TensorFlow import and model loading are printed separately.
Usage: python benchmarks/evaluation_throughput.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def main() -> None:
    import numpy as np
    import keras
    from keras import layers

    from harness import evidence, spec
    from harness.data import providers
    from harness.evaluate import evaluate
    from harness.sandbox import get

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "data"
        subprocess.run([str(BIN / "harness"), "data", "prepare", "fashion_mnist", "--data-root", str(root)],
                       check=True, stdout=subprocess.DEVNULL)
        loaded = spec.load_all(ROOT / "assignments")["fashion-mnist-cnn"]
        holdout = providers.holdout(loaded.spec.data, root)
        x = np.load(holdout.folder / "images.npy").reshape(-1, 28, 28, 1) / 255.0
        model = keras.Sequential([
            keras.Input((28, 28, 1)), layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Conv2D(64, 2, padding="same", activation="relu"), layers.MaxPooling2D(), layers.Dropout(0.25),
            layers.Flatten(), layers.Dense(1000, activation="relu"), layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:6000], holdout.labels[:6000], epochs=1, verbose=0)
        ev_dir = tmp / "evidence"
        ev_dir.mkdir()
        model.save(ev_dir / "model.keras")
        (ev_dir / "events.jsonl").write_text('{"seq": 1, "kind": "model_saved"}\n')

        fresh = keras.models.load_model(ev_dir / "model.keras")
        start = time.perf_counter()
        fresh.predict(x, batch_size=256, verbose=0)
        plain_seconds = time.perf_counter() - start

        result = evaluate(loaded, evidence.read(ev_dir), get("bwrap"), root)
        t = result.timings
        trusted_seconds = t["prepare_seconds"] + t["predict_seconds"]
    plain_rate, trusted_rate = len(x) / plain_seconds, t["n"] / trusted_seconds
    print(f"plain model.predict:   {plain_rate:9.0f} images/s  ({plain_seconds:.2f} s for {len(x)} images)")
    print(f"trusted evaluation:    {trusted_rate:9.0f} images/s  (prepare {t['prepare_seconds']:.2f} s + "
          f"predict {t['predict_seconds']:.2f} s)")
    print(f"  fixed costs: model load {t['load_seconds']:.2f} s; whole evaluation incl. sandbox and "
          f"TensorFlow import {result.seconds:.2f} s; holdout accuracy {result.metrics.holdout_accuracy}")
    print(f"ratio: {trusted_rate / plain_rate:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
