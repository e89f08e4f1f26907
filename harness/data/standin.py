"""Tiny stand-ins of each dataset for `grade --quick`: the real layout, shapes, dtypes and class
names, a few generated images per class and split. Deterministic; made once per cache folder."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from harness.spec import DataSpec

if TYPE_CHECKING:  # imported where stand-ins are made: a quick grade finds them made and starts its sandbox sooner
    import numpy as np

KERAS_FILES = {
    "fashion_mnist": ("fashion-mnist", ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                                        "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]),
    "mnist": ("", ["mnist.npz"]),
}


def _rng(spec: DataSpec, split: str) -> np.random.Generator:
    import numpy as np
    seed = int.from_bytes(hashlib.sha256(f"{spec.name}/{split}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


# keras.datasets stand-ins keep the official sizes: seed code reshapes to (60000, 28, 28, 1).
KERAS_SIZES = {"train": 60000, "test": 10000}


def _arrays(spec: DataSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One random pattern per class with the image's index written into 8 pixels (so no two
    images are identical, as in real data): right shapes and dtypes, small when gzipped."""
    import numpy as np
    n = KERAS_SIZES[split]
    rng = _rng(spec, split)
    labels = (np.arange(n) % len(spec.classes)).astype(np.uint8)
    patterns = rng.integers(0, 256, size=(len(spec.classes), *spec.image_shape[:2]), dtype=np.uint8)
    images = patterns[labels]
    flat = images.reshape(n, -1)
    index = np.arange(n)
    for digit in range(4):  # base-16 digits, two pixels each, in four far-apart places
        value = ((index >> (4 * digit)) & 15).astype(np.uint8) * 17
        place = (digit + 1) * flat.shape[1] // 5
        flat[:, place] = value
        flat[:, place + 1] = value
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    import numpy as np
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as out:
        out.write(header + array.astype(np.uint8).tobytes())


def make(spec: DataSpec, cache: Path) -> Path:
    """Create (once) and return the stand-in folder for `spec` under `cache`."""
    key = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
    root = cache / "standin" / f"{spec.name}-{key}"
    done = root / ".complete"
    if done.exists():
        return root
    import numpy as np
    root.mkdir(parents=True, exist_ok=True)
    if spec.source == "keras":
        (x_train, y_train), (x_test, y_test) = _arrays(spec, "train"), _arrays(spec, "test")
        if spec.name == "mnist":
            np.savez(root / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        elif spec.name == "fashion_mnist":
            folder = root / "fashion-mnist"
            folder.mkdir(exist_ok=True)
            write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
            write_idx(folder / "train-images-idx3-ubyte.gz", x_train)
            write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
            write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test)
        else:
            raise ValueError(f"no stand-in for keras dataset {spec.name!r}")
    else:
        from PIL import Image
        height, width = spec.image_shape[:2]
        channels = spec.image_shape[2] if len(spec.image_shape) == 3 else 1
        for split in [*spec.served_splits, spec.holdout_split]:
            rng = _rng(spec, split)
            for label in spec.classes:
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(spec.standin_images_per_class):
                    pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
                    mode = "RGB" if channels == 3 else "L"
                    Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode).save(folder / f"{i}.png")
    done.write_text("ok\n")
    return root
