"""Which runtime runs a submission, decided before it runs: `keras3` (TensorFlow 2.21 with Keras 3) or
`legacy` (the same TensorFlow with tf-keras: `TF_USE_LEGACY_KERAS=1`, and `import keras` is `tf_keras`).

In order: the command line (`grade --runtime`), the assignment's `runtime` where it pins one, else
detection from the submission's code: notebook cells and modules parsed with `ast` (never run; a comment
or a string that says `fit_generator` does not count), looking for APIs that only one runtime has.
The choice comes with a reason naming the evidence, kept in the record (`run.runtime_reason`).

`API` lists, per name, which runtime has it; `tests/integration/test_runtimes.py` checks the table
against the installed Keras 3 and tf-keras. The same table explains a run that stopped on an API error
(`explain`): the `runtime-mismatch` finding says which runtime would run the code. Pure: no TensorFlow.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from harness import static
from harness.discover import printable

RUNTIMES = ("keras3", "legacy")
DEFAULT = "keras3"  # detection that finds no sign runs the current Keras
NAMES = {"keras3": "Keras 3", "legacy": "tf-keras (Keras 2)"}


@dataclass(frozen=True)
class Api:
    """An API one runtime has and the other lacks (or that neither has any more)."""

    label: str  # how the student wrote it
    runtimes: tuple[str, ...]  # which runtimes have it: ("legacy",), ("keras3",) or () for neither
    fix: str  # how to write it for the runtime that lacks it
    rank: int = 1  # detection lists lower ranks first (the most telling sign)


API: dict[str, Api] = {
    "fit_generator": Api("fit_generator", ("legacy",), "call model.fit(generator, ...): fit takes generators", 0),
    "evaluate_generator": Api("evaluate_generator", ("legacy",), "call model.evaluate(generator, ...)", 0),
    "predict_generator": Api("predict_generator", ("legacy",), "call model.predict(generator, ...)", 0),
    "ImageDataGenerator": Api("keras.preprocessing.image.ImageDataGenerator", ("legacy",),
                              "import it from tensorflow.keras.preprocessing.image, or read the folders with "
                              "keras.utils.image_dataset_from_directory"),
    "experimental": Api("layers.experimental.preprocessing", ("legacy",),
                        "use the layers directly: keras.layers.Rescaling, keras.layers.RandomFlip, ..."),
    "lr": Api("lr=", ("legacy",), "write learning_rate= (its name now)", 2),
    "predict_classes": Api("predict_classes", (), "use np.argmax(model.predict(x), axis=-1), or "
                           "(model.predict(x) > 0.5).astype('int32') for one sigmoid output", 3),
    "predict_proba": Api("predict_proba", (), "use model.predict(x)", 3),
    "np_utils": Api("keras.utils.np_utils", (), "use keras.utils.to_categorical", 3),
    "Model(input=, output=)": Api("Model(input=..., output=...)", (), "write Model(inputs=..., outputs=...)", 3),
    "ops": Api("keras.ops", ("keras3",), "use TensorFlow's own functions (tf.math, tf.image, ...)"),
    "random": Api("keras.random", ("keras3",), "use tf.random"),
    "config": Api("keras.config", ("keras3",), "use keras.backend or tf.config"),
    "PyDataset": Api("keras.utils.PyDataset", ("keras3",), "subclass keras.utils.Sequence"),
    **{layer: Api(f"layers.{layer}", ("keras3",), "tf-keras has no such layer: leave it out or write it as a "
                                                  "tf.data map") for layer in
       ("RandomGrayscale", "AutoContrast", "Solarization", "MixUp", "RandAugment", "Equalization", "Pipeline",
        "TFSMLayer", "MelSpectrogram")},
}
KERAS2_MODULES = ("core", "convolutional", "pooling", "normalization", "advanced_activations")  # keras.layers.X
GENERATOR_NAMES = {"ImageDataGenerator", "DirectoryIterator", "NumpyArrayIterator", "DataFrameIterator"}
KERAS3_ROOT = {"ops", "random", "config"}  # keras.X: only when X hangs directly off keras


@dataclass(frozen=True)
class Sign:
    key: str  # a key of API
    where: str  # "ox.ipynb cell 7, line 3" or "data.py:12"
    detail: str = ""  # what was written, where the label says too little: "RMSprop(lr=...)"

    @property
    def api(self) -> Api:
        return API[self.key]

    def describe(self) -> str:
        return f"{self.detail or self.api.label} at {self.where}"


@dataclass(frozen=True)
class Choice:
    runtime: str
    reason: str


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _standalone(module: str | None) -> bool:
    """`keras...` (standalone Keras: Keras 3 unless the legacy runtime aliases it), not `tensorflow.keras`."""
    return bool(module) and (module == "keras" or module.startswith("keras."))


def _bindings(units: list[static.Unit]) -> tuple[bool, set[str]]:
    """(whether `keras` is bound to tf.keras: `from tensorflow import keras`; names bound to standalone
    keras.preprocessing.image: `from keras.preprocessing import image`)."""
    tf_bound, image_aliases = False, set()
    for unit in units:
        for node in ast.walk(unit.tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("tensorflow", "tensorflow.compat.v2"):
                tf_bound |= any(a.name == "keras" and (a.asname or "keras") == "keras" for a in node.names)
            if isinstance(node, ast.ImportFrom) and node.module == "keras.preprocessing":
                image_aliases |= {a.asname or a.name for a in node.names if a.name == "image"}
    return tf_bound, image_aliases


def _signs_of(unit: static.Unit, tf_bound: bool, image_aliases: set[str]) -> list[tuple[str, int, str]]:
    """(key of API, line, detail) of each sign in one unit."""
    found: list[tuple] = []
    for node in ast.walk(unit.tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {a.name for a in node.names}
            parts = module.split(".")
            if _standalone(module) and module.endswith("preprocessing.image") and names & GENERATOR_NAMES:
                found.append(("ImageDataGenerator", line))
            if "experimental" in parts and "layers" in parts or (parts[-1:] == ["layers"] and "experimental" in names):
                found.append(("experimental", line))
            if "np_utils" in parts or "np_utils" in names:
                found.append(("np_utils", line))
            if module in ("keras", "tensorflow.keras"):
                found += [(n, line) for n in sorted(names & KERAS3_ROOT)]
            if parts[:1] == ["keras"] and len(parts) > 1 and parts[1] in KERAS3_ROOT:
                found.append((parts[1], line))
            if "keras" in parts:
                found += [(n, line) for n in sorted(names) if n in API and API[n].runtimes == ("keras3",)
                          and n not in KERAS3_ROOT]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:1] == ["keras"] and len(parts) > 1 and parts[1] in KERAS3_ROOT:
                    found.append((parts[1], line))
                if "experimental" in parts and "layers" in parts:
                    found.append(("experimental", line))
                if "np_utils" in parts:
                    found.append(("np_utils", line))
        elif isinstance(node, ast.Attribute):
            if node.attr in ("fit_generator", "evaluate_generator", "predict_generator", "predict_classes",
                             "predict_proba"):
                found.append((node.attr, line))
                continue
            dotted = _dotted(node)
            if dotted is None:
                continue
            parts = dotted.split(".")
            if node.attr in GENERATOR_NAMES and len(parts) >= 2:
                root = parts[0]
                if (root == "keras" and not tf_bound and parts[1:3] == ["preprocessing", "image"]) \
                        or (len(parts) == 2 and root in image_aliases):
                    found.append(("ImageDataGenerator", line))
            if node.attr == "experimental" and parts[-2:-1] == ["layers"]:
                found.append(("experimental", line))
            if node.attr == "np_utils":
                found.append(("np_utils", line))
            if node.attr in KERAS3_ROOT and parts[-2:-1] == ["keras"]:
                found.append((node.attr, line))
            if node.attr in API and API[node.attr].runtimes == ("keras3",) and node.attr not in KERAS3_ROOT \
                    and parts[-2:-1] in (["layers"], ["utils"]):
                found.append((node.attr, line))
        elif isinstance(node, ast.Call):
            name = static._name(node.func)
            keywords = {kw.arg for kw in node.keywords}
            if name in static.OPTIMIZERS and "lr" in keywords:
                found.append(("lr", line, f"{name}(lr=...)"))
            if name == "Model" and keywords & {"input", "output"}:
                found.append(("Model(input=, output=)", line))
    return found


MAX_NAME = 120  # a file name in a reason: the student chose it


def _where(entry_name: str, unit: static.Unit, line: int) -> str:
    name = entry_name if unit.cell is not None else unit.file or ""
    name = printable(name).replace("\n", " ")
    name = name if len(name) <= MAX_NAME else "..." + name[-MAX_NAME:]
    return f"{name} cell {unit.cell + 1}, line {line}" if unit.cell is not None else f"{name}:{line}"


def signs(units: list[static.Unit], entry_name: str) -> list[Sign]:
    """Every use of an API that only one runtime has (or neither), in order of the code."""
    tf_bound, image_aliases = _bindings(units)
    out, seen = [], set()
    for unit in units:
        for key, line, *detail in sorted(_signs_of(unit, tf_bound, image_aliases), key=lambda hit: hit[1]):
            where = _where(entry_name, unit, line)
            if (key, where) not in seen:
                seen.add((key, where))
                out.append(Sign(key, where, *detail))
    return out


def _listed(found: list[Sign], limit: int = 3) -> str:
    ordered = sorted(found, key=lambda s: s.api.rank)  # stable: code order within a rank
    text = "; ".join(s.describe() for s in ordered[:limit])
    return text + (f" (and {len(found) - limit} more)" if len(found) > limit else "")


def detect(units: list[static.Unit], entry_name: str) -> Choice:
    found = signs(units, entry_name)
    legacy = [s for s in found if s.api.runtimes == ("legacy",)]
    keras3 = [s for s in found if s.api.runtimes == ("keras3",)]
    era = [s for s in found if not s.api.runtimes]  # Keras 2 code that neither runtime still runs
    if (legacy or era) and not keras3:
        if legacy:
            reason = f"detected from the code: Keras 2 APIs that Keras 3 lacks: {_listed(legacy + era)}"
        else:
            reason = (f"detected from the code: Keras 2 era APIs (gone from tf-keras 2.21 too, so the run may "
                      f"still stop there): {_listed(era)}")
        return Choice("legacy", reason)
    if keras3 and (legacy or era):
        return Choice(DEFAULT, f"detected from the code: it mixes Keras 3 only APIs ({_listed(keras3, 2)}) with "
                               f"Keras 2 ones ({_listed(legacy + era, 2)}); no runtime has both, so the default, "
                               f"Keras 3, was chosen")
    if keras3:
        return Choice("keras3", f"detected from the code: Keras 3 only APIs: {_listed(keras3)}")
    return Choice(DEFAULT, "detected from the code: no API that only tf-keras has, so Keras 3 (the default)")


def detect_entry(entry: Path | None) -> Choice:
    if entry is None:
        return Choice(DEFAULT, "no code to read, so Keras 3 (the default)")
    return detect(static.units(entry), entry.name)


def detect_source(code: str, name: str = "code.py") -> Choice:
    tree = static._parse(code)
    return detect([static.Unit(tree, None, name)] if tree is not None else [], name)


def choose(command_line: str | None, assignment: str, entry: Path | None) -> Choice:
    """The command line, then the assignment's pin, then detection from the code at `entry` (the staged
    copy: regular files only)."""
    if command_line is not None:
        if command_line not in RUNTIMES:
            raise ValueError(f"unknown runtime {command_line!r}: use one of {', '.join(RUNTIMES)}")
        return Choice(command_line, f"chosen on the command line (--runtime {command_line})")
    if assignment in RUNTIMES:
        return Choice(assignment, f"pinned by the assignment (runtime = \"{assignment}\")")
    return detect_entry(entry)


# ---- after the run: an error that the other runtime would not have raised

GENERIC = {"ops", "random", "config", "experimental"}  # names common outside Keras: the message must say keras
ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
IMPORT_NAME = re.compile(r"cannot import name '(\w+)' from '([\w.]+)'")
NO_MODULE = re.compile(r"No module named '([\w.]+)'")
LR = re.compile(r"""Argument\(s\) not recognized: \{'lr'""")
MODEL_KWARGS = re.compile(r"""(Keyword argument not understood:', '|Unrecognized keyword arguments passed to """
                          r"""Model: \{')(input|output)'""")


def api_of_error(text: str) -> str | None:
    """The key of API that an error message is about, or None."""
    if LR.search(text):
        return "lr"
    if MODEL_KWARGS.search(text):
        return "Model(input=, output=)"
    kerasy = "keras" in text
    match = IMPORT_NAME.search(text)
    if match:
        name, module = match.groups()
        if "keras" not in module:
            return None
        if name in GENERATOR_NAMES:
            return "ImageDataGenerator"
        return name if name in API else None
    match = NO_MODULE.search(text)
    if match:
        parts = match.group(1).split(".")
        if parts[0] not in ("keras", "tf_keras"):
            return None
        for part in parts[1:]:
            if part in API and (part not in KERAS3_ROOT or part == parts[1]):
                return part
        return "layers-module" if len(parts) > 2 and parts[1] == "layers" and parts[2] in KERAS2_MODULES else None
    match = ATTRIBUTE.search(text)
    if match:
        name = match.group(1)
        if name in GENERATOR_NAMES and kerasy:
            return "ImageDataGenerator"
        if name in API and (name not in GENERIC or kerasy):
            return name
    return None


@dataclass(frozen=True)
class Explanation:
    key: str
    ran: str  # the runtime that ran
    would_run: str | None  # the runtime that has the API, or None when neither does

    def message(self) -> str:
        if self.key == "layers-module":
            return ("Keras 2.3 and older had modules such as keras.layers.core and keras.layers.convolutional; "
                    "neither Keras 3 nor tf-keras has them. Import the layers from keras.layers "
                    "(from keras.layers import Dense, Conv2D).")
        api = API[self.key]
        if self.would_run is None:
            return (f"The code uses {api.label}, which Keras removed: neither Keras 3 nor tf-keras 2.21 has it, "
                    f"so no runtime of the grader runs this line. To fix: {api.fix}.")
        ran, other = NAMES[self.ran], NAMES[self.would_run]
        return (f"The run stopped on {api.label}, which {ran} (the runtime this run used) does not have; "
                f"{other} has it, so the {self.would_run} runtime would run this code: the instructor can grade "
                f"it with `grade --runtime {self.would_run}`. To make it run under {ran}: {api.fix}.")


def explain(error_text: str, ran: str) -> Explanation | None:
    """Why a run under `ran` stopped, when the error is about an API that one runtime lacks."""
    key = api_of_error(error_text)
    if key is None or ran not in RUNTIMES:
        return None
    if key == "layers-module":
        return Explanation(key, ran, None)
    has = API[key].runtimes
    if ran in has:
        return None  # the runtime that ran has it: the error is about something else
    return Explanation(key, ran, has[0] if has else None)
