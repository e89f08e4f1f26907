"""Grading images for the docker sandbox: a Debian base, the Dockerfile build, and the tag a checkout needs.

The grading image holds the project (probe, evaluator), both Keras runtimes and a non-root user. Its tag is the
content hash of what went into it (the Dockerfile, the base image id, the wheel lock and the project files), so
a grading job only ever looks the tag up (`ensure_present`) and never builds: `harness image build` (run by
`make install`) does that once and reuses the image while nothing that went in has changed.

Everything talks to the engine through the Docker SDK for Python; `debootstrap` and `tar` make the base.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from harness.errors import InfrastructureError

ROOT = Path(__file__).resolve().parent.parent  # the checkout: the image is built from a checkout, not an install
DOCKER_DIR = "docker"
DOCKERFILE = f"{DOCKER_DIR}/Dockerfile"
LOCK = f"{DOCKER_DIR}/requirements.lock"
IMAGE_REPO = "cnn-harness"
BASE_IMAGE = "cnn-harness-base:bookworm"
BASE_SUITE = "bookworm"
# what the grading image needs from Debian, included at debootstrap time: no network inside a container
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libgomp1")
BASE_PYTHON = "3.11.2"  # bookworm's python3: the lock holds only releases that install on it
LABEL = "org.cnn-harness"
PROBE_IN_IMAGE = "/opt/harness/probe"  # symlinks to the installed package's probe and evaluator
EVALUATOR_IN_IMAGE = "/opt/harness/evaluator"
PYTHON_IN_IMAGE = "/opt/harness/venv/bin/python"
USER_IN_IMAGE = "1000:1000"
BUILD_HINT = "run `harness image build` (or `make install`)"


def base_image() -> str:
    """The base the grading image is built on: $HARNESS_BASE_IMAGE (a TensorFlow GPU image on a GPU site) or ours."""
    return os.environ.get("HARNESS_BASE_IMAGE") or BASE_IMAGE


# ---------------------------------------------------------------- the engine

def engine_unavailable_reason() -> str | None:
    """Why no Docker Engine can be used here, or None when one answers. The one reason tests skip with."""
    try:
        import docker
    except ImportError:
        return "the Docker SDK for Python (`docker` package) is not installed: run `make install`"
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as exc:
        return (f"no Docker Engine answers ({type(exc).__name__}: {exc}); start one with "
                f"`bash scripts/start-dockerd.sh` (it needs root or the docker group)")
    return None


def connect(timeout: int = 600):
    """A Docker SDK client for the local engine, or an InfrastructureError saying why not."""
    reason = engine_unavailable_reason()
    if reason:
        raise InfrastructureError(reason)
    import docker
    return docker.from_env(timeout=timeout)


def _image_id(client, name: str) -> str | None:
    import docker.errors
    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None


# ---------------------------------------------------------------- the tag (pure)

def _project_file(rel: str) -> bool:
    parts = rel.split("/")
    return "__pycache__" not in parts and not rel.endswith((".pyc", ".pyo", "~")) and not parts[-1].startswith(".")


def inputs(root: Path = ROOT) -> dict[str, bytes]:
    """What goes into the image from a checkout, by path: the Dockerfile, the wheel lock, pyproject.toml and the
    files of the `harness` package (caches and editor files left out)."""
    root = Path(root)
    found = {}
    for rel in (DOCKERFILE, LOCK, "pyproject.toml"):
        path = root / rel
        if not path.is_file():
            raise InfrastructureError(f"{path} is missing: the grading image is built from a full checkout")
        found[rel] = path.read_bytes()
    for path in sorted((root / "harness").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and _project_file(rel):
            found[rel] = path.read_bytes()
    return found


def content_hash(files: dict[str, bytes], base_id: str) -> str:
    """sha256 over the base image id and every (path, content) pair, in path order."""
    digest = hashlib.sha256(f"base {base_id}\n".encode())
    for rel in sorted(files):
        data = files[rel]
        digest.update(f"file {rel} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def tag_for(files: dict[str, bytes], base_id: str) -> str:
    return f"{IMAGE_REPO}:{content_hash(files, base_id)[:16]}"


def required_tag(client=None, base: str | None = None, root: Path = ROOT) -> str:
    """The tag of the grading image this checkout needs (on the base of `base_image()` unless told)."""
    base = base or base_image()
    client = client or connect()
    base_id = _image_id(client, base)
    if base_id is None:
        raise InfrastructureError(f"the base image {base} is not on this machine; {BUILD_HINT}")
    return tag_for(inputs(root), base_id)


def ensure_present(client, base: str | None = None, root: Path = ROOT) -> str:
    """The grading image's tag when it is built; never builds. Called by the docker sandbox before each run."""
    tag = required_tag(client, base, root)
    if _image_id(client, tag) is None:
        raise InfrastructureError(f"the grading image {tag} for this checkout is not built; {BUILD_HINT}")
    return tag


