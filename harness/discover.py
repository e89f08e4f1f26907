"""Discovery: paths on the command line → jobs (one submission × one assignment).

`submissions/<student>/<assignment-id>.ipynb|.py`. A path may be a class folder (one folder per
student), a student folder (`.` included), or one file. A student folder with no file of a known
name still yields a job, marked invalid, so the student gets a record that says what to rename.
Nothing here opens a file or follows a symlink inside a class folder: a student folder that is a
symlink is an invalid submission; an entry file that is a symlink is found here and refused in
`grade`. Two inputs that give the same student and assignment are a usage error.
"""

from __future__ import annotations

import difflib
import os
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


def printable(name: str) -> str:
    """A name as valid text: bytes that are not UTF-8 become `\\xff` escapes, and a backslash is
    doubled, so two different names never print the same."""
    return name.replace("\\", "\\\\").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def student_name(folder: Path) -> str:
    """The student a folder belongs to: its own name, `.` and `..` resolved without following symlinks."""
    name = printable(Path(os.path.abspath(folder)).name)
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UsageError(f"{folder}: cannot tell which student this is; grade a folder named after the student")
    return name


def _present(path: Path) -> bool:
    return path.is_symlink() or path.is_file()


def _candidates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _present(p) and p.suffix in (".ipynb", ".py"))


def _is_student_folder(folder: Path, assignments: dict[str, LoadedAssignment]) -> bool:
    names = {n for a in assignments.values() for n in a.spec.entry_names()}
    if any(_present(folder / n) for n in names):
        return True
    return not any(p.is_dir() and not p.is_symlink() and not p.name.startswith(".") for p in folder.iterdir())


def student_jobs(folder: Path, assignments: dict[str, LoadedAssignment], student: str | None = None) -> list[Job]:
    student = student or student_name(folder)
    jobs = []
    for aid, loaded in assignments.items():
        for name in loaded.spec.entry_names():
            if _present(folder / name):
                jobs.append(Job(student, aid, folder, folder / name))
                break
    if jobs:
        return jobs
    files = _candidates(folder)
    shown = printable(str(folder))
    if not files:
        return [Job(student, UNKNOWN, folder, None,
                    problem=f"{shown}: no notebook or module was handed in. Name it "
                            f"<assignment-id>.ipynb or .py, one of: {', '.join(sorted(assignments))}.")]
    problems: dict[str, list[str]] = {}
    for path in files:
        close = difflib.get_close_matches(printable(path.stem).lower().replace("_", "-"), list(assignments),
                                          n=1, cutoff=0.6)
        aid = close[0] if close else UNKNOWN
        hint = (f"rename it to {aid}{path.suffix}" if close
                else f"name it after its assignment, one of: {', '.join(sorted(assignments))}")
        problems.setdefault(aid, []).append(f"{printable(str(path))}: the file name matches no assignment; {hint}.")
    # several misnamed files that point at one assignment share one record
    return [Job(student, aid, folder, None, problem=" ".join(texts)) for aid, texts in problems.items()]


def _class_jobs(path: Path, assignments: dict[str, LoadedAssignment]) -> list[Job]:
    jobs = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.is_symlink():
            jobs.append(Job(printable(folder.name), UNKNOWN, folder, None,
                            problem=f"{printable(str(folder))} is a symbolic link; it was not followed. "
                                    f"Hand in a folder with the files themselves."))
        else:
            jobs += student_jobs(folder, assignments, printable(folder.name))
    return jobs


def _same(a: Job, b: Job) -> bool:
    return os.path.abspath(a.folder) == os.path.abspath(b.folder) and a.entry == b.entry and a.problem == b.problem


def _deduplicate(jobs: list[Job], origin: dict[int, Path]) -> list[Job]:
    """One job per (student, assignment): the same job twice (a path given twice, or a file inside a
    folder also given) is kept once; two different submissions for one record are a usage error."""
    kept: dict[tuple[str, str], Job] = {}
    where: dict[tuple[str, str], Path] = {}
    for index, job in enumerate(jobs):
        key = (job.student, job.assignment)
        if key not in kept:
            kept[key], where[key] = job, origin[index]
        elif not _same(kept[key], job):
            raise UsageError(
                f"{printable(str(where[key]))} and {printable(str(origin[index]))} both give student {job.student!r} "
                f"assignment {job.assignment!r}, whose record would be written twice; grade them separately "
                f"(different --out) or rename one student folder")
    return list(kept.values())


def discover(paths: list[Path], assignments: dict[str, LoadedAssignment], only: str | None = None) -> list[Job]:
    jobs: list[Job] = []
    origin: dict[int, Path] = {}
    for path in paths:
        path = Path(os.path.abspath(path))  # `grade .` and `grade ../alice` name the student by the folder
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{path}: no such file or folder")
        if not path.is_dir():
            match = [aid for aid, a in assignments.items() if path.name in a.spec.entry_names()]
            if not match:
                raise UsageError(f"{path}: the name matches no assignment; expected <assignment-id>.ipynb "
                                 f"or .py, one of: {', '.join(sorted(assignments))}")
            found = [Job(student_name(path.parent), match[0], path.parent, path)]
        elif _is_student_folder(path, assignments):
            found = student_jobs(path, assignments)
        else:
            found = _class_jobs(path, assignments)
        for job in found:
            origin[len(jobs)] = path
            jobs.append(job)
    if only:
        if only not in assignments:
            raise UsageError(f"--assignment {only}: unknown; choose one of: {', '.join(sorted(assignments))}")
        keep = [i for i, j in enumerate(jobs) if j.assignment == only]
        jobs, origin = [jobs[i] for i in keep], {n: origin[i] for n, i in enumerate(keep)}
    return _deduplicate(jobs, origin)
