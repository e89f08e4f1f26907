"""Publishing for instructors: scaffold an assignment from a reference (`harness new`), check the
reference earns full marks (`harness validate`), and write the student bundle (`harness publish`).

The bundle holds a starter (the reference with every region between `### BEGIN SOLUTION` and
`### END SOLUTION` replaced by a placeholder that raises `NotImplementedError`) and a README made
from the assignment and its expected model. Nothing of the holdout, the private split,
calibration figures or the reference's solution code goes into it. The pure parts (stripping,
README text, assignment scaffolding) are functions over text; the CLI joins them.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
from pathlib import Path

import nbformat

from harness.errors import HarnessError, SpecError, UsageError
from harness.spec import LoadedAssignment
from harness.text import number, shape

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
DEFAULT_TASK = "write your code"
PLACEHOLDER_COMMENT = "# YOUR CODE HERE"
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\b[ \t:-]*(?P<task>.*?)\s*$")
_END_LINE = re.compile(r"^[ \t]*### END SOLUTION\b")


class SolutionMarkerError(SpecError):
    """A reference whose solution markers do not pair up: the instructor must fix the markers."""


# ---------------------------------------------------------------- stripping solutions (pure)


def placeholder(indent: str, task: str) -> list[str]:
    """Code that runs and stops at once with a message a student understands."""
    message = f"{task or DEFAULT_TASK} here"
    return [f"{indent}{PLACEHOLDER_COMMENT}", f"{indent}raise NotImplementedError({message!r})"]


def strip_solutions(text: str, where: str = "source") -> tuple[str, int]:
    """Replace each solution region (marker lines included) by a placeholder; (new text, regions).

    `### BEGIN SOLUTION` may be followed by what the student has to write there
    (`### BEGIN SOLUTION: build and compile the model`); it becomes the placeholder's message.
    Unpaired or nested markers raise `SolutionMarkerError` naming `where` and the line."""
    out: list[str] = []
    regions = 0
    open_at: int | None = None
    for number_, line in enumerate(text.splitlines(), 1):
        begin = _BEGIN_LINE.match(line)
        if begin:
            if open_at is not None:
                raise SolutionMarkerError(f"{where}, line {number_}: {BEGIN} inside the region opened at line "
                                          f"{open_at}; close it with {END} first")
            open_at = number_
            regions += 1
            out += placeholder(begin.group("indent"), begin.group("task"))
            continue
        if _END_LINE.match(line):
            if open_at is None:
                raise SolutionMarkerError(f"{where}, line {number_}: {END} without a {BEGIN} before it")
            open_at = None
            continue
        if open_at is None:
            out.append(line)
    if open_at is not None:
        raise SolutionMarkerError(f"{where}, line {open_at}: {BEGIN} is never closed with {END}")
    stripped = "\n".join(out)
    if text.endswith("\n"):
        stripped += "\n"
    return stripped, regions


def solution_lines(text: str) -> list[str]:
    """The lines inside solution regions (markers excluded), as written."""
    lines, inside = [], False
    for line in text.splitlines():
        if _BEGIN_LINE.match(line):
            inside = True
        elif _END_LINE.match(line):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def _header_markdown(loaded: LoadedAssignment) -> str:
    spec = loaded.spec
    return (f"# {spec.title}\n\n"
            f"Starter for the assignment `{spec.id}`. Write your code where it says `{PLACEHOLDER_COMMENT}` "
            f"(each placeholder raises `NotImplementedError` until you replace it). README.md lists the model "
            f"to build, how it is graded and what counts as a data leak.\n\n"
            f"Hand this file in as `{spec.id}.ipynb`; check it first with `grade --quick {spec.id}.ipynb`.")


def starter_notebook(reference_text: str, loaded: LoadedAssignment, where: str = "reference") -> tuple[str, int]:
    """The starter notebook (JSON text) and how many solution regions were replaced.

    Code cells keep everything outside the solution regions; outputs and execution counts are
    cleared. The reference's Markdown cells are instructor notes and are left out: the starter
    opens with one Markdown cell made from the assignment (instructions live in README.md)."""
    nb = nbformat.reads(reference_text, as_version=4)
    cells = [nbformat.v4.new_markdown_cell(_header_markdown(loaded))]
    regions = 0
    for index, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        source, found = strip_solutions(cell.source, f"{where}, cell {index}")
        regions += found
        cells.append(nbformat.v4.new_code_cell(source))
    starter = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(dict(nb.metadata)))
    for cell in starter.cells:  # ids derived from the position: the same starter every time it is published
        cell["id"] = f"starter-{starter.cells.index(cell)}"
    nbformat.validate(starter)
    return nbformat.writes(starter) + "\n", regions


def starter_module(reference_text: str, loaded: LoadedAssignment, where: str = "reference") -> tuple[str, int]:
    """The starter module and how many regions were replaced; the module docstring (instructor
    notes) is replaced by one made from the assignment."""
    stripped, regions = strip_solutions(reference_text, where)
    try:
        tree = ast.parse(stripped)
    except SyntaxError as exc:
        raise SpecError(f"{where}: the starter would not be valid Python after removing the solution regions "
                        f"(line {exc.lineno}: {exc.msg}); put the markers around whole statements") from None
    spec = loaded.spec
    doc = (f'"""{spec.title}: starter for the assignment `{spec.id}`.\n\n'
           f"Write your code where it says `{PLACEHOLDER_COMMENT}` (each placeholder raises NotImplementedError\n"
           f"until you replace it); README.md lists the model to build and how it is graded.\n"
           f"Hand this file in as `{spec.id}.py`; check it first with `grade --quick {spec.id}.py`.\n"
           f'"""\n')
    lines = stripped.splitlines(keepends=True)
    first = tree.body[0] if tree.body else None
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        lines = lines[:first.lineno - 1] + [doc] + lines[first.end_lineno:]
    else:
        lines = [doc] + lines
    return "".join(lines), regions