# ---------------------------------------------------------------- the base image

def debian_mirror() -> str:
    """The Debian mirror of the host's apt sources ($HARNESS_DEBIAN_MIRROR wins)."""
    if os.environ.get("HARNESS_DEBIAN_MIRROR"):
        return os.environ["HARNESS_DEBIAN_MIRROR"]
    return mirror_from_sources(Path("/etc/apt"))


def mirror_from_sources(apt: Path) -> str:
    """The first main-archive URI (not security) in sources.list.d/*.sources (deb822) or sources.list."""
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(m.groups() for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
            if "deb" in fields.get("Types", "").split() and uris and any("security" not in s for s in suites):
                return uris[0]
    lists = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in lists:
        for line in path.read_text().splitlines() if path.is_file() else []:
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(2):
                return m.group(1)
    raise InfrastructureError(f"no Debian mirror found in {apt}/sources.list(.d); set HARNESS_DEBIAN_MIRROR")


def build_base(client, force: bool = False, log: Callable[[str], None] = print) -> str:
    """`debootstrap --variant=minbase` with BASE_PACKAGES, then `docker import` as BASE_IMAGE. Reused when present."""
    existing = _image_id(client, BASE_IMAGE)
    if existing and not force:
        return existing
    if shutil.which("debootstrap") is None:
        raise InfrastructureError("debootstrap is not installed: run `make install` (scripts/install-system.sh)")
    if os.geteuid() != 0:
        raise InfrastructureError("making the base image with debootstrap needs root; run `sudo harness image build`")
    mirror = debian_mirror()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cnn-harness-base-") as tmp:
        rootfs, tarball = Path(tmp) / "root", Path(tmp) / "root.tar"
        log(f"debootstrap {BASE_SUITE} (minbase + {', '.join(BASE_PACKAGES)}) ...")
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                               BASE_SUITE, str(rootfs), mirror], capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise InfrastructureError(f"debootstrap failed (exit {done.returncode}); the Debian mirror must be "
                                      f"reachable from this machine:\n{tail}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, tag = BASE_IMAGE.split(":")
        changes = ["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]',
                   f'LABEL {LABEL}.base.packages="{" ".join(BASE_PACKAGES)}" {LABEL}.base.suite={BASE_SUITE}']
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag, changes=changes)
    base_id = _image_id(client, BASE_IMAGE)
    if base_id is None:
        raise InfrastructureError(f"docker import did not produce {BASE_IMAGE}")
    log(f"{BASE_IMAGE}: made in {time.monotonic() - started:.0f} s")
    return base_id


# ---------------------------------------------------------------- the wheel lock and wheelhouse

