"""A static reading of the submission's code (parsed, never run) that backs runtime evidence.

It finds what the probe cannot see at run time: statistics computed with NumPy from test
arrays, `lr=` keyword arguments, and overlapping `tfds` split strings.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

OPTIMIZERS = {"Adam", "RMSprop", "SGD", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl", "AdamW"}
STAT_FUNCS = {"mean", "std", "var", "nanmean", "nanstd", "average"}
TEST_NAME = re.compile(r"test", re.IGNORECASE)
SPLIT = re.compile(r"^\s*(\w+)\s*(?:\[\s*(-?\d+)?%?\s*:\s*(-?\d+)?%?\s*\])?\s*$")


@dataclass(frozen=True)
class Unit:
    """One parsed piece of source: a notebook cell or a module file."""

    tree: ast.AST
    cell: int | None
    file: str | None

    def where(self, line: int) -> str:
        if self.cell is not None:
            return f"cell {self.cell + 1}, line {line}"
        return f"{self.file}:{line}"


@dataclass(frozen=True)
class Hit:
    where: str
    detail: str


def _parse(source: str) -> ast.AST | None:
    cleaned = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        return ast.parse(cleaned)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def units(entry: Path) -> list[Unit]:
    """Parsed code of a submission (cached: several checks read the same job's code)."""
    try:
        stat = entry.stat()
    except OSError:
        return []
    return _units(entry, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _units(entry: Path, mtime_ns: int, size: int) -> list[Unit]:
    out = []
    if entry.suffix == ".ipynb":
        try:
            cells = json.loads(entry.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError):
            return []
        for index, cell in enumerate(cells):
            if isinstance(cell, dict) and cell.get("cell_type") == "code":
                source = cell.get("source", "")
                tree = _parse("".join(source) if isinstance(source, list) else str(source))
                if tree is not None:
                    out.append(Unit(tree, index, None))
    for path in sorted(entry.parent.rglob("*.py")):  # a module, or the helper modules beside a notebook
        try:
            tree = _parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if tree is not None:
            out.append(Unit(tree, None, str(path.relative_to(entry.parent))))
    return out


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def optimizer_lr(found: list[Unit]) -> list[Hit]:
    """`RMSprop(lr=1e-4)`: Keras 3 rejects it; tf-keras silently keeps the default rate."""
    hits = []
    for unit in found:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Call) and _name(node.func) in OPTIMIZERS:
                for kw in node.keywords:
                    if kw.arg == "lr":
                        hits.append(Hit(unit.where(node.lineno), f"{_name(node.func)}(lr={ast.unparse(kw.value)})"))
    return hits


def test_statistics(found: list[Unit]) -> list[Hit]:
    """mean / std computed from an array whose name says test, or a scaler fitted on it."""
    hits = []
    for unit in found:
        for node in ast.walk(unit.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = _name(func)
            target = None
            if isinstance(func, ast.Attribute) and name in STAT_FUNCS and not node.args:
                target = func.value  # X_test.mean()
            elif name in STAT_FUNCS and node.args:
                target = node.args[0]  # np.mean(X_test)
            elif name in ("fit", "adapt", "fit_transform") and node.args and isinstance(func, ast.Attribute) \
                    and _name(func.value) not in ("model",):
                target = node.args[0]  # scaler.fit(X_test), norm.adapt(x_test), datagen.fit(X_test)
            if target is not None:
                label = ast.unparse(target)
                if TEST_NAME.search(label) and not re.search(r"train", label, re.IGNORECASE):
                    hits.append(Hit(unit.where(node.lineno), ast.unparse(node)[:120]))
    return hits


def _split_range(text: str) -> tuple[str, float, float] | None:
    match = SPLIT.match(text)
    if not match:
        return None
    base, start, stop = match.groups()
    lo = float(start) if start else 0.0
    hi = float(stop) if stop else 100.0
    return base, (lo + 100 if lo < 0 else lo), (hi + 100 if hi < 0 else hi)


def split_overlaps(found: list[Unit]) -> list[Hit]:
    """tfds split strings over the same base split whose ranges overlap (train[:80%], train[10%:])."""
    seen: list[tuple[str, float, float, str, str]] = []
    for unit in found:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Call) and _name(node.func) == "load":
                for kw in node.keywords:
                    if kw.arg != "split":
                        continue
                    values = kw.value.elts if isinstance(kw.value, (ast.List, ast.Tuple)) else [kw.value]
                    for value in values:
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            parsed = _split_range(value.value)
                            if parsed:
                                seen.append((*parsed, value.value, unit.where(node.lineno)))
    hits = []
    for i, (base, lo, hi, text, where) in enumerate(seen):
        for base2, lo2, hi2, text2, where2 in seen[i + 1:]:
            if base == base2 and text != text2 and max(lo, lo2) < min(hi, hi2):
                share = min(hi, hi2) - max(lo, lo2)
                hits.append(Hit(where2, f"'{text}' and '{text2}' share {share:g}% of '{base}'"))
    return hits


AUGMENTING_KWARGS = ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
                     "channel_shift_range", "horizontal_flip", "vertical_flip", "brightness_range")
FLOWS = {"flow", "flow_from_directory", "flow_from_dataframe"}
EVAL_ROLE = re.compile(r"val|test", re.IGNORECASE)


def _augmenting_kwargs(call: ast.Call) -> list[str]:
    """The augmenting keyword arguments of an `ImageDataGenerator(...)` call (zero/False ones do not count)."""
    if _name(call.func) != "ImageDataGenerator":
        return []
    out = []
    for kw in call.keywords:
        if kw.arg in AUGMENTING_KWARGS:
            value = kw.value
            if isinstance(value, ast.Constant) and value.value in (0, 0.0, False, None):
                continue
            out.append(f"{kw.arg}={ast.unparse(value)}")
    return out


def augmented_evaluation_generators(found: list[Unit]) -> list[Hit]:
    """A validation or test generator made from an augmenting ImageDataGenerator:
    `validation_generator = train_datagen.flow_from_directory(validation_dir, ...)`. The augmenting
    generator may be defined in another module of the submission (matched by name)."""
    augmenting: dict[str, list[str]] = {}
    for unit in found:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                augs = _augmenting_kwargs(node.value)
                if augs:
                    for target in node.targets:
                        if isinstance(target, (ast.Name, ast.Attribute)):
                            augmenting[_name(target)] = augs
    hits = []
    for unit in found:
        for node in ast.walk(unit.tree):
            if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
                continue
            call = node.value
            if not isinstance(call.func, ast.Attribute) or call.func.attr not in FLOWS:
                continue
            source = call.func.value
            augs = _augmenting_kwargs(source) if isinstance(source, ast.Call) else augmenting.get(_name(source), [])
            if not augs:
                continue
            subset = next((kw.value.value for kw in call.keywords if kw.arg == "subset"
                           and isinstance(kw.value, ast.Constant)), None)
            if subset == "training":
                continue
            labels = [ast.unparse(t) for t in node.targets] + [ast.unparse(a) for a in call.args[:1]]
            labels += [ast.unparse(kw.value) for kw in call.keywords if kw.arg in ("directory", "subset")]
            if any(EVAL_ROLE.search(label) for label in labels):
                generator = ast.unparse(source) if not isinstance(source, ast.Call) else "ImageDataGenerator(...)"
                hits.append(Hit(unit.where(node.lineno),
                                f"{ast.unparse(node.targets[0])} = {generator}.{call.func.attr}(...) "
                                f"with {', '.join(augs)}"))
    return hits
