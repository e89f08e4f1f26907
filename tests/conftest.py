from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import nbformat

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def assignments():
    from harness import spec
    return spec.load_all(ROOT / "assignments")


def _reject(token: str):
    raise ValueError(f"record holds {token}, which is not JSON")


def run_grade(args: list[str], out: Path) -> tuple[int, dict[tuple[str, str], dict]]:
    """Runs the real `grade` command in-process; returns its exit code and the records by (student, assignment)."""
    from harness.cli import grade_main
    html = ["--no-html"] if "--html" not in args else []  # HTML reports are tested on their own
    code = grade_main([*[a for a in args if a != "--html"], *html, "--out", str(out),
                       "--assignments", str(ROOT / "assignments")])
    records = {}
    for path in (p for p in out.glob("*/*.json") if not p.name.startswith(".")):
        data = json.loads(path.read_text(), parse_constant=_reject)  # records are strict JSON: no NaN
        records[(data["student"], data["assignment"])] = data
    return code, records


@pytest.fixture
def grade(tmp_path):
    def _grade(*args: str):
        return run_grade(list(args), tmp_path / "reports")
    return _grade


@pytest.fixture
def student(tmp_path):
    """Make a student folder from fixture files: student('name', {'mnist-cnn.py': 'text'})."""
    def _make(name: str, files: dict[str, str | Path]) -> Path:
        folder = tmp_path / "submissions" / name
        folder.mkdir(parents=True)
        for filename, content in files.items():
            if isinstance(content, Path):
                shutil.copyfile(content, folder / filename)
            else:
                (folder / filename).write_text(content)
        return folder
    return _make


@pytest.fixture(scope="session")
def data_root(tmp_path_factory, assignments):
    """A data root with real Fashion-MNIST (Debian's files) and small generated class-folder sets
    for `ox` and `dogs-vs-cats-small` (noise images: the layout is real, the content is not)."""
    from harness.data import providers, standin
    root = tmp_path_factory.mktemp("data-root")
    providers.prepare("fashion_mnist", root)
    for aid in ("ox", "dogs-vs-cats-small"):
        spec = assignments[aid].spec.data.model_copy(update={"standin_images_per_class": 6})
        folders = standin.make(spec, tmp_path_factory.mktemp(f"{aid}-source"))
        providers.import_folders(spec.name, folders, providers.dataset_dir(spec.name, root), spec, "generated-for-tests")
    return root


# ---- fixtures whose expected finding location is marked with '# <- finding'

MARK = "# <- finding"


def header(text: str, key: str) -> str:
    return re.search(rf"^# {key}: (\S+)", text, re.M).group(1)


def as_notebook(text: str) -> tuple[str, str]:
    """(notebook JSON, expected location) from a module whose cells are separated by '# %%'."""
    cells = text.split("# %%\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.strip("\n")) for c in cells])
    where = None
    for index, cell in enumerate(nb.cells):
        for number, line in enumerate(cell.source.splitlines(), 1):
            if MARK in line:
                where = f"cell {index + 1}, line {number}"
    return nbformat.writes(nb), where


def module_where(name: str, text: str) -> str | None:
    number = next((i for i, line in enumerate(text.splitlines(), 1) if MARK in line), None)
    return f"{name}:{number}" if number else None




def processes_with(token: str) -> list[int]:
    """Processes whose command line holds `token` (a hostile fixture's marker)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


@functools.cache
def docker_missing() -> str | None:
    """Why docker-sandbox tests cannot run here (no engine answers), else None: the one reason they skip on."""
    from harness.image import engine_unavailable_reason
    return engine_unavailable_reason()


def my_containers() -> list:
    """Containers this test process's harness made that still exist (none once its sandboxes are done)."""
    from harness.sandbox.docker import LABEL, OWNER, DockerSandbox, _owner
    found = DockerSandbox().client().containers.list(all=True, filters={"label": f"{LABEL}=1"})
    return [c for c in found if c.labels.get(OWNER) == _owner()]
