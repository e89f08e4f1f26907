"""Paths from the author's machine, mapped to the served data.

Students write `base_dir = '/root/Downloads/cats_and_dogs_small'`, `'../input/car-or-truck/train'` or
`'/content/drive/MyDrive/data/validation'`. Before the run, the submission's string literals are read
(parsed, never run); a path whose tail matches the served layout is made to exist inside the sandbox:
the served split is bound read-only at that exact path (bubblewrap: a private mount namespace; the
`process` sandbox only maps paths inside the job's own workspace and home). Nothing but the served
splits is ever bound, never the holdout. A pure function of the code and the assignment, so the
judge recomputes it for the `path-mapped` finding.
"""

from __future__ import annotations

import ast
import posixpath
from dataclasses import dataclass
from typing import Callable

from harness.spec import DataSpec
from harness.static import Unit

SPLIT_ALIASES = {"train": {"train", "training"}, "validation": {"validation", "valid", "val"},
                 "valid": {"validation", "valid", "val"}, "val": {"validation", "valid", "val"}}
# absolute places students' data lives on their machines (Colab, Kaggle, laptops); nothing else is bound
FOREIGN_ROOTS = ("/root/", "/home/", "/Users/", "/content/", "/kaggle/", "/mnt/", "/input/", "/data/",
                 "/datasets/", "/media/", "/tmp/")
# a split folder right below one of these is taken as the served split; below any other name (e.g. Kaggle's raw
# 'dogs-vs-cats/train', 25,000 unsorted files) it is another dataset and is left alone
GENERIC_PARENTS = {"data", "dataset", "datasets", "input", "mydrive", "my_drive", "colab_notebooks", "downloads",
                   "images", "img", "imgs"}
MAX_LITERAL = 500


@dataclass(frozen=True)
class Mapped:
    literal: str                     # as written in the code
    where: str                       # cell/line or file:line of its first use
    anchor: str                      # the in-sandbox folder that is made to exist
    splits: tuple[tuple[str, str], ...]  # (in-sandbox target, served split)

    @property
    def folder(self) -> str:
        """The mapped folder as the code writes it: the literal cut to the anchor."""
        strip = max(0, self.depth - len(self.anchor.split("/")))
        parts = self.literal.rstrip("/").split("/")
        return "/".join(parts[:len(parts) - strip]) if strip < len(parts) else self.literal

    depth: int = 0  # components of the literal's full in-sandbox path

    def describe(self, dataset: str) -> str:
        if len(self.splits) == 1 and self.splits[0][0] == self.anchor:
            return f"data/{dataset}/{self.splits[0][1]}"
        return " and ".join(f"data/{dataset}/{split} (as {posixpath.basename(target)}/)" for target, split in self.splits)


def literals(found: list[Unit]) -> list[tuple[str, str]]:
    """(string, where) of every string constant that could be a path, in code order."""
    out = []
    for unit in found:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                if ("/" in text or text.startswith("~")) and len(text) <= MAX_LITERAL and "\n" not in text \
                        and "://" not in text and "\\" not in text and "*" not in text:
                    out.append((text, unit.where(getattr(node, "lineno", 0))))
    return out


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


def _split_for(name: str, spec: DataSpec) -> str | None:
    served = [s for s in spec.served_splits if s != spec.holdout_split]
    if name in served:
        return name
    for split in served:
        if name.lower() in SPLIT_ALIASES.get(split, {split}):
            return split
    return None


def plan(spec: DataSpec, found: list[Unit], workspace: str, home: str, exists: Callable[[str], bool],
         isolated: bool) -> list[Mapped]:
    """Which literals to map and where. `exists(relative)` says whether the submission has that path
    in its own folder (then it is left alone); `isolated` is False for the `process` sandbox, where
    only paths inside the job's workspace and home may be made."""
    if spec.source != "folders":
        return []
    aliases = {_norm(spec.name), *(_norm(a) for a in spec.path_aliases)}
    served = [s for s in spec.served_splits if s != spec.holdout_split]
    chosen: list[Mapped] = []
    for literal, where in literals(found):
        if literal.startswith("~/"):
            path = posixpath.normpath(home + literal[1:])
        elif literal.startswith("/"):
            path = posixpath.normpath(literal)
        else:
            path = posixpath.normpath(posixpath.join(workspace, literal))
        inside = path.startswith(workspace + "/") or path.startswith(home + "/")
        foreign = path.startswith(FOREIGN_ROOTS) or literal.startswith(("~/", "../input/", "./input/"))
        if not inside and not (isolated and path.startswith(FOREIGN_ROOTS)):
            continue
        if path.startswith(f"{workspace}/data/") or path == f"{workspace}/data":
            continue
        if path.startswith(workspace + "/") and exists(posixpath.relpath(path, workspace)):
            continue  # the student handed in that folder
        parts = path.split("/")
        for i in range(2, len(parts)):
            anchor = "/".join(parts[:i + 1])
            name = parts[i]
            if _norm(name) in aliases:
                splits = tuple((f"{anchor}/{s}", s) for s in served)
            else:
                split = _split_for(name, spec)
                parent = _norm(parts[i - 1])
                if split is None or not (parent in aliases or (foreign and parent in GENERIC_PARENTS)):
                    continue
                splits = ((anchor, split),)
            if anchor in (workspace, home) or any(anchor == m.anchor or anchor.startswith(m.anchor + "/")
                                                  or m.anchor.startswith(anchor + "/") for m in chosen):
                break
            chosen.append(Mapped(literal=literal, where=where, anchor=anchor, splits=splits, depth=len(parts)))
            break
    return chosen