# ---------------------------------------------------------------- the README (pure)

# rule id -> one line for students (the README's Findings table says the same for instructors)
FORBIDDEN = {
    "augmented-validation": "validation or test data passes through random augmentation (an augmenting "
                            "ImageDataGenerator or a tf.data map with random ops); augment the training data only",
    "test-in-training": "test images are among the data `fit` trains on",
    "test-for-selection": "the test set is `validation_data` while EarlyStopping(restore_best_weights), "
                          "ModelCheckpoint(save_best_only) or ReduceLROnPlateau choose the model",
    "split-overlap": "the same images are in the training and the validation data",
    "test-statistics": "normalisation statistics are fitted on test data (`Normalization.adapt`, "
                       "`ImageDataGenerator.fit`, a mean/std of the test array)",
    "label-mismatch": "the output layer or the loss cannot fit the classes (e.g. 1 sigmoid unit with 10 classes)",
    "evidence-missing": "no training was seen in a run that finished, or the grader's evidence was altered",
    "evidence-mismatch": "what the run reported about the model disagrees with the model file the grader read",
}
SETTINGS = ("filters", "kernel_size", "strides", "padding", "pool_size", "units", "activation", "rate")


def _setting(value) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def _settings(config: dict) -> str:
    return ", ".join(f"{k} {_setting(config[k])}" for k in SETTINGS if k in config) or "–"


