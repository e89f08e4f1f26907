"""Data providers: put each dataset into the data root in one layout, split into what is served
to students and what is held out.

    <data root>/<name>/served/...            mounted read-only into the student's sandbox
    <data root>/<name>/holdout/              mounted into the evaluation sandbox: images only
        images.npy                           (keras datasets: N x H x W uint8)
        <id>.png|jpg                         (folder datasets: opaque ids, no class in the path)
    <data root>/<name>/holdout-labels.json   never mounted anywhere: {"classes", "ids", "labels", "parts"}
    <data root>/<name>/manifest.json         provider, counts, when, layout version

The test split is divided once, with a fixed seed, into a public and a private part (`parts`).
`holdout_accuracy` is computed on the private part alone; the public part's accuracy is kept for
the leaderboard. A `keras.datasets` student is served the public part as the test split, repeated
to the official size (seed code reshapes `X_test` to (10000, 28, 28, 1)); the private part is
never served. A folder dataset serves neither part.

A provider is a small object with `name`, `describe()` and `prepare(target, source)`; the
built-ins register themselves like any other.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from harness.errors import InfrastructureError, UsageError
from harness.spec import DataSpec

LAYOUT = 2                # the prepared layout this code reads; older data roots must be prepared again
PUBLIC_SHARE = 0.5
SPLIT_SEED = 20261130
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]


def default_root() -> Path:
    env = os.environ.get("HARNESS_DATA_ROOT")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "cnn-harness" / "data"


class Provider(Protocol):
    name: str
    source_hint: str

    def prepare(self, target: Path, source: Path | None) -> dict: ...


_REGISTRY: dict[str, Callable[[], Provider]] = {}


def register(name: str, factory: Callable[[], Provider]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Provider:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(names())}") from None


# ---------------------------------------------------------------- the prepared layout


@dataclass(frozen=True)
class Holdout:
    folder: Path
    kind: str  # "array" or "files"
    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    private: np.ndarray  # bool per id: True for the private part (grades), False for the public part

    @property
    def public(self) -> np.ndarray:
        return ~self.private


def split_parts(labels: np.ndarray) -> np.ndarray:
    """Which test samples are private (True): a fixed-seed half of each class, the same on every machine."""
    labels = np.asarray(labels)
    private = np.ones(len(labels), dtype=bool)
    rng = np.random.default_rng(SPLIT_SEED)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        private[members[: int(len(members) * PUBLIC_SHARE)]] = False
    return private


def served_test(x: np.ndarray, y: np.ndarray, private: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The public part repeated (in order) to the official test size."""
    public = np.flatnonzero(~private)
    order = np.resize(public, len(x))
    return x[order], y[order]


def dataset_dir(name: str, root: Path | None) -> Path:
    return (root or default_root()) / name


def manifest(name: str, root: Path | None) -> dict | None:
    path = dataset_dir(name, root) / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_prepared(name: str, root: Path | None) -> bool:
    found = manifest(name, root)
    return found is not None and found.get("layout") == LAYOUT


def identity(name: str, root: Path | None) -> str | None:
    """What identifies the prepared data a grade depends on (for the resume cache)."""
    found = manifest(name, root)
    return None if found is None else f"{found.get('provider')}:{found.get('prepared_at')}:{found.get('layout')}"


def _not_prepared(name: str, root: Path | None) -> InfrastructureError:
    provider = get(name)
    old = manifest(name, root) is not None
    return InfrastructureError(
        f"dataset {name!r} {'was prepared by an older harness (no private holdout)' if old else 'is not prepared'} "
        f"in {dataset_dir(name, root).parent}: the instructor must run "
        f"`harness data prepare {name}`{' (' + provider.source_hint + ')' if provider.source_hint else ''}")


def served_root(spec: DataSpec, root: Path | None) -> Path:
    if not is_prepared(spec.name, root):
        raise _not_prepared(spec.name, root)
    return dataset_dir(spec.name, root) / "served"


def holdout(spec: DataSpec, root: Path | None) -> Holdout:
    if not is_prepared(spec.name, root):
        raise _not_prepared(spec.name, root)
    folder = dataset_dir(spec.name, root)
    meta = json.loads((folder / "holdout-labels.json").read_text())
    kind = "array" if (folder / "holdout" / "images.npy").exists() else "files"
    return Holdout(folder=folder / "holdout", kind=kind, ids=meta["ids"], labels=np.asarray(meta["labels"]),
                   classes=meta["classes"], private=np.asarray([p == "private" for p in meta["parts"]]))


