"""Cost of leak fingerprints against one epoch of the mnist-cnn model, in one run.

Fingerprints the 60,000 Fashion-MNIST training images as the probe does (after /255 and a
reshape, as a student's code feeds them to fit), fingerprints the 10,000 test images as the
harness does, and matches the two. Target (issue: leaks): at most 5 % of one epoch.
Usage: python benchmarks/fingerprint_cost.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from harness import fingerprints
    from harness.data.providers import DEBIAN_FASHION, _read_idx

    x_train = _read_idx(DEBIAN_FASHION / "train-images-idx3-ubyte.gz").reshape(-1, 28, 28, 1) / 255.0
    y_train = _read_idx(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz")
    x_test = _read_idx(DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz")

    start = time.perf_counter()
    train_sig = fingerprints.signatures(x_train)
    probe_side = time.perf_counter() - start
    start = time.perf_counter()
    test_sig = fingerprints.signatures(x_test)
    rows, _ = fingerprints.match(train_sig, test_sig)
    harness_side = time.perf_counter() - start

    import keras
    from keras import layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2, 2), layers.Conv2D(64, 2, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Dropout(0.25), layers.Flatten(), layers.Dense(1000, activation="relu"),
        layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=1, verbose=0)
    epoch = time.perf_counter() - start

    total = probe_side + harness_side
    print(f"fingerprints of 60,000 training images (probe side): {probe_side:6.2f} s")
    print(f"fingerprints of 10,000 test images + matching:       {harness_side:6.2f} s  "
          f"({len(rows)} training images match a test image)")
    print(f"one epoch of the mnist-cnn model on 60,000 images:   {epoch:6.2f} s")
    print(f"ratio: {total / epoch:.3f}  (target <= 0.05)")


if __name__ == "__main__":
    main()
