"""What a sandbox's home starts with, so that a job's first imports cost what they cost on a used machine.

`import tensorflow` imports Keras, which imports matplotlib, which lists the system's fonts (`fc-list` and a
scan of every font file, about half a second) unless its font cache is there: in a sandbox, whose home is a
fresh tmpfs, it never is. The cache is made once per matplotlib version with this interpreter (the one bwrap
runs), kept under the harness's cache folder, bound read-only into the sandbox and copied into the job's home
by the sandbox's first shell line (matplotlib wants a writable cache folder). It is the harness's own data: a
job may change its copy, which only its own process reads. Best effort: without it, jobs run as before.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

INSIDE = "/opt/harness-cache/matplotlib"  # where a backend mounts the cache (docker: made in the image there)
_lock = threading.Lock()
_failed: set[Path] = set()  # caches this process could not make: not tried again for every job


def stage_script(cache: str | None) -> str:
    """The first shell line of every sandbox: the submission copied into the workspace, the cache (when
    there is one) into the home, then the job's own command."""
    warm = (f'[ -d {cache} ] && mkdir -p "$HOME/.cache" && cp -R {cache} "$HOME/.cache/" 2>/dev/null; '
            if cache else "")
    return f'cp -R /submission/. "$HARNESS_WORKSPACE"/ 2>/dev/null; {warm}exec "$@"'


def font_cache(root: Path | None = None) -> Path | None:
    """The folder holding matplotlib's font list for this interpreter, made on first use; None when
    matplotlib is not installed or the list cannot be made."""
    try:
        version = importlib.metadata.version("matplotlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    if root is None:
        from harness.cli import default_cache  # the harness's cache folder (HARNESS_CACHE, XDG_CACHE_HOME)
        root = default_cache()
    folder = root / f"matplotlib-{version}-py{sys.version_info[0]}{sys.version_info[1]}"
    with _lock:
        if any(folder.glob("fontlist-*.json")):
            return folder
        if folder in _failed:
            return None
        _failed.add(folder)  # until it is made below
        tmp = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".matplotlib-", dir=folder.parent))
            # on the host, outside any sandbox, maybe in a student's folder (`grade .`): isolated mode (the
            # current folder is not on sys.path) and run from the new folder (no matplotlibrc is read there)
            done = subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], timeout=120,
                                  env={**os.environ, "MPLCONFIGDIR": str(tmp)}, capture_output=True, cwd=tmp)
            if done.returncode != 0 or not any(tmp.glob("fontlist-*.json")):
                shutil.rmtree(tmp, ignore_errors=True)
                return None
            for extra in tmp.iterdir():  # the font list only
                if not extra.name.startswith("fontlist-"):
                    shutil.rmtree(extra, ignore_errors=True) if extra.is_dir() else extra.unlink()
            tmp.chmod(0o755)
            try:
                tmp.rename(folder)
            except OSError:  # another harness made it meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
        except (OSError, subprocess.SubprocessError):
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            return None
        _failed.discard(folder)
    return folder if any(folder.glob("fontlist-*.json")) else None