def _finish(target: Path, name: str, provider: str, ids: list[str], labels: list[int], classes: list[str],
            extra: dict, private: np.ndarray | None = None) -> dict:
    private = split_parts(np.asarray(labels)) if private is None else private
    parts = ["private" if p else "public" for p in private]
    (target / "holdout-labels.json").write_text(json.dumps({"classes": classes, "ids": ids, "labels": labels,
                                                             "parts": parts}))
    manifest = {"dataset": name, "provider": provider, "layout": LAYOUT, "holdout_size": int(private.sum()),
                "public_size": int((~private).sum()), "classes": classes,
                "prepared_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _fresh(target: Path) -> Path:
    """Prepare into a sibling temporary folder; the caller renames it into place at the end."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    return tmp


def _swap(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise InfrastructureError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


# ---------------------------------------------------------------- keras datasets


class FashionMnist:
    name = "fashion_mnist"
    source_hint = "from Debian's dataset-fashion-mnist, which `make install` installs"

    def prepare(self, target: Path, source: Path | None) -> dict:
        source = source or DEBIAN_FASHION
        missing = [f for f in FASHION_FILES if not (source / f).is_file()]
        if missing:
            raise InfrastructureError(f"{source}: missing {', '.join(missing)}; install the Debian package "
                                      f"dataset-fashion-mnist (make install) or pass a folder with the four files")
        from harness.data.standin import write_idx
        tmp = _fresh(target)
        served = tmp / "served" / "fashion-mnist"
        served.mkdir(parents=True)
        for name in FASHION_FILES[:2]:
            shutil.copyfile(source / name, served / name)
        images = _read_idx(source / "t10k-images-idx3-ubyte.gz")
        labels = _read_idx(source / "t10k-labels-idx1-ubyte.gz")
        private = split_parts(labels)
        public_x, public_y = served_test(images, labels, private)
        write_idx(served / "t10k-images-idx3-ubyte.gz", public_x)
        write_idx(served / "t10k-labels-idx1-ubyte.gz", public_y)
        (tmp / "holdout").mkdir()
        np.save(tmp / "holdout" / "images.npy", images)
        classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
        manifest = _finish(tmp, self.name, "debian", [f"test-{i:05d}" for i in range(len(labels))],
                           labels.astype(int).tolist(), classes, {"source": str(source)}, private)
        _swap(tmp, target)
        return manifest


class Mnist:
    name = "mnist"
    source_hint = "from a mnist.npz: `harness data import mnist PATH`, or a Keras cache that holds it"

    def prepare(self, target: Path, source: Path | None) -> dict:
        candidates = [source] if source else [Path(os.path.expanduser("~/.keras/datasets/mnist.npz"))]
        path = next((c for c in candidates if c and c.is_file()), None)
        if path is None:
            try:  # on a machine with internet access, Keras's own loader fetches it
                from keras.utils import get_file
                path = Path(get_file("mnist.npz", origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
                                     file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"))
            except Exception as exc:
                raise InfrastructureError(f"mnist.npz not found ({exc}); on a machine with internet run "
                                          f"`harness data prepare mnist`, or copy mnist.npz here and run "
                                          f"`harness data import mnist PATH`") from None
        with np.load(path, allow_pickle=False) as f:
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        private = split_parts(y_test)
        public_x, public_y = served_test(x_test, y_test, private)
        tmp = _fresh(target)
        (tmp / "served").mkdir()
        # not the official file (its hash differs): the probe serves it to keras.datasets.mnist.load_data()
        np.savez(tmp / "served" / "mnist.npz", x_train=x_train, y_train=y_train, x_test=public_x, y_test=public_y)
        (tmp / "holdout").mkdir()
        np.save(tmp / "holdout" / "images.npy", x_test)
        manifest = _finish(tmp, self.name, "npz", [f"test-{i:05d}" for i in range(len(y_test))],
                           y_test.astype(int).tolist(), [str(i) for i in range(10)], {"source": str(path)}, private)
        _swap(tmp, target)
        return manifest


# ---------------------------------------------------------------- class-folder datasets


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def import_folders(name: str, source: Path, target: Path, spec: DataSpec, provider: str) -> dict:
    """`source/<split>/<class>/*` → served splits + an anonymous holdout."""
    problems = []
    for split in [*spec.served_splits, spec.holdout_split]:
        folder = source / split
        if not folder.is_dir():
            problems.append(f"no folder {folder}")
        elif _class_folders(folder) != sorted(spec.classes):
            problems.append(f"{folder} has class folders {_class_folders(folder)}, expected {sorted(spec.classes)}")
    if problems:
        raise UsageError(f"{source}: not a {name} dataset: " + "; ".join(problems) +
                         f". Expected {source}/<split>/<class>/<image> with splits "
                         f"{[*spec.served_splits, spec.holdout_split]} and classes {sorted(spec.classes)}")
    tmp = _fresh(target)
    counts = {}
    for split in spec.served_splits:
        shutil.copytree(source / split, tmp / "served" / split,
                        ignore=lambda d, names: [n for n in names if n.startswith(".")])
        counts[split] = sum(1 for p in (tmp / "served" / split).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    classes = sorted(spec.classes)
    files = sorted((c, p) for c in classes for p in (source / spec.holdout_split / c).iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES)
    order = np.random.default_rng(0).permutation(len(files))  # ids say nothing about the class
    (tmp / "holdout").mkdir()
    ids, labels = [], []
    for n, k in enumerate(order):
        cls, path = files[k]
        ident = f"h{n:06d}{path.suffix.lower()}"
        shutil.copyfile(path, tmp / "holdout" / ident)
        ids.append(ident)
        labels.append(classes.index(cls))
    counts[spec.holdout_split] = len(ids)
    manifest = _finish(tmp, name, provider, ids, labels, classes, {"source": str(source), "counts": counts})
    _swap(tmp, target)
    return manifest


class Folders:
    """A class-folder dataset the instructor brings (`harness data import NAME PATH`)."""

    def __init__(self, name: str, spec_lookup: Callable[[str], DataSpec], hint: str):
        self.name = name
        self._spec = spec_lookup
        self.source_hint = hint

    def prepare(self, target: Path, source: Path | None) -> dict:
        if source is None:
            raise UsageError(f"dataset {self.name!r} has no automatic source here: {self.source_hint}")
        return import_folders(self.name, source, target, self._spec(self.name), "folders")


class GeneratedOx:
    name = "ox"
    source_hint = "generated: `harness data prepare ox`"

    def __init__(self, spec_lookup: Callable[[str], DataSpec]):
        self._spec = spec_lookup

    def prepare(self, target: Path, source: Path | None) -> dict:
        spec = self._spec(self.name)
        if source is not None:
            return import_folders(self.name, source, target, spec, "folders")
        from harness.data import ox
        # a secret seed: with a seed from the source, anyone could draw the same holdout and its labels
        seed = int.from_bytes(os.urandom(4), "little")
        with tempfile.TemporaryDirectory() as tmp:
            ox.generate(Path(tmp), seed=seed, image_size=spec.image_shape[0])
            return import_folders(self.name, Path(tmp), target, spec, "generated")


def _spec_for(name: str) -> DataSpec:
    """The data section of the shipped assignment that uses dataset `name`."""
    from harness.spec import default_assignments
    from harness.spec import load_all
    for loaded in load_all(default_assignments()).values():
        if loaded.spec.data.name == name:
            return loaded.spec.data
    raise UsageError(f"no assignment uses dataset {name!r}")


register("fashion_mnist", FashionMnist)
register("mnist", Mnist)
register("ox", lambda: GeneratedOx(_spec_for))
for _name, _hint in {
    "cats_vs_dogs": "export tfds 'cats_vs_dogs' to class folders on a machine with internet, then "
                    "`harness data import cats_vs_dogs PATH` (see README)",
    "dogs-vs-cats-small": "the Kaggle dogs-vs-cats subset as train/validation/test class folders: "
                          "`harness data import dogs-vs-cats-small PATH` (see README)",
    "car-or-truck": "Kaggle Learn's car-or-truck images as train/valid/test class folders: "
                    "`harness data import car-or-truck PATH` (see README)",
}.items():
    register(_name, lambda n=_name, h=_hint: Folders(n, _spec_for, h))


def prepare(name: str, root: Path | None, source: Path | None = None) -> dict:
    return get(name).prepare(dataset_dir(name, root), source)


def holdout_signatures(spec: DataSpec, root: Path | None, standin_root: Path | None = None) -> np.ndarray | None:
    """Signatures of the test images of a keras dataset (the stand-in's in quick mode); None for
    folder datasets, whose holdout the student never has."""
    from harness import fingerprints
    if spec.source != "keras":
        return None
    if standin_root is not None:  # made by the harness (standin.make): its signatures are kept beside it
        cache = standin_root / f"holdout-signatures-v{fingerprints.VERSION}.npy"
        source = standin_root / ("mnist.npz" if spec.name == "mnist" else "fashion-mnist/t10k-images-idx3-ubyte.gz")
        try:
            if cache.is_file() and not cache.is_symlink() and cache.stat().st_mtime >= source.stat().st_mtime:
                return np.load(cache, allow_pickle=False)
        except (OSError, ValueError):
            pass
        if spec.name == "mnist":
            with np.load(source, allow_pickle=False) as f:
                sig = fingerprints.signatures(f["x_test"])
        else:
            sig = fingerprints.signatures(_read_idx(source))
        try:
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}-{threading.get_ident()}.npy")
            np.save(tmp, sig)
            os.replace(tmp, cache)
            fingerprints.forget_older(standin_root)
        except OSError:
            pass
        return sig
    found = holdout(spec, root)  # the served test images are the public part: those are the ones to find
    return fingerprints.holdout_signatures(found.folder / "images.npy")[found.public]