def lock_lines(pyproject: Path = ROOT / "pyproject.toml", python: str = BASE_PYTHON) -> list[str]:
    """`name==version` for the closure of the project's runtime dependencies, as installed in this environment;
    a release that does not install on the image's Python (`python`) is replaced by the newest one that does."""
    import importlib.metadata as md
    import tomllib
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    wanted = [Requirement(r) for r in tomllib.loads(pyproject.read_text())["project"]["dependencies"]]
    seen: dict[str, tuple[str, frozenset]] = {}
    too_new: list[str] = []
    todo = [(r.name, frozenset(r.extras)) for r in wanted]
    while todo:
        name, extras = todo.pop()
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise InfrastructureError(f"{name} is not installed here; run `make install` before `harness image lock`")
        key = canonicalize_name(dist.metadata["Name"])
        if key in seen and extras <= seen[key][1]:
            continue
        extras = extras | (seen[key][1] if key in seen else frozenset())
        seen[key] = (dist.version, extras)
        needs = dist.metadata.get("Requires-Python")
        if needs and not SpecifierSet(needs).contains(python) and key not in too_new:
            too_new.append(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            todo.append((req.name, frozenset(req.extras)))
    pins = {key: version for key, (version, _) in seen.items()}
    for key in too_new:
        pins[key] = _newest_for(key, pins[key], python)
    return [f"{key}=={pins[key]}" for key in sorted(pins)]


def _newest_for(name: str, installed: str, python: str) -> str:
    """The newest release of `name` older than `installed` whose wheel installs on `python` (asks pip)."""
    from packaging.utils import parse_wheel_filename
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                               "--python-version", python, "-d", tmp, f"{name}<{installed}"],
                              capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise InfrastructureError(f"{name} {installed} needs a newer Python than the image's {python}, and pip "
                                      f"found no older release that fits:\n{done.stderr[-1500:]}")
        return str(parse_wheel_filename(wheels[0].name)[1])


def write_lock(root: Path = ROOT) -> Path:
    path = root / LOCK
    header = ("# The Python packages of the grading image: the closure of pyproject.toml's dependencies.\n"
              "# Written by `harness image lock` from the project venv; part of the image tag.\n")
    header += f"# Python {BASE_PYTHON} in the image: releases that need a newer one are replaced by older ones.\n"
    path.write_text(header + "\n".join(lock_lines(root / "pyproject.toml")) + "\n")
    return path


