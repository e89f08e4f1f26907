"""Command line: `grade` (students, TAs, CI) and `harness` (instructors: calibrate, schema, data).

Exit codes like pytest's: 0 everything graded with full marks, 1 some job below full marks,
2 interrupted, 3 infrastructure error, 4 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.errors import HarnessError, InfrastructureError, UsageError
from harness.spec import default_assignments

EXIT_OK, EXIT_BELOW, EXIT_INTERRUPTED, EXIT_INFRA, EXIT_USAGE = 0, 1, 2, 3, 4
# what writing the HTML reports imports (some of it lazily): loaded while the first job runs
REPORT_MODULES = ("harness.webreport", "harness.notebook_page", "bleach", "mistune")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2; ours is 4
        self.print_usage(sys.stderr)
        raise UsageError(message)


def default_cache() -> Path:
    base = os.environ.get("HARNESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cnn-harness")
    return Path(base)


def pick_sandbox(name: str):
    from harness import sandbox
    chosen = sandbox.get(name)
    reason = chosen.unavailable_reason()
    if reason:
        raise InfrastructureError(f"sandbox {name!r} cannot run here: {reason}")
    if not chosen.isolates:
        from harness.sandbox.process import WARNING
        print(f"warning: {WARNING}", file=sys.stderr)
    return chosen


def _at_least_one(option: str, noun: str):
    """An argparse type: a whole number of `noun`, at least 1."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {noun}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{option} must be at least 1 ({noun})")
        return value
    return parse


def _jobs(text: str) -> int | None:
    return None if text == "auto" else _at_least_one("--jobs", "jobs or 'auto'")(text)


_megabytes = _at_least_one("--memory", "megabytes per job")


