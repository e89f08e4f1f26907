"""An offline TFDS data directory built from the served splits, so seed code such as
`tfds.load('cats_vs_dogs', split=['train[:80%]', ...], as_supervised=True, with_info=True)` runs in
the sandbox with no network.

Trusted side: runs on the host before the job (in a child process: TensorFlow is not imported into
the grader). It reads only the served class folders (`<root>/<split>/<class>/*`, never the holdout)
and writes the dataset with the real TFDS builder's name, version, features and class names; the
served splits are concatenated, in order, into the one split TFDS publishes (`train`). Built once per
prepared dataset (once per stand-in in quick mode) and cached; mounted read-only at `$TFDS_DATA_DIR`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.errors import InfrastructureError
from harness.spec import DataSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
BUILD_TIMEOUT = 3600


def _listing(spec: DataSpec, root: Path) -> list[tuple[str, str, Path]]:
    """(split, class, file) of every served image, in a fixed order; the holdout split is skipped."""
    out = []
    for split in spec.served_splits:
        if split == spec.holdout_split:
            continue
        for label in sorted(spec.classes):
            folder = root / split / label
            if folder.is_dir():
                out += [(split, label, p) for p in sorted(folder.iterdir())
                        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.is_symlink()]
    return out


def key_of(spec: DataSpec, root: Path, identity: str) -> str:
    text = json.dumps([spec.model_dump(mode="json"), str(root.resolve()), identity])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build(spec: DataSpec, root: Path, cache: Path, identity: str) -> Path:
    """The data directory (holding `<tfds_name>/<version>/`) for `spec`'s served splits under
    `root`; built once (a lock keeps parallel jobs from building it twice)."""
    assert spec.tfds_name
    target = cache / "tfds" / f"{spec.tfds_name}-{key_of(spec, root, identity)}"
    done = target / ".complete"
    if done.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        listing = tmp / "listing.json"
        listing.write_text(json.dumps({"name": spec.tfds_name, "classes": spec.classes,
                                       "images": [[s, c, str(p)] for s, c, p in _listing(spec, root)]}))
        data_dir = tmp / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TFDS_")}
        env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", NO_GCE_CHECK="true")
        proc = subprocess.run([sys.executable, "-m", "harness.data.tfds_serve", str(listing), str(data_dir)],
                              capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT,
                              cwd=str(Path(__file__).resolve().parent.parent.parent))
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
            raise InfrastructureError(f"could not build the offline TFDS dataset {spec.tfds_name!r} from {root}: "
                                      f"{last} (is tensorflow-datasets installed? `make install`)")
        if target.exists():
            shutil.rmtree(target)
        data_dir.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        for dirpath, dirnames, filenames in os.walk(target):  # readable by the sandbox's uid
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        done.write_text("ok\n")
    return target


def _prepare(listing_path: Path, data_dir: Path) -> None:
    """Child process: subclass the registered builder, read the listed files, write TFDS records."""
    import tensorflow_datasets as tfds

    listing = json.loads(listing_path.read_text())
    base = tfds.builder_cls(listing["name"])
    images = listing["images"]

    class Served(base, skip_registration=True):  # type: ignore[misc, valid-type]
        name = base.name

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self, *args, **kwargs):
            features = self.info.features
            known = {"image", "label", "image/filename"}
            if not set(features.keys()) <= known:
                raise ValueError(f"{self.name}: features {sorted(features.keys())} cannot be served from class "
                                 f"folders (only {sorted(known)})")
            names = features["label"].names
            if sorted(names) != sorted(listing["classes"]):
                raise ValueError(f"{self.name}: TFDS class names {names} differ from the assignment's "
                                 f"{listing['classes']}")
            for split, label, path in images:
                key = f"{split}/{label}/{os.path.basename(path)}"
                example = {"image": path, "label": label}
                if "image/filename" in features.keys():
                    example["image/filename"] = key
                yield key, example

    builder = Served(data_dir=str(data_dir))
    config = tfds.download.DownloadConfig(try_download_gcs=False,
                                          compute_stats=tfds.download.ComputeStatsMode.SKIP)
    builder.download_and_prepare(download_config=config)


if __name__ == "__main__":
    _prepare(Path(sys.argv[1]), Path(sys.argv[2]))
