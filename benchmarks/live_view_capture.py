"""The live view of a real class run, captured: an SVG from rich's console recording and, when Debian's
chromium is installed, a PNG of it.

Grades a class folder in the real sandbox while the rich view follows it (drawn live on this terminal
when stdout is one), renders what the terminal shows into a recording console every second, and keeps
the fullest moment (most jobs training with an epoch shown, then most running, then most finished). Writes
reports/screenshots/live-view.svg (+ .png) and the end of the run, live-view-summary.svg (+ .png), and
prints how many snapshots it took and what the kept one showed. Jobs run
with --force into reports/live-view-run/ (git-ignored).

    python benchmarks/live_view_capture.py [FOLDER] [--data-root DIR] [--jobs 2] [--quick]
                                           [--assignment ID] [--copy-to docs/live-view.svg]

A full run (the default) shows epochs: prepare the datasets first (`harness data prepare fashion_mnist`
and `ox`); jobs whose dataset is not prepared finish at once with an error record, as in any class run.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import spec  # noqa: E402
from harness.cli import default_cache, pick_sandbox  # noqa: E402
from harness.discover import discover  # noqa: E402
from harness.grade import GradeOptions, grade_all  # noqa: E402
from harness.progress import RichView  # noqa: E402


def recorded(width: int, *renderables) -> Console:
    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor", file=io.StringIO())
    for renderable in renderables:
        console.print(renderable)
    return console


def to_png(svg: Path) -> Path | None:
    """A screenshot of the SVG by headless chromium, at the SVG's own size; None without chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    found = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text())
    if chromium is None or found is None:
        return None
    width, height = (int(float(v)) + 1 for v in found.groups())
    png = svg.with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png}", svg.resolve().as_uri()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
    return png if png.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "submissions")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--assignment", default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per job (default: the assignment's)")
    parser.add_argument("--width", type=int, default=110)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "screenshots")
    parser.add_argument("--records", type=Path, default=Path("reports") / "live-view-run",
                        help="where the run's records go (default reports/live-view-run)")
    parser.add_argument("--copy-to", type=Path, default=None, help="also copy the kept SVG here (e.g. docs/)")
    args = parser.parse_args()

    assignments = spec.load_all(ROOT / "assignments")
    jobs = discover([args.folder], assignments, args.assignment)
    sandbox = pick_sandbox("bwrap")
    args.out.mkdir(parents=True, exist_ok=True)
    options = GradeOptions(quick=args.quick, out=args.records, cache=default_cache(), data_root=args.data_root,
                           jobs=args.jobs, force=True, timeout=args.timeout)
    terminal = Console()
    view = RichView(console=terminal if terminal.is_terminal else Console(file=io.StringIO()),
                    live=terminal.is_terminal)
    flags = [f"--jobs {args.jobs}", *(["--quick"] if args.quick else []),
             *([f"--assignment {args.assignment}"] if args.assignment else []),
             *([f"--timeout {args.timeout:g}"] if args.timeout else [])]
    command = Text(f"$ grade {args.folder.name}/ {' '.join(flags)}", style="bold")
    header = Text(f"Grading {len(jobs)} job(s) in the {sandbox.name} sandbox" + (" (quick)" if args.quick else ""))
    best: list = [(-1, -1, -1), None, ""]
    taken, stop = 0, threading.Event()

    def snapshots() -> None:
        nonlocal taken
        while not stop.wait(1.0):
            finished, running, epochs = view.busy()
            score = (epochs, running, finished)
            if score >= best[0]:
                best[:] = [score, recorded(args.width, command, header, view.screen(width=args.width)),
                           f"{finished} finished, {running} running, {epochs} training with an epoch shown"]
            taken += 1

    thread = threading.Thread(target=snapshots, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        grade_all(jobs, assignments, sandbox, options, view)
    finally:
        stop.set()
        thread.join()
    seconds = time.monotonic() - started
    summary = recorded(args.width, command, header, *(view.done_line(d) for d in view.state.done),
                       view.summary(interrupted=False))
    written = []
    if best[1] is not None:
        live = args.out / "live-view.svg"
        best[1].save_svg(str(live), title="grade: live view of a class run")
        written.append(live)
        if args.copy_to is not None:
            args.copy_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(live, args.copy_to)
            written.append(args.copy_to)
    end = args.out / "live-view-summary.svg"
    summary.save_svg(str(end), title="grade: end of a class run")
    written.append(end)
    pngs = [png for svg in written if svg.parent == args.out and (png := to_png(svg)) is not None]
    print(f"{len(jobs)} job(s) graded in {seconds:.0f} s; {taken} snapshot(s), kept: {best[2] or 'none'}")
    for path in [*written, *pngs]:
        print(f"  wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