def _gpus(option: str):
    def parse(text: str):
        from harness.resources import parse_gpus
        try:
            return parse_gpus(text, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--assignments", type=Path, default=None, help="folder of assignments (default ./assignments)")
    parser.add_argument("--sandbox", default="bwrap", help="bwrap (default), docker (a container of the grading image) or process (isolates nothing)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per job (default: from the assignment)")


def _run(main, argv) -> int:
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def grade_main(argv: list[str] | None = None) -> int:
    return _run(_grade, sys.argv[1:] if argv is None else argv)


def harness_main(argv: list[str] | None = None) -> int:
    return _run(_harness, sys.argv[1:] if argv is None else argv)


def grade_script() -> None:
    """The `grade` console script: `grade_main`, then `_exit`."""
    _exit(grade_main())


def harness_script() -> None:
    """The `harness` console script: `harness_main`, then `_exit`."""
    _exit(harness_main())


def _exit(code: int) -> None:
    """End the process without the interpreter's teardown: freeing every module and object of a grade
    took 0.15 s of each `grade --quick` (3 % of it), and by now every record and report is written and
    closed; what was printed is flushed first. While a job's thread is still stopping (after Ctrl-C),
    the interpreter's own exit waits for it to clean up, as before."""
    import threading
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said there
            pass
    os._exit(code)


def _grade(argv: list[str]) -> int:
    parser = _Parser(prog="grade", description="Grade submissions: architecture, trusted holdout accuracy, leaks.")
    parser.add_argument("paths", nargs="+", type=Path, help="class folder, student folder or one file")
    parser.add_argument("--quick", action="store_true", help="stop at the first fit: architecture only, seconds")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="where records go (default ./reports)")
    parser.add_argument("--assignment", default=None, help="grade only this assignment")
    parser.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto",
                        help="at most N jobs at once (default auto: what the CPUs, memory and GPUs hold)")
    parser.add_argument("--executor", default="local", help="where jobs run: local (default) or ray")
    parser.add_argument("--address", default=None, help="the Ray cluster's address (--executor ray; default "
                        "$RAY_ADDRESS, a cluster started on this machine, or a new local one)")
    parser.add_argument("--gpus", type=_gpus("--gpus"), default=None, metavar="all|N|IDS",
                        help="GPUs per job, over the assignment's [resources] gpus: N (any N free GPUs; 0: none), "
                             "all (every GPU of the machine: such jobs run one at a time), or device ids "
                             "(0,2 or device=1: those GPUs; jobs naming the same GPU run one at a time)")
    parser.add_argument("--machine-gpus", type=_gpus("--machine-gpus"), default=None, metavar="N|IDS",
                        help="the GPUs this machine has, for the local pool: N (ids 0..N-1) or ids (0,2); "
                             "default: CUDA_VISIBLE_DEVICES, else nvidia-smi -L (for tests and CI)")
    parser.add_argument("--data-root", type=Path, default=None, help="prepared datasets (default $HARNESS_DATA_ROOT)")
    parser.add_argument("--force", action="store_true", help="grade again even if an up-to-date record exists")
    parser.add_argument("--memory", type=_megabytes, default=None, metavar="MB", help="memory limit per job (default: from the assignment)")
    parser.add_argument("--no-html", action="store_true", help="write records and Markdown only, no HTML reports")
    parser.add_argument("--runtime", choices=["keras3", "legacy"], default=None,
                        help="run every job with this runtime (default: the assignment's pin, else detected from "
                             "the code)")
    parser.add_argument("--progress", choices=["auto", "rich", "plain", "none"], default="auto",
                        help="live view (rich), one line per job start and end (plain), or none; "
                             "auto (default): rich on a terminal, plain otherwise")
    _common(parser)
    args = parser.parse_args(argv)

    from harness import spec
    from harness.discover import discover
    from harness.grade import GradeOptions, grade_all, record_path

    assignments = spec.load_all(args.assignments or default_assignments(args.paths))
    jobs = discover(args.paths, assignments, args.assignment)
    if not jobs:
        raise UsageError(f"nothing to grade in {', '.join(map(str, args.paths))}")
    for job in jobs:
        record_path(args.out, job.student, job.assignment)  # every record lands under --out, or nothing runs
    chosen = pick_sandbox(args.sandbox)
    from harness import executors
    if args.executor not in executors.names():
        raise UsageError(f"unknown executor {args.executor!r}; choose one of: {', '.join(executors.names())}")
    machine_gpus = None
    if args.machine_gpus is not None:
        if args.executor != "local":
            raise UsageError("--machine-gpus describes this machine, for the local executor; a Ray cluster's GPUs "
                             "are read from its nodes")
        from harness.resources import machine_gpu_ids
        machine_gpus = machine_gpu_ids(args.machine_gpus)
    if args.gpus is not None and args.gpus.ids and not args.gpus.every and args.executor == "ray":
        from harness.executors.raycluster import NAMED_IDS
        raise UsageError(NAMED_IDS.format(ids=", ".join(args.gpus.ids)))
    missing = [a for a in {j.assignment for j in jobs} if a in assignments and assignments[a].expected is None]
    if missing:
        raise InfrastructureError(f"assignments not calibrated: {', '.join(sorted(missing))}; the instructor "
                                  f"must run `harness calibrate <id>` first")
    # a dataset that is not prepared is checked per job: those jobs get an error record, the rest are graded
    options = GradeOptions(quick=args.quick, out=args.out, cache=default_cache(), timeout=args.timeout,
                           data_root=args.data_root, jobs=args.jobs, force=args.force,
                           memory_mb=args.memory, runtime=args.runtime, executor=args.executor,
                           address=args.address, gpus=args.gpus, machine_gpus=machine_gpus,
                           preload=() if args.no_html else REPORT_MODULES)

    from rich.console import Console
    from rich.text import Text
    from harness import progress
    from harness.reports import console_table
    console = Console(stderr=False)

    console.print(Text(f"Grading {len(jobs)} job(s) in the {chosen.name} sandbox{' (quick)' if args.quick else ''}"))
    records, internal = grade_all(jobs, assignments, chosen, options, progress.make(args.progress, console=console))
    html = None
    if not args.no_html:
        try:  # pure rendering of the records just written; a page that fails changes no grade
            from harness.webreport import HTML_DIR, write_run
            write_run(args.out, assignments, args.data_root)
            html = args.out / HTML_DIR / "index.html"
        except Exception as exc:
            print(f"warning: the HTML reports could not be written ({type(exc).__name__}: {exc}); "
                  f"run `harness report {args.out}` to try again", file=sys.stderr)
    try:
        console.print(console_table(records))
        console.print(Text(f"Records in {args.out}/" + (f"; HTML reports: {html}" if html else "")))
    except Exception as exc:  # the records are written; a console that cannot show them changes no grade
        print(f"warning: the results table could not be printed ({exc}); the records are in {args.out}/",
              file=sys.stderr)
    if internal:
        print(f"error: {internal} job(s) could not be graded because of the machine or the harness; "
              f"their records say what the operator must do", file=sys.stderr)
        return EXIT_INFRA
    full = all(r.status == "graded" and r.score >= r.max_score for r in records)
    return EXIT_OK if full else EXIT_BELOW


