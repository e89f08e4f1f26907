"""Discovery: paths on the command line → jobs (one submission × one assignment).

`submissions/<student>/<assignment-id>.ipynb|.py`. A path may be a class folder (one folder per
student), a student folder, or one file. A student folder with no file of a known name still
yields a job, marked invalid, so the student gets a record that says what to rename.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.spec import LoadedAssignment

UNKNOWN = "unknown-assignment"


@dataclass(frozen=True)
class Job:
    student: str
    assignment: str
    folder: Path
    entry: Path | None
    problem: str | None = None


def _candidates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".ipynb", ".py"))


def _is_student_folder(folder: Path, assignments: dict[str, LoadedAssignment]) -> bool:
    names = {n for a in assignments.values() for n in a.spec.entry_names()}
    if any((folder / n).is_file() for n in names):
        return True
    return not any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())


def student_jobs(folder: Path, assignments: dict[str, LoadedAssignment]) -> list[Job]:
    student = folder.name
    jobs = []
    for aid, loaded in assignments.items():
        for name in loaded.spec.entry_names():
            if (folder / name).is_file():
                jobs.append(Job(student, aid, folder, folder / name))
                break
    if jobs:
        return jobs
    files = _candidates(folder)
    if not files:
        return [Job(student, UNKNOWN, folder, None,
                    problem=f"{folder}: no notebook or module was handed in. Name it "
                            f"<assignment-id>.ipynb or .py, one of: {', '.join(sorted(assignments))}.")]
    out = []
    for path in files:
        close = difflib.get_close_matches(path.stem.lower().replace("_", "-"), list(assignments), n=1, cutoff=0.6)
        aid = close[0] if close else UNKNOWN
        hint = (f"rename it to {aid}{path.suffix}" if close
                else f"name it after its assignment, one of: {', '.join(sorted(assignments))}")
        out.append(Job(student, aid, folder, None,
                       problem=f"{path}: the file name matches no assignment; {hint}."))
    return out


def discover(paths: list[Path], assignments: dict[str, LoadedAssignment], only: str | None = None) -> list[Job]:
    jobs: list[Job] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_file():
            match = [aid for aid, a in assignments.items() if path.name in a.spec.entry_names()]
            if not match:
                raise UsageError(f"{path}: the name matches no assignment; expected <assignment-id>.ipynb "
                                 f"or .py, one of: {', '.join(sorted(assignments))}")
            jobs.append(Job(path.parent.resolve().name, match[0], path.parent, path))
        elif _is_student_folder(path, assignments):
            jobs += student_jobs(path, assignments)
        else:
            for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
                jobs += student_jobs(folder, assignments)
    if only:
        if only not in assignments:
            raise UsageError(f"--assignment {only}: unknown; choose one of: {', '.join(sorted(assignments))}")
        jobs = [j for j in jobs if j.assignment == only]
    return jobs