def _data_section(loaded: LoadedAssignment) -> list[str]:
    data = loaded.spec.data
    classes = ", ".join(f"`{c}`" for c in data.classes)
    size = "×".join(str(d) for d in data.image_shape)
    if data.source == "keras":
        return [
            f"`keras.datasets.{data.name}.load_data()` works offline in the grader: the data is served from "
            f"its Keras cache, nothing is downloaded. Classes ({len(data.classes)}): {classes}; images {size}.",
            "",
            "You get the training split and a public part of the test split, at the official shapes. Your grade "
            "is measured on test images your code never sees, by the grader, after your run: training on the "
            "test split cannot raise it, and what your own `evaluate` prints does not count.",
        ]
    splits = ", ".join(f"`data/{data.name}/{s}/`" for s in data.served_splits)
    return [
        f"The images are served read-only as class folders: {splits} (each with one folder per class: "
        f"{classes}; also under `$HARNESS_DATA`). The model takes images of {size}.",
        "",
        f"The `{data.holdout_split}` split is not served: the grader keeps it and measures your trained model "
        f"on it after your run. Read the data from these relative paths, not from a path on your own machine.",
    ] + ([
        "",
        f"`tfds.load({data.tfds_name!r}, split=[...])` also works offline: the served images are its one `train` "
        f"split (split strings such as `train[:80%]` work; the held-out images are not in it).",
    ] if data.tfds_name else [])


def readme(loaded: LoadedAssignment) -> str:
    """The student README: the model to build, how it is graded, the forbidden leaks, the data,
    and how to check locally. Only public facts: no holdout, no calibration figures."""
    spec, expected = loaded.spec, loaded.expected
    if expected is None:
        raise SpecError(f"{spec.id}: no expected model yet; run `harness calibrate {spec.id}` first")
    entry = f"{spec.id}{'.py' if loaded.spec.reference.endswith('.py') else '.ipynb'}"
    points = spec.points
    runtime = {"keras3": "TensorFlow 2.21 with Keras 3",
               "legacy": "TensorFlow 2.21 with tf-keras (Keras 2; `import keras` is tf-keras)",
               "auto": "TensorFlow 2.21 with Keras 3 (or with tf-keras when your code uses Keras 2 APIs such as "
                       "fit_generator: the grader reads the code and picks one)"}[spec.runtime]
    lines = [f"# {spec.title}", ""]
    if spec.seed:
        lines += [f"Assignment `{spec.id}` (seed {spec.seed}).", ""]
    lines += [
        "## What to hand in", "",
        f"`{entry}`: the starter in this folder with every `{PLACEHOLDER_COMMENT}` placeholder replaced by your "
        f"code. Keep the file name: the grader finds your work by it. Helper modules you import go next to it.",
        f"It runs with {runtime}, numpy, pandas, matplotlib and Pillow, without network access, within "
        f"{spec.timeout_seconds // 60} minutes and {spec.memory_mb:,} MB of memory.", "",
        "## The model to build", "",
        "Layers in order (the input layer is not listed; layer names do not matter). The grader reads them from "
        "the model file your code trains, compares type, output shape, parameters and the settings below, and "
        "says what differs.", "",
        "| # | type | output shape | params | settings |", "|---|---|---|---|---|",
    ]
    for i, layer in enumerate(expected.layers, 1):
        lines.append(f"| {i} | {layer.type} | {shape(layer.output_shape, '?')} | {number(layer.params, '?')} | "
                     f"{_settings(layer.config)} |")
    lines += ["", f"Total params: {number(expected.total_params)} (trainable {number(expected.trainable_params)}, "
                  f"non-trainable {number(expected.non_trainable_params)}).", ""]
    credit = ("each matching layer earns its share" if spec.architecture.partial_credit == "per-layer"
              else "only an exact match earns them")
    lines += [
        "## Grading", "",
        "| check | points | passes when |", "|---|---|---|",
        f"| architecture | {points.architecture:g} | the model matches the table above ({credit}) |",
        f"| holdout-accuracy | {points.holdout_accuracy:g} | accuracy on held-out images is at least "
        f"{spec.accuracy.threshold:g} (full marks); none at or below {spec.accuracy.floor:g}; linear in between |",
        f"| no-leaks | {points.no_leaks:g} | no forbidden leak below is found |",
        f"| completes | {points.completes:g} | the code runs to the end and leaves a trained model |",
        "",
        "## Forbidden leaks", "",
        "Each costs the no-leaks points; the report says where (cell and line) and how to fix it.", "",
        "| rule | what it means |", "|---|---|",
    ]
    lines += [f"| `{rule}` | {text} |" for rule, text in FORBIDDEN.items()]
    lines += ["", "## Data", ""] + _data_section(loaded) + [""]
    lines += [
        "## Check your work before handing it in", "",
        "With the course's grading harness installed (its `grade` command), in this folder:", "",
        "```sh", f"grade --quick {entry}", "```", "",
        "A quick check runs your code up to the first `fit` on a small stand-in of the data (seconds, no "
        "training) and checks the architecture; the report is written to `reports/`. Until the model is built, "
        "it says that the model is not built yet and where the placeholder is. Training and the held-out "
        "accuracy are only measured when the course grades the hand-in.", "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- publish


def bundle_files(loaded: LoadedAssignment, reference: Path) -> dict[str, str]:
    """File name -> text of the student bundle."""
    text = reference.read_text(encoding="utf-8")
    where = str(reference)
    if reference.suffix == ".ipynb":
        starter, regions = starter_notebook(text, loaded, where)
        name = f"{loaded.id}.ipynb"
    else:
        starter, regions = starter_module(text, loaded, where)
        name = f"{loaded.id}.py"
    if regions == 0:
        raise SpecError(f"{where}: no `{BEGIN}` / `{END}` region: publishing it would hand out the solution. "
                        f"Mark the model-building code (and other solution parts) in the reference first")
    return {name: starter, "README.md": readme(loaded)}


def publish(loaded: LoadedAssignment, reference: Path, out: Path) -> Path:
    """Write `out/<id>/` with the starter and README.md; refuses a folder that is not empty."""
    files = bundle_files(loaded, reference)
    target = out / loaded.id
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target}: exists and is not empty; publish into a new folder (nothing was written)")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    return target