def _harness(argv: list[str]) -> int:
    parser = _Parser(prog="harness", description="Instructor tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate", help="derive the expected model from the reference solution")
    cal.add_argument("assignment", nargs="+")
    cal.add_argument("--runs", type=int, default=0, help="also train the reference N times and propose thresholds")
    cal.add_argument("--data-root", type=Path, default=None)
    _common(cal)
    schema = sub.add_parser("schema", help="write (or --check) the record JSON Schema")
    schema.add_argument("--check", action="store_true")
    data = sub.add_parser("data", help="datasets: list | prepare NAME | import NAME PATH")
    data.add_argument("action", choices=["list", "prepare", "import"])
    data.add_argument("name", nargs="?")
    data.add_argument("path", nargs="?", type=Path)
    data.add_argument("--data-root", type=Path, default=None, help="default $HARNESS_DATA_ROOT or ~/.cache/cnn-harness/data")
    rescore = sub.add_parser("rescore", help="judge a finished run again from its stored evidence (no sandbox)")
    rescore.add_argument("out", type=Path, help="the folder of records (grade --out)")
    rescore.add_argument("--assignments", type=Path, default=None, help="folder of assignments (default ./assignments)")
    rescore.add_argument("--data-root", type=Path, default=None, help="prepared datasets (default $HARNESS_DATA_ROOT)")
    board = sub.add_parser("leaderboard", help="benchmark leaderboard of a run folder -> RUN_DIR/leaderboard/")
    board.add_argument("run_dir", type=Path, help="the folder of records (grade --out)")
    board.add_argument("--format", action="append", choices=["csv", "md", "html"], help="default: all three")
    board.add_argument("--public", action="store_true", help="the student-visible board: no private accuracy, no scores")
    export = sub.add_parser("export", help="Gradescope results.json, JUnit XML, GitHub job summary -> RUN_DIR/exports/")
    export.add_argument("run_dir", type=Path, help="the folder of records (grade --out)")
    export.add_argument("--to", action="append", choices=["gradescope", "junit", "github"], required=True,
                        help="repeat for several; github also appends to $GITHUB_STEP_SUMMARY when set")
    report = sub.add_parser("report", help="HTML reports of a run folder -> RUN_DIR/html/ (instructor and student views)")
    report.add_argument("run_dir", type=Path, help="the folder of records (grade --out)")
    report.add_argument("--assignments", type=Path, default=None, help="folder of assignments (default ./assignments)")
    report.add_argument("--data-root", type=Path, default=None, help="prepared datasets, for the misclassified images "
                        "(default $HARNESS_DATA_ROOT or ~/.cache/cnn-harness/data)")
    report.add_argument("--out", type=Path, default=None, help="where the pages go (default RUN_DIR/html)")
    from harness import publish as publishing
    publishing.add_parsers(sub)  # new, validate, publish
    from harness import image
    image.add_parser(sub)  # build | tag | lock
    args = parser.parse_args(argv)

    if args.command == "report":
        from harness import webreport
        return webreport.command(args.run_dir, args.assignments or default_assignments(), args.data_root, args.out)
    if args.command == "data":
        return _data(args)
    if args.command == "image":
        return image.main(args)
    if args.command in ("new", "validate", "publish"):
        return publishing.main(args)
    if args.command == "rescore":
        return _rescore(args)
    if args.command in ("leaderboard", "export"):
        return _publish(args)

    if args.command == "schema":
        from harness import record
        text = json.dumps(record.json_schema(), indent=2) + "\n"
        if args.check:
            if not record.SCHEMA_PATH.exists() or record.SCHEMA_PATH.read_text() != text:
                print(f"{record.SCHEMA_PATH} is out of date: run `harness schema`", file=sys.stderr)
                return EXIT_BELOW
            return EXIT_OK
        record.write_atomic(record.SCHEMA_PATH, text)
        print(f"wrote {record.SCHEMA_PATH}")
        return EXIT_OK
    if args.command == "calibrate":
        from harness import calibrate, spec
        root = args.assignments or default_assignments()
        assignments = spec.load_all(root)
        chosen = pick_sandbox(args.sandbox)
        for aid in args.assignment:
            if aid not in assignments:
                raise UsageError(f"unknown assignment {aid!r}; choose one of: {', '.join(sorted(assignments))}")
            expected = calibrate.derive_expected(assignments[aid], chosen, default_cache(), args.timeout)
            print(f"{aid}: {len(expected.layers)} layers, {expected.total_params:,} params "
                  f"({expected.trainable_params:,} trainable) -> {assignments[aid].folder / 'expected-model.json'}")
            if args.runs > 0:
                loaded = spec.load_assignment(assignments[aid].folder)
                result = calibrate.calibrate_runs(loaded, chosen, default_cache(), args.data_root, args.runs, args.timeout)
                print(f"{aid}: holdout accuracy over {args.runs} runs: mean {result.mean:.4f}, std {result.std:.4f}, "
                      f"min {result.min:.4f}, max {result.max:.4f} on {result.holdout_size:,} images\n"
                      f"  proposed [accuracy] threshold = {result.proposed_threshold}, floor = {result.proposed_floor}; "
                      f"scores above {result.review_above} are flagged for review "
                      f"-> {loaded.folder / calibrate.CALIBRATION_FILE}")
        return EXIT_OK
    raise UsageError(f"unknown command {args.command}")