def locked(root: Path = ROOT) -> dict[str, str]:
    """The lock as {canonical name: version}."""
    pins = {}
    for line in (root / LOCK).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def wheelhouse(dest: Path, root: Path = ROOT, log: Callable[[str], None] = print) -> list[Path]:
    """The wheels of the lock in `dest` (kept between builds), fetched with the host's pip configuration, so
    downloads use its CA bundle and local wheel folders. Returns the wheel files the lock names."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    pins = locked(root)
    dest.mkdir(parents=True, exist_ok=True)

    def matching() -> dict[str, Path]:
        found = {}
        for path in dest.glob("*.whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
            if pins.get(canonicalize_name(name)) == str(version):
                found[canonicalize_name(name)] = path
        return found

    have = matching()
    missing = sorted(set(pins) - set(have))
    if missing:
        log(f"wheelhouse: fetching {len(missing)} of {len(pins)} wheels ...")
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(dest),
                               "--find-links", str(dest), *(f"{n}=={pins[n]}" for n in missing)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise InfrastructureError(f"pip could not fetch the image's wheels (exit {done.returncode}):\n{tail}")
        have = matching()
    still = sorted(set(pins) - set(have))
    if still:
        raise InfrastructureError(f"no wheel for {', '.join(still)} in {dest}")
    return [have[n] for n in sorted(have)]


def project_wheel(dest: Path, root: Path = ROOT) -> Path:
    """The project as a wheel, built from a clean copy of its inputs (no stale build/ folder can leak in)."""
    with tempfile.TemporaryDirectory(prefix="cnn-harness-src-") as tmp:
        src = Path(tmp) / "src"
        for rel, data in inputs(root).items():
            if rel.startswith(DOCKER_DIR + "/"):
                continue
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                               "--wheel-dir", str(dest), str(src)], capture_output=True, text=True)
        if done.returncode != 0:
            raise InfrastructureError(f"the project wheel could not be built:\n{done.stdout}{done.stderr}")
    return next(dest.glob("cnn_grading_harness-*.whl"))


# ---------------------------------------------------------------- the grading image

def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build(client, base: str | None = None, no_cache: bool = False, cache: Path | None = None,
          log: Callable[[str], None] = print, root: Path = ROOT) -> str:
    """Builds the grading image for this checkout (reused when its tag exists), checks it, returns its tag."""
    base = base or base_image()
    if base == BASE_IMAGE:
        build_base(client, log=log)
    tag = required_tag(client, base, root)
    if _image_id(client, tag) and not no_cache:
        log(f"{tag}: up to date")
        return tag
    if cache is None:
        from harness.cli import default_cache
        cache = default_cache()
    started = time.monotonic()
    wheels = wheelhouse(cache / "wheelhouse", root, log)
    with tempfile.TemporaryDirectory(prefix="cnn-harness-context-", dir=cache) as tmp:
        context = Path(tmp)
        (context / "wheels").mkdir()
        (context / "project").mkdir()
        for wheel in wheels:
            _place(wheel, context / "wheels" / wheel.name)
        project_wheel(context / "project", root)
        shutil.copyfile(root / LOCK, context / "requirements.lock")
        shutil.copyfile(root / DOCKERFILE, context / "Dockerfile")
        log(f"building {tag} on {base} ...")
        _stream(client.api.build(path=str(context), tag=tag, buildargs={"BASE_IMAGE": base}, nocache=no_cache,
                                 rm=True, forcerm=True, pull=False, decode=True,
                                 labels={f"{LABEL}.tag": tag, f"{LABEL}.base": base}), log)
    log(f"{tag}: built in {time.monotonic() - started:.0f} s; checking it ...")
    check(client, tag)
    log(f"{tag}: ready ({client.images.get(tag).attrs['Size'] / 1e9:.2f} GB)")
    return tag


def _stream(events: Iterable[dict], log: Callable[[str], None]) -> None:
    tail: list[str] = []
    for event in events:
        if "error" in event:
            raise InfrastructureError(f"the image build failed: {event['error'].strip()}\n" + "".join(tail[-20:]))
        text = event.get("stream") or ""
        if text:
            tail.append(text)
            if text.startswith("Step ") or "Successfully" in text:
                log(text.rstrip())


CHECK = """
import os, sys
assert os.getuid() == 1000 and os.getgid() == 1000, (os.getuid(), os.getgid())
import tensorflow, tf_keras, keras
legacy = os.environ.get("HARNESS_RUNTIME") == "legacy"
assert keras.__version__.startswith("2." if legacy else "3."), keras.__version__
assert os.path.isfile("/opt/harness/probe/harness_probe.py") and os.path.isfile("/opt/harness/evaluator/predict.py")
print(sys.version.split()[0], tensorflow.__version__, keras.__version__, "legacy" if legacy else "keras3")
"""


def run_check(client, tag: str, runtime: str) -> str:
    """Runs CHECK in a container of `tag` with no network as uid 1000; returns its output line."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": PROBE_IN_IMAGE, "HARNESS_RUNTIME": runtime}
    if runtime == "legacy":
        env["TF_USE_LEGACY_KERAS"] = "1"
    container = client.containers.create(tag, [PYTHON_IN_IMAGE, "-c", CHECK], user=USER_IN_IMAGE,
                                         network_mode="none", environment=env, read_only=True,
                                         tmpfs={"/tmp": "size=64m"}, labels={f"{LABEL}.check": "1"})
    try:
        container.start()
        status = container.wait(timeout=300)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status.get("StatusCode") != 0:
        raise InfrastructureError(f"the grading image {tag} fails its {runtime} check:\n{output[-2000:]}")
    return output.strip().splitlines()[-1]


def check(client, tag: str) -> list[str]:
    """Both runtimes import in the image, with no network, as the student user, with the probe's legacy switch."""
    return [run_check(client, tag, runtime) for runtime in ("keras3", "legacy")]


# ---------------------------------------------------------------- command line

def add_parser(sub) -> None:
    image = sub.add_parser("image", help="grading images for the docker sandbox: build | tag | lock")
    image.add_argument("action", choices=["build", "tag", "lock"])
    image.add_argument("--base", default=None, help=f"base image (default $HARNESS_BASE_IMAGE or {BASE_IMAGE})")
    image.add_argument("--no-cache", action="store_true", help="build every layer again")


def main(args) -> int:
    if args.action == "lock":
        print(f"wrote {write_lock()}")
        return 0
    engine = connect()
    if args.action == "tag":
        print(required_tag(engine, args.base))
        return 0
    build(engine, args.base, args.no_cache)
    return 0