# ---------------------------------------------------------------- new assignments


KERAS_DATASETS = {
    "mnist": {"classes": [str(i) for i in range(10)], "image_shape": [28, 28]},
    "fashion_mnist": {"classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                  "Sneaker", "Bag", "Ankle boot"], "image_shape": [28, 28]},
}
_KERAS_USE = re.compile(r"\bdatasets\.(\w+)\b")
_FOLDER_USE = re.compile(r"""['"](?:\./)?data/([A-Za-z0-9_.-]+)[/'"]""")


def guess_dataset(code: str) -> str | None:
    """The dataset a reference reads: `keras.datasets.<name>` or a served path `data/<name>/...`."""
    for match in _KERAS_USE.finditer(code):
        if match.group(1) in KERAS_DATASETS:
            return match.group(1)
    match = _FOLDER_USE.search(code)
    return match.group(1) if match else None


def reference_code(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return text
    nb = nbformat.reads(text, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def data_section(dataset: str, known: dict[str, LoadedAssignment], classes: list[str] | None = None,
                 image_shape: list[int] | None = None) -> dict:
    """The [data] table: from an assignment that already uses the dataset, a known keras dataset,
    or the flags (a new folder dataset needs --classes and --image-shape)."""
    for loaded in known.values():
        if loaded.spec.data.name == dataset:
            data = loaded.spec.data.model_dump(exclude_defaults=True)
            break
    else:
        if dataset in KERAS_DATASETS:
            data = {"source": "keras", "name": dataset, **KERAS_DATASETS[dataset], "holdout_split": "test"}
        else:
            if not classes or not image_shape:
                raise UsageError(f"dataset {dataset!r} is new: give its class folders and image size, e.g. "
                                 f"--classes cat,dog --image-shape 160,160,3")
            data = {"source": "folders", "name": dataset, "classes": classes, "image_shape": image_shape,
                    "served_splits": ["train", "validation"], "holdout_split": "test"}
    if classes:
        data["classes"] = classes
    if image_shape:
        data["image_shape"] = image_shape
    return data


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def assignment_toml(aid: str, title: str, reference: str, runtime: str, data: dict, seed: str | None = None,
                    threshold: float = 0.9, floor: float = 0.5) -> str:
    """The text of a new assignment.toml with defaults the instructor edits."""
    lines = [
        "# Scaffolded by `harness new`: edit the title, the limits and [accuracy], then run",
        f"# `harness validate {aid}` before `harness publish {aid} DIR`.",
        "schema_version = 1",
        f"id = {_toml_value(aid)}",
        f"title = {_toml_value(title)}",
    ]
    if seed:
        lines.append(f"seed = {_toml_value(seed)}")
    lines += [
        f"runtime = {_toml_value(runtime)}",
        f"reference = {_toml_value(reference)}",
        "timeout_seconds = 1800",
        "quick_timeout_seconds = 180",
        "",
        "[data]",
    ]
    order = ("source", "name", "classes", "image_shape", "served_splits", "holdout_split",
             "standin_images_per_class", "preprocessing", "tfds_name", "path_aliases")
    for key in order:
        if key in data and data[key] is not None:
            lines.append(f"{key} = {_toml_value(data[key])}")
    lines += [
        "",
        "[accuracy]",
        f"# PLACEHOLDERS: prepare the data (`harness data prepare {data['name']}`), run",
        f"# `harness calibrate {aid} --runs 5` and copy its proposed threshold and floor here.",
        f"threshold = {threshold!r}",
        f"floor = {floor!r}",
        "",
    ]
    return "\n".join(lines)


def guess_runtime(code: str) -> str:
    """`legacy` (pinned) when the reference is Keras 2 code that Keras 3 cannot run (`fit_generator`,
    `from keras.preprocessing.image import ImageDataGenerator`, ...: `harness.runtime`), else `auto`: each
    submission then runs under Keras 3 unless its own code needs tf-keras."""
    from harness import runtime
    return "legacy" if runtime.detect_source(code).runtime == "legacy" else "auto"


def scaffold(root: Path, aid: str, reference: Path, known: dict[str, LoadedAssignment], *, title: str | None = None,
             dataset: str | None = None, runtime: str | None = None, seed: str | None = None,
             classes: list[str] | None = None, image_shape: list[int] | None = None) -> LoadedAssignment:
    """Write `root/<aid>/assignment.toml` and copy the reference to `root/../reference/<aid><suffix>`
    (unless it is already there); returns the loaded (validated) assignment, not yet calibrated."""
    from harness.spec import load_assignment
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", aid):
        raise UsageError(f"assignment id {aid!r}: use lower-case letters, digits and '-' (e.g. cifar-cnn)")
    folder = root / aid
    if folder.exists():
        raise UsageError(f"{folder}: already exists; `harness new` never overwrites an assignment "
                         f"(edit it, or remove the folder first)")
    if not reference.is_file() or reference.suffix not in (".ipynb", ".py"):
        raise UsageError(f"{reference}: no such notebook (.ipynb) or module (.py)")
    code = reference_code(reference)
    dataset = dataset or guess_dataset(code)
    if dataset is None:
        raise UsageError(f"{reference}: cannot tell which dataset it reads; pass --dataset NAME "
                         f"(e.g. mnist, fashion_mnist, or a folder dataset's name)")
    data = data_section(dataset, known, classes, image_shape)
    ref_dir = root.resolve().parent / "reference"
    in_place = reference.resolve().parent == ref_dir  # already among the references: used as it is
    target = reference.resolve() if in_place else ref_dir / f"{aid}{reference.suffix}"
    copied = not in_place
    if copied and target.exists():
        raise UsageError(f"{target}: already exists and is another file; `harness new` never overwrites a reference")
    text = assignment_toml(aid, title or f"{aid} (edit this title)", f"reference/{target.name}",
                           runtime or guess_runtime(code), data, seed)
    ref_dir.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True)
    try:
        if copied:
            shutil.copyfile(reference, target)
        (folder / "assignment.toml").write_text(text, encoding="utf-8")
        return load_assignment(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if copied:
            target.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- validate


def problems(rec) -> list[str]:
    """What keeps a graded reference from validating: anything below full marks, any error finding."""
    found = []
    if rec.status != "graded":
        found.append(f"status {rec.status}: {rec.summary}")
    for check in rec.checks:
        if check.status in ("fail", "error") or check.points < check.max_points:
            found.append(f"check {check.id} ({check.points:g}/{check.max_points:g}): {check.message}")
    for finding in rec.findings:
        if finding.severity == "error":
            where = f" at {finding.where}" if finding.where else ""
            found.append(f"finding {finding.rule} (error){where}: {finding.message}")
    if not found and rec.score < rec.max_score:
        found.append(f"score {rec.score:g}/{rec.max_score:g}: {rec.summary}")
    return found


def warnings(loaded: LoadedAssignment, reference: Path) -> list[str]:
    """What does not fail validation but will bite later: a stale expected model, unmarked solutions."""
    from harness.run import sha256
    found = []
    if loaded.expected is not None and loaded.expected.reference_sha256 != sha256(reference):
        found.append(f"{reference} changed since `harness calibrate {loaded.id}` derived the expected model; "
                     f"run it again so the expected model is the reference's")
    try:
        bundle_files(loaded, reference)
    except SpecError as exc:
        found.append(f"`harness publish` would refuse it: {exc}")
    return found


def validate(loaded: LoadedAssignment, sandbox, cache: Path, data_root: Path | None, timeout: float | None,
             out: Path):
    """Grade the reference in full (train, trusted holdout evaluation, checks); the record is
    written to `out/reference/<id>.json` with its Markdown report."""
    from harness import record, reports
    from harness.calibrate import reference_path
    from harness.data import providers
    from harness.discover import Job
    from harness.errors import InfrastructureError
    from harness.grade import GradeOptions, grade_job, record_path
    if loaded.expected is None:
        raise InfrastructureError(f"assignment {loaded.id} is not calibrated: run `harness calibrate {loaded.id}` first")
    providers.served_root(loaded.spec.data, data_root)  # the dataset must be prepared (else: which command to run)
    ref = reference_path(loaded)
    job = Job(student="reference", assignment=loaded.id, folder=ref.parent, entry=ref)
    rec = grade_job(job, {loaded.id: loaded}, sandbox,
                    GradeOptions(quick=False, out=out, cache=cache, timeout=timeout, data_root=data_root))
    path = record_path(out, job.student, job.assignment)
    record.save(rec, path)
    reports.write_markdown(rec, path.with_suffix(".md"))
    return rec, path


# ---------------------------------------------------------------- the CLI commands (`harness new|validate|publish`)


def add_parsers(sub) -> None:
    new = sub.add_parser("new", help="scaffold an assignment from a reference solution, then calibrate it")
    new.add_argument("assignment", help="the new assignment's id (lower-case letters, digits, '-')")
    new.add_argument("--reference", type=Path, required=True, help="the reference notebook or module")
    new.add_argument("--title", default=None)
    new.add_argument("--dataset", default=None, help="dataset name (default: guessed from the reference's code)")
    new.add_argument("--classes", default=None, help="class names, comma-separated (new folder datasets)")
    new.add_argument("--image-shape", default=None, help="e.g. 64,64,3 (new folder datasets)")
    new.add_argument("--runtime", choices=["auto", "keras3", "legacy"], default=None,
                     help="default: legacy when the reference needs tf-keras, else auto (chosen per submission)")
    new.add_argument("--seed", default=None, help="the tutorial seed this assignment comes from")
    new.add_argument("--no-calibrate", action="store_true", help="only write the files")
    validate_ = sub.add_parser("validate", help="grade the reference in full: exit 0 only for full marks, no error finding")
    validate_.add_argument("assignment")
    validate_.add_argument("--data-root", type=Path, default=None, help="prepared datasets (default $HARNESS_DATA_ROOT)")
    validate_.add_argument("--out", type=Path, default=None, help="keep the reference's record here (default: a temporary folder)")
    publish_ = sub.add_parser("publish", help="write the student bundle DIR/<id>/: starter + README, no solution, no holdout")
    publish_.add_argument("assignment")
    publish_.add_argument("dir", type=Path)
    for parser in (new, validate_, publish_):
        parser.add_argument("--assignments", type=Path, default=None, help="folder of assignments (default ./assignments)")
    for parser in (new, validate_):
        parser.add_argument("--sandbox", default="bwrap", help="bwrap (default) or process (isolates nothing)")
        parser.add_argument("--timeout", type=float, default=None, help="seconds (default: from the assignment)")


def _one(root: Path, aid: str) -> LoadedAssignment:
    from harness import spec
    assignments = spec.load_all(root)
    if aid not in assignments:
        raise UsageError(f"unknown assignment {aid!r}; choose one of: {', '.join(sorted(assignments))}")
    return assignments[aid]


def _list(text: str | None, kind=str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{text!r}: expected comma-separated numbers, e.g. 64,64,3") from None


def main(args) -> int:
    """`harness new|validate|publish` (called from `harness.cli`)."""
    import sys
    import tempfile
    from harness import calibrate, spec
    from harness.cli import EXIT_BELOW, EXIT_OK, default_assignments, default_cache, pick_sandbox
    root = args.assignments or default_assignments()

    if args.command == "new":
        known = spec.load_all(root) if root.is_dir() and any(root.glob("*/assignment.toml")) else {}
        loaded = scaffold(root, args.assignment, args.reference, known, title=args.title, dataset=args.dataset,
                          runtime=args.runtime, seed=args.seed, classes=_list(args.classes),
                          image_shape=_list(args.image_shape, int))
        print(f"wrote {loaded.folder / 'assignment.toml'} (reference {loaded.spec.reference})")
        if args.no_calibrate:
            print(f"next: `harness calibrate {loaded.id}`")
            return EXIT_OK
        try:
            expected = calibrate.derive_expected(loaded, pick_sandbox(args.sandbox), default_cache(), args.timeout)
        except HarnessError as exc:
            print(f"{loaded.folder / 'assignment.toml'} is written but not calibrated: fix what follows, then run "
                  f"`harness calibrate {loaded.id}`", file=sys.stderr)
            raise exc
        print(f"{loaded.id}: {len(expected.layers)} layers, {expected.total_params:,} params "
              f"-> {loaded.folder / calibrate.EXPECTED_FILE}")
        print(f"next: edit the title and [accuracy] in {loaded.folder / 'assignment.toml'} (prepare the data, then "
              f"`harness calibrate {loaded.id} --runs 5` proposes them), mark the solution in the reference with "
              f"{BEGIN} / {END}, then `harness validate {loaded.id}` and `harness publish {loaded.id} DIR`")
        return EXIT_OK

    loaded = _one(root, args.assignment)
    if args.command == "publish":
        target = publish(loaded, calibrate.reference_path(loaded), args.dir)
        print(f"{loaded.id}: student bundle in {target}/: {', '.join(sorted(p.name for p in target.iterdir()))}")
        return EXIT_OK

    chosen = pick_sandbox(args.sandbox)
    for warning in warnings(loaded, calibrate.reference_path(loaded)):
        print(f"warning: {warning}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="harness-validate-") as tmp:
        rec, path = validate(loaded, chosen, default_cache(), args.data_root, args.timeout, args.out or Path(tmp))
        failed = problems(rec)
    kept = f" (record: {path})" if args.out else ""
    if failed:
        print(f"{loaded.id}: the reference does NOT validate: {rec.score:g}/{rec.max_score:g}, status {rec.status}"
              f"{kept}", file=sys.stderr)
        for line in failed:
            print(f"  - {line}", file=sys.stderr)
        return EXIT_BELOW
    accuracy = rec.metrics.holdout_accuracy
    print(f"{loaded.id}: the reference validates: {rec.score:g}/{rec.max_score:g}, holdout accuracy "
          f"{accuracy:.4f} (threshold {loaded.spec.accuracy.threshold:g}), no error finding{kept}")
    return EXIT_OK