def _rescore(args) -> int:
    from harness import spec
    from harness.grade import GradeOptions, rescore_all
    from harness.reports import console_table
    from rich.console import Console
    if not args.out.is_dir():
        raise UsageError(f"{args.out}: no such folder of records")
    assignments = spec.load_all(args.assignments or default_assignments())
    options = GradeOptions(quick=False, out=args.out, cache=default_cache(), data_root=args.data_root)
    records = rescore_all(args.out, assignments, options)
    if not records:
        raise UsageError(f"{args.out}: holds no records to judge again")
    try:  # the HTML reports follow the records they render
        from harness.webreport import write_run
        write_run(args.out, assignments, args.data_root)
    except Exception as exc:
        print(f"warning: the HTML reports could not be written ({type(exc).__name__}: {exc})", file=sys.stderr)
    Console().print(console_table(records))
    full = all(r.status == "graded" and r.score >= r.max_score for r in records)
    return EXIT_OK if full else EXIT_BELOW


def _publish(args) -> int:
    """`harness leaderboard` and `harness export`: pure functions of the records in a run folder."""
    from harness import exports, leaderboard
    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir}: no such folder of records")
    run = leaderboard.load_run(args.run_dir)
    for path in run.unreadable:
        print(f"warning: {path} is not a valid record; left out", file=sys.stderr)
    if not run.entries:
        raise UsageError(f"{args.run_dir}: holds no records")
    if args.command == "leaderboard":
        written = leaderboard.write(args.run_dir, run.entries, args.format or ("csv", "md", "html"), args.public)
    else:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        written = exports.write(args.run_dir, run.entries, args.to, Path(summary) if summary else None)
    print(f"{len(run.entries)} record(s) -> {len(written)} file(s) in {args.run_dir}/")
    return EXIT_OK


def _data(args) -> int:
    from harness.data import providers
    root = args.data_root or providers.default_root()
    if args.action == "list":
        print(f"data root: {root}")
        for name in providers.names():
            folder = providers.dataset_dir(name, root)
            if providers.is_prepared(name, root):
                manifest = json.loads((folder / "manifest.json").read_text())
                state = f"prepared ({manifest['provider']}, holdout {manifest['holdout_size']:,} images)"
            else:
                state = f"not prepared: {providers.get(name).source_hint}"
            print(f"  {name:20s} {state}")
        return EXIT_OK
    if not args.name:
        raise UsageError(f"harness data {args.action} needs a dataset name: {', '.join(providers.names())}")
    if args.action == "import" and args.path is None:
        raise UsageError("harness data import NAME PATH: PATH is missing")
    manifest = providers.prepare(args.name, root, args.path if args.action == "import" else None)
    print(f"{args.name}: prepared in {providers.dataset_dir(args.name, root)} "
          f"(holdout {manifest['holdout_size']:,} images, provider {manifest['provider']})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(grade_main())
