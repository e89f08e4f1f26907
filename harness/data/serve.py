"""What a job is served: read-only mounts of the served splits and the Keras cache entries.

The holdout split of a folder dataset is never mounted. `keras.datasets` files go into a
writable Keras cache in the job's home (Keras falls back to /tmp and downloads when the cache
folder itself is read-only), each file or folder bound read-only inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.data.standin import KERAS_FILES
from harness.sandbox import Layout, Mount
from harness.spec import DataSpec


@dataclass(frozen=True)
class Served:
    mounts: list[Mount]
    env: dict[str, str]


def serve(spec: DataSpec, root: Path, layout: Layout, standin: bool, tfds_dir: Path | None = None) -> Served:
    """Mounts for dataset files under `root` (a stand-in or a prepared dataset), and the offline
    TFDS data directory built from the served splits (`harness.data.tfds_serve`) when there is one."""
    mounts: list[Mount] = []
    env = {"HARNESS_DATA": f"{layout.workspace}/data", "KERAS_HOME": f"{layout.home}/.keras"}
    if tfds_dir is not None:
        # read-only; tfds.load finds the prepared dataset there and never downloads (try_gcs is False by default)
        mounts.append(Mount(tfds_dir, f"{layout.home}/tensorflow_datasets"))
        env["TFDS_DATA_DIR"] = f"{layout.home}/tensorflow_datasets"
    if spec.source == "keras":
        folder, files = KERAS_FILES[spec.name]
        cache = f"{layout.home}/.keras/datasets"
        if folder:
            mounts.append(Mount(root / folder, f"{cache}/{folder}"))
        else:
            for name in files:
                mounts.append(Mount(root / name, f"{cache}/{name}"))
        if spec.name == "mnist":
            # keras checks mnist.npz against the official file's hash; the served file (a stand-in,
            # or the training split with the public test part) differs, so the probe's loader hook serves it.
            env["HARNESS_MNIST_FILE"] = f"{cache}/mnist.npz"
    else:
        for split in spec.served_splits:
            if split == spec.holdout_split:
                continue
            mounts.append(Mount(root / split, f"{layout.workspace}/data/{spec.name}/{split}"))
    return Served(mounts=mounts, env=env)
