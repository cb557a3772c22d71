"""Node images: build, tag, list and prune the pinned Dask and Spark images.

Why it works this way:

* No registry is assumed. The base images are made from Debian packages with
  ``mmdebstrap`` and ``docker import`` (``images/build-base.sh``), or, for
  users who can pull, from ``$BASE_IMAGE`` plus ``images/Dockerfile.base-online``.
* Python packages come from a host wheelhouse (cached, keyed by the lock hash)
  and are installed with ``--no-index --require-hashes`` in a build that has
  no network, so a node runs exactly what ``images/requirements.lock`` says.
  Source-only packages (pyspark) are hash-checked as sdists on the host, built
  into pure wheels, and pinned in the build's requirement file by the sha256
  of that wheel.
* A node tag is ``clusterkit/<backend>:<hash12>`` over the backend's lock, its
  Dockerfile, the trim script, the base image ref and ``clusterkit.__version__``.
  The clusterkit source is not in the tag: it is the last (small) layer and
  its hash is the ``clusterkit.source-hash`` label, so a code-only change
  rebuilds just that layer under the same tag (:func:`ensure_image` does it).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import __version__
from .errors import BuildError, EngineUnavailable, ImageError, ImageNotFound, UnknownBackend

BACKENDS = ("dask", "spark")
PYTHON_MINOR = "3.11"
PROJECT_LABEL = "clusterkit.project"
PROJECT = "clusterkit"
REPO = "clusterkit"
# Wheels are chosen for the node, not the host: CPython 3.11 on Debian
# bookworm (glibc 2.36), x86_64.
WHEEL_PLATFORM = "manylinux_2_36_x86_64"
# pip does not widen a --platform to older glibc tags by itself.
WHEEL_PLATFORMS = [f"manylinux_2_{v}_x86_64" for v in range(36, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
WHEEL_PYTHON = "311"
UNION_LOCK = "requirements.lock"
SPARK_HOME = f"/opt/venv/lib/python{PYTHON_MINOR}/site-packages/pyspark"

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


# --- paths ------------------------------------------------------------------


def images_dir() -> Path:
    """The folder with locks, Dockerfiles and scripts ($CLUSTERKIT_IMAGES_DIR for tests)."""
    env = os.environ.get("CLUSTERKIT_IMAGES_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "images"


def cache_dir() -> Path:
    """Host cache for wheelhouses, kept across builds so rebuilds don't re-download."""
    env = os.environ.get("CLUSTERKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clusterkit"


def _source_dir() -> Path:
    return Path(__file__).resolve().parent


# --- locks --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pin:
    """One ``name==version --hash=...`` entry of a hashed lock."""

    name: str  # normalized (PEP 503)
    version: str
    hashes: tuple[str, ...]
    marker: str = ""

    def line(self, hashes: Iterable[str] | None = None) -> str:
        marker = f" ; {self.marker}" if self.marker else ""
        hs = " ".join(f"--hash={h}" for h in (self.hashes if hashes is None else hashes))
        return f"{self.name}=={self.version}{marker} {hs}".rstrip()


_PIN_RE = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)\s*(?:;\s*([^\\]*?))?\s*(?=--hash|$)"
)


def normalize(name: str) -> str:
    """PEP 503 name: wheels, pip freeze and locks spell names differently."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Pin]:
    """Parse a pip-compile/uv hashed lock into {normalized name: Pin}."""
    pins: dict[str, Pin] = {}
    logical = re.sub(r"\\\s*\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = _PIN_RE.match(line)
        if not m:
            raise BuildError(f"cannot parse lock line {raw.strip()!r}: expected name==version --hash=...")
        name = normalize(m.group(1))
        hashes = tuple(re.findall(r"--hash[= ](\w+:[0-9a-fA-F]+)", line))
        pins[name] = Pin(name, m.group(2), hashes, (m.group(3) or "").strip())
    return pins


def read_lock(path: Path) -> dict[str, Pin]:
    try:
        return parse_lock(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"lock file {path} is missing: run `make lock`") from None


def lock_path(backend: str | None = None) -> Path:
    """The union lock (backend None) or a node image's subset lock."""
    if backend is None:
        return images_dir() / UNION_LOCK
    _check_backend(backend)
    return images_dir() / f"{backend}.lock"


def lock_hash(path: str | Path | None = None) -> str:
    """sha256 hex of the union lock: the one number saying 'same environment'."""
    p = Path(path) if path else lock_path()
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise BuildError(f"lock file {p} is missing: run `make lock`") from None


def subset_problems(subset: dict[str, Pin], union: dict[str, Pin]) -> list[str]:
    """Why a node lock is not a pinned subset of the union lock (empty if it is)."""
    problems = []
    for name, pin in sorted(subset.items()):
        u = union.get(name)
        if u is None:
            problems.append(f"{name} is not in {UNION_LOCK}")
        elif u.version != pin.version:
            problems.append(f"{name}=={pin.version} but {UNION_LOCK} has {u.version}")
        elif not set(pin.hashes) <= set(u.hashes):
            problems.append(f"{name}=={pin.version} has hashes {UNION_LOCK} does not list")
    return problems


def _uv() -> list[str]:
    env = os.environ.get("UV")
    if env:
        return [env]
    found = shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


def compile_locks(*, union: bool = False, progress: Progress = _quiet) -> list[Path]:
    """Recompile the node locks (and the union lock if asked) with uv.

    The node locks use the union lock as constraints, so a version can only
    differ if the union lock changes, and then both are recompiled together.
    """
    d = images_dir()
    common = [
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--generate-hashes",
        "--python-version",
        PYTHON_MINOR,
        "--python-platform",
        "x86_64-manylinux_2_36",
    ]
    jobs = []
    if union:
        jobs.append((["requirements.in", "-o", UNION_LOCK], d / UNION_LOCK))
    for b in BACKENDS:
        jobs.append((["-c", UNION_LOCK, f"{b}.in", "-o", f"{b}.lock"], d / f"{b}.lock"))
    out = []
    for args, target in jobs:
        progress(f"compiling {target.name}")
        r = subprocess.run(_uv() + common + args, cwd=d, capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"uv pip compile for {target.name} failed: {_last_error(r.stderr)}")
        out.append(target)
    u = read_lock(d / UNION_LOCK)
    for b in BACKENDS:
        probs = subset_problems(read_lock(d / f"{b}.lock"), u)
        if probs:
            raise BuildError(f"{b}.lock is not a subset of {UNION_LOCK}: {'; '.join(probs)}")
    return out


# --- tags -----------------------------------------------------------------------


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UnknownBackend(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


def _digest(parts: Iterable[bytes | str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BuildError(f"{path} is missing: it is needed to build the image") from None


def _base_packages(jre: bool) -> list[Path]:
    d = images_dir()
    return [d / "base.packages"] + ([d / "base-jre.packages"] if jre else [])


def package_list(jre: bool) -> list[str]:
    """Debian packages of a base image, read from images/base*.packages."""
    names: list[str] = []
    for p in _base_packages(jre):
        for line in _read(p).decode().splitlines():
            names += line.split("#", 1)[0].split()
    return names


def _online_base(jre: bool, base_image: str | None) -> str | None:
    if base_image:
        return base_image
    if jre:
        return os.environ.get("BASE_IMAGE_JRE") or os.environ.get("BASE_IMAGE") or None
    return os.environ.get("BASE_IMAGE") or None


def base_tag(jre: bool, *, base_image: str | None = None) -> str:
    """``clusterkit/base[-jre]:<hash12>`` over the package list and the recipe."""
    d = images_dir()
    online = _online_base(jre, base_image)
    parts: list[bytes | str] = ["jre" if jre else "nojre", " ".join(package_list(jre))]
    if online:
        parts += ["online", online, _read(d / "Dockerfile.base-online")]
    else:
        parts += ["mmdebstrap", _read(d / "build-base.sh")]
    name = "base-jre" if jre else "base"
    return f"{REPO}/{name}:{_digest(parts)[:12]}"


def _node_files(backend: str) -> list[Path]:
    d = images_dir()
    return [d / f"Dockerfile.{backend}", d / "trim-venv.sh"]


def image_tag(backend: str, *, base_image: str | None = None) -> str:
    """``clusterkit/<backend>:<hash12>`` over lock, Dockerfile, base and version.

    The clusterkit source is deliberately not part of it (see module doc).
    """
    _check_backend(backend)
    parts: list[bytes | str] = [backend, _read(lock_path(backend))]
    parts += [_read(p) for p in _node_files(backend)]
    parts += [base_tag(backend == "spark", base_image=base_image), __version__]
    return f"{REPO}/{backend}:{_digest(parts)[:12]}"


def env_tag(ref: str) -> str:
    """``clusterkit/<backend>-env:<hash12>``: the venv build stage of a node image."""
    repo, _, tag = ref.rpartition(":")
    return f"{repo}-env:{tag}"


def source_hash(root: Path | None = None) -> str:
    """Hash of the clusterkit .py sources that go into the last image layer."""
    root = root or _source_dir()
    parts: list[bytes | str] = []
    for p in sorted(_source_files(root)):
        parts += [p.relative_to(root).as_posix(), p.read_bytes()]
    return _digest(parts)[:16]


def _source_files(root: Path) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    ]


# --- docker -------------------------------------------------------------------


def _client():
    from clusterkit.engine import docker_client

    return docker_client(timeout=600)


def _get_image(client, ref: str):
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def image_exists(ref: str) -> bool:
    """True if the engine has an image of that ref (no pull is tried)."""
    return _get_image(_client(), ref) is not None


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    ref: str
    backend: str  # dask, spark, base, base-jre, or dask-env/spark-env (venv build stages)
    tag: str
    lock_hash: str
    size_bytes: int
    created: str  # ISO 8601, as the engine reports it


def list_images() -> list[ImageInfo]:
    """Every tagged clusterkit image (nodes and bases) on the engine."""
    client = _client()
    out = []
    for img in client.images.list(filters={"label": f"{PROJECT_LABEL}={PROJECT}"}):
        labels = img.labels or {}
        for ref in img.tags:
            repo, _, tag = ref.rpartition(":")
            if not repo.startswith(f"{REPO}/"):
                continue
            backend = labels.get("clusterkit.backend") or repo.split("/", 1)[1]
            out.append(
                ImageInfo(
                    ref,
                    backend,
                    tag,
                    labels.get("clusterkit.lock-hash", ""),
                    int(img.attrs.get("Size", 0)),
                    img.attrs.get("Created", ""),
                )
            )
    return sorted(out, key=lambda i: (i.backend, i.created), reverse=False)


def current_refs() -> set[str]:
    """Refs that the current locks and recipes would produce."""
    refs = set()
    for b in BACKENDS:
        refs.add(image_tag(b))
        refs.add(env_tag(image_tag(b)))
    refs.add(base_tag(False))
    refs.add(base_tag(True))
    return refs


def prune(keep_current: bool = True) -> list[str]:
    """Remove clusterkit images (and cached wheelhouses), all or all but the current ones.

    Returns the refs and wheelhouse folders removed. Images in use by a
    container are left alone.
    """
    import docker

    client = _client()
    keep = current_refs() if keep_current else set()
    removed = []
    # Nodes first, then their venv stages, then bases: a parent cannot go before its children.
    infos = sorted(list_images(), key=lambda i: (i.backend.startswith("base"), i.backend.endswith("-env")))
    for info in infos:
        if info.ref in keep:
            continue
        try:
            client.images.remove(info.ref)
            removed.append(info.ref)
        except docker.errors.APIError:
            pass  # in use by a container, or a parent of a kept image
    if not keep_current:
        client.images.prune(filters={"dangling": True, "label": f"{PROJECT_LABEL}={PROJECT}"})
    return removed + [str(p) for p in prune_wheelhouses(keep_current)]


def prune_wheelhouses(keep_current: bool = True) -> list[Path]:
    """Delete cached wheelhouses of other locks (each is ~0.5 GB); returns the folders removed."""
    root = cache_dir() / "wheelhouse"
    keep = lock_hash()[:16] if keep_current else None
    removed = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and not (keep and d.name.startswith(keep)):  # keep an in-progress download too
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def image_versions(ref: str) -> dict[str, str]:
    """{package: version} of a node image, from its labels (no container run)."""
    img = _get_image(_client(), ref)
    if img is None:
        raise ImageNotFound(f"image {ref} is not on the engine: build it with `clusterkit image build`")
    raw = (img.labels or {}).get("clusterkit.versions")
    if not raw:
        raise ImageError(f"image {ref} has no clusterkit.versions label: it was not built by clusterkit")
    return json.loads(raw)


def _stream_build(client, progress: Progress, what: str, **kwargs) -> None:
    """Run a legacy-builder build; raise BuildError with the failing step's output."""
    import docker

    tail: list[str] = []
    try:
        for chunk in client.api.build(rm=True, forcerm=True, decode=True, **kwargs):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        tail = [*tail, line][-15:]
                        progress(line)
            if "error" in chunk:
                msg = chunk["error"].strip()
                raise BuildError(f"building {what} failed: {msg}\n" + "\n".join(tail[-10:]))
    except docker.errors.APIError as e:
        raise BuildError(f"building {what} failed: {e.explanation or e}") from e


# --- base images -----------------------------------------------------------------


def build_base(jre: bool, *, base_image: str | None = None, progress: Progress = _quiet) -> str:
    """Build (or find) ``clusterkit/base[-jre]:<hash>``; returns its ref.

    Without ``base_image`` (or $BASE_IMAGE / $BASE_IMAGE_JRE) it is made from
    Debian packages with mmdebstrap, so no registry is needed.
    """
    client = _client()
    ref = base_tag(jre, base_image=base_image)
    if _get_image(client, ref) is not None:
        return ref
    online = _online_base(jre, base_image)
    t0 = time.monotonic()
    if online:
        _build_base_online(client, ref, online, jre, progress)
    else:
        _build_base_mmdebstrap(ref, jre, progress)
    progress(f"built {ref} in {time.monotonic() - t0:.1f}s")
    return ref


def _build_base_online(client, ref: str, online: str, jre: bool, progress: Progress) -> None:
    if _get_image(client, online) is None:
        raise ImageNotFound(
            f"base image {online!r} (BASE_IMAGE) is not on the engine: `docker pull {online}` "
            "first, or unset BASE_IMAGE/BASE_IMAGE_JRE to build the base from Debian packages"
        )
    dockerfile = images_dir() / "Dockerfile.base-online"
    _read(dockerfile)
    with tempfile.TemporaryDirectory(prefix="clusterkit-base-") as ctx:
        shutil.copy(dockerfile, Path(ctx) / "Dockerfile")
        _stream_build(
            client,
            progress,
            ref,
            path=ctx,
            tag=ref,
            buildargs={"BASE_IMAGE": online, "PACKAGES": " ".join(package_list(jre))},
            labels={PROJECT_LABEL: PROJECT, "clusterkit.base-from": online},
        )


def _build_base_mmdebstrap(ref: str, jre: bool, progress: Progress) -> None:
    script = images_dir() / "build-base.sh"
    _read(script)
    if not shutil.which("mmdebstrap"):
        raise BuildError(
            "mmdebstrap is not installed: `apt-get install mmdebstrap`, or set BASE_IMAGE "
            "to a debian:bookworm-slim-like image you have pulled"
        )
    cmd = ["sh", str(script), ref] + [str(p) for p in _base_packages(jre)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = [*tail, line][-15:]
        progress(line)
    if proc.wait():
        raise BuildError(f"building {ref} with mmdebstrap failed:\n" + "\n".join(tail))


# --- wheelhouse ---------------------------------------------------------------------


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith(("ERROR", "error"))]
    return (errs or lines or ["(no output)"])[-1]


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _wheel_name(filename: str) -> str:
    return normalize(filename.split("-", 1)[0])


def wheelhouse(*, progress: Progress = _quiet) -> Path:
    """Download (once per lock hash) every wheel of the union lock for the node platform.

    Returns the folder; ``manifest.json`` in it maps each package to its
    wheel file and the hash the image build must require.
    """
    from filelock import FileLock

    pins = read_lock(lock_path())
    key = lock_hash()[:16]
    root = cache_dir() / "wheelhouse"
    final = root / key
    if (final / "manifest.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):
        if (final / "manifest.json").exists():
            return final
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        try:
            manifest = _fill_wheelhouse(work, pins, progress)
            (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
            for scratch in ("sdists", "built", "binary.txt", "source.txt"):
                p = work / scratch
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            if final.exists():
                shutil.rmtree(final)
            work.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"wheelhouse {final} ready in {time.monotonic() - t0:.1f}s")
    return final


def _fill_wheelhouse(work: Path, pins: dict[str, Pin], progress: Progress) -> dict:
    wheels = work / "wheels"
    wheels.mkdir()
    target = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    target += ["--python-version", WHEEL_PYTHON, "--implementation", "cp", "--abi", f"cp{WHEEL_PYTHON}"]
    source_only: set[str] = set()
    # Binary wheels first; a package with no wheel for the node platform is
    # retried below as an sdist (pyspark is one).
    while True:
        todo = [p for n, p in pins.items() if n not in source_only]
        if not todo:
            break
        req = work / "binary.txt"
        req.write_text("\n".join(p.line() for p in todo) + "\n")
        progress(f"downloading {len(todo)} wheels for cp{WHEEL_PYTHON}/{WHEEL_PLATFORM}")
        r = _pip(
            [
                "download",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                *target,
                "-d",
                str(wheels),
                "-r",
                str(req),
            ]
        )
        if r.returncode == 0:
            break
        missing = _missing_distribution(r.stdout + r.stderr)
        if missing is None or missing in source_only or missing not in pins:
            raise BuildError(f"pip download failed: {_last_error(r.stderr or r.stdout)}")
        source_only.add(missing)
    built: dict[str, str] = {}
    if source_only:
        built = _build_source_wheels(work, wheels, [pins[n] for n in sorted(source_only)], progress)
    manifest: dict[str, dict] = {}
    for f in sorted(wheels.iterdir()):
        name = _wheel_name(f.name)
        if name not in pins:
            continue
        manifest[name] = {
            "file": f.name,
            "version": pins[name].version,
            "hashes": [built[name]] if name in built else list(pins[name].hashes),
            "built_from_sdist": name in built,
        }
    missing = set(pins) - set(manifest)
    if missing:
        raise BuildError(f"no wheel was obtained for {', '.join(sorted(missing))}")
    return manifest


def _missing_distribution(output: str) -> str | None:
    m = re.search(r"No matching distribution found for ([A-Za-z0-9._-]+)", output)
    return normalize(m.group(1)) if m else None


def _build_source_wheels(work: Path, wheels: Path, pins: list[Pin], progress: Progress) -> dict[str, str]:
    sdists = work / "sdists"
    sdists.mkdir()
    req = work / "source.txt"
    req.write_text("\n".join(p.line() for p in pins) + "\n")
    names = ", ".join(f"{p.name}=={p.version}" for p in pins)
    progress(f"downloading sdists (hash-checked): {names}")
    r = _pip(
        ["download", "--no-deps", "--require-hashes", "--no-binary=:all:", "-d", str(sdists), "-r", str(req)]
    )
    if r.returncode:
        raise BuildError(
            f"pip could not download {names}: no wheel for cp{WHEEL_PYTHON}/{WHEEL_PLATFORM} and no sdist "
            f"on the package index, or the index is unreachable ({_last_error(r.stderr or r.stdout)}); "
            "fix the name or version in images/requirements.in and run `make lock`"
        )
    built: dict[str, str] = {}
    for sdist in sorted(sdists.iterdir()):
        progress(f"building a wheel from {sdist.name}")
        out = work / "built"
        r = _pip(["wheel", "--no-deps", "-w", str(out), str(sdist)])
        if r.returncode:
            raise BuildError(
                f"building a wheel from {sdist.name} failed: {_last_error(r.stderr or r.stdout)}"
            )
        for whl in out.iterdir():
            tags = whl.name[:-4].split("-")[-3:]
            if tags[1:] != ["none", "any"]:
                raise BuildError(
                    f"{sdist.name} built a platform wheel {whl.name}; only pure-Python "
                    "sdists can be used, the node platform needs a published wheel"
                )
            dest = wheels / whl.name
            whl.rename(dest)
            built[_wheel_name(whl.name)] = _sha256(dest)
    return built


# --- node images ---------------------------------------------------------------------


def _node_requirements(backend: str, manifest: dict) -> str:
    """The image's requirement file: the backend lock, sdist-built wheels by their own hash."""
    pins = read_lock(lock_path(backend))
    lines = [f"# generated from images/{backend}.lock by clusterkit.images; do not edit"]
    for name, pin in sorted(pins.items()):
        entry = manifest.get(name)
        if entry is None:
            raise BuildError(
                f"{name} is in {backend}.lock but not in the wheelhouse of {UNION_LOCK}: run `make lock`"
            )
        lines.append(pin.line(entry["hashes"] if entry["built_from_sdist"] else None))
    return "\n".join(lines) + "\n"


def label_instruction(labels: dict[str, str]) -> str:
    """A single Dockerfile LABEL line; values are JSON-quoted (the parser unescapes them)."""
    return "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))


def _copy_source(dest: Path) -> None:
    """Copy the clusterkit sources into the build context, with .pyc when the host runs 3.11.

    The node user cannot write __pycache__ under /opt, so without them every
    process start would compile clusterkit again. Hash-checked .pyc stay valid
    whatever the file times are after COPY; compiling here saves a RUN step
    (a layer commit) on every code-only rebuild.
    """
    import compileall
    import py_compile

    src = _source_dir()
    for p in _source_files(src):
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == PYTHON_MINOR:
        compileall.compile_dir(
            str(dest), quiet=2, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
        )


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def build_node_image(
    backend: str, *, base_image: str | None = None, progress: Progress = _quiet, force: bool = False
) -> str:
    """Build ``clusterkit/<backend>:<hash>`` (base and wheelhouse too if needed); returns its ref.

    Cheap when only the clusterkit source changed: every layer but the last
    comes from the build cache. ``force`` builds without the cache.
    """
    _check_backend(backend)
    jre = backend == "spark"
    for p in _node_files(backend):
        if not p.is_file():
            raise BuildError(f"{p} is missing: it is needed to build the {backend} image")
    client = _client()
    online = _online_base(jre, base_image)
    if online and _get_image(client, online) is None:
        raise ImageNotFound(
            f"base image {online!r} (BASE_IMAGE) is not on the engine: `docker pull {online}` "
            "first, or unset BASE_IMAGE/BASE_IMAGE_JRE to build the base from Debian packages"
        )
    union = read_lock(lock_path())
    probs = subset_problems(read_lock(lock_path(backend)), union)
    if probs:
        raise BuildError(f"{backend}.lock is out of date with {UNION_LOCK} ({probs[0]}): run `make lock`")
    ref = image_tag(backend, base_image=base_image)
    house = wheelhouse(progress=progress)
    base = build_base(jre, base_image=base_image, progress=progress)
    manifest = json.loads((house / "manifest.json").read_text())
    versions = {n: p.version for n, p in sorted(read_lock(lock_path(backend)).items())}
    labels = {
        PROJECT_LABEL: PROJECT,
        "clusterkit.backend": backend,
        "clusterkit.lock-hash": lock_hash(),
        "clusterkit.image-lock-hash": lock_hash(lock_path(backend)),
        "clusterkit.python": PYTHON_MINOR,
        "clusterkit.version": __version__,
        "clusterkit.source-hash": source_hash(),
        "clusterkit.base": base,
        "clusterkit.versions": json.dumps(versions, separators=(",", ":")),
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"clusterkit-{backend}-") as tmp:
        ctx = Path(tmp)
        for p in _node_files(backend):
            shutil.copy(p, ctx / ("Dockerfile" if p.name.startswith("Dockerfile") else p.name))
        (ctx / "requirements.txt").write_text(_node_requirements(backend, manifest))
        (ctx / "wheels").mkdir()
        for name in versions:
            f = manifest[name]["file"]
            _link_or_copy(house / "wheels" / f, ctx / "wheels" / f)
        _copy_source(ctx / "clusterkit")
        # One LABEL step at the end (build-time `labels=` makes one step per label).
        # The lock hash also goes into the environment: the drift check reads it
        # from inside each node.
        with open(ctx / "Dockerfile", "a") as f:
            f.write("\n" + label_instruction(labels) + "\n")
            f.write(f"ENV CLUSTERKIT_LOCK_HASH={labels['clusterkit.lock-hash']}\n")
        # No network: everything the image needs is in the context.
        # The venv stage gets its own tag so that `docker image prune` cannot
        # drop it as dangling: it is the cache a code-only rebuild relies on.
        env = env_tag(ref)
        if force or _get_image(client, env) is None:
            _stream_build(
                client,
                progress,
                env,
                path=str(ctx),
                tag=env,
                target="env",
                buildargs={"BASE": base},
                network_mode="none",
                nocache=force,
            )
        _stream_build(
            client,
            progress,
            ref,
            path=str(ctx),
            tag=ref,
            buildargs={"BASE": base},
            network_mode="none",
            nocache=force,
        )
    progress(f"built {ref} in {time.monotonic() - t0:.1f}s")
    return ref


def ensure_image(backend: str, *, progress: Progress = _quiet) -> str:
    """The current node image ref, building what is missing or stale; a no-op if up to date.

    Stale means the clusterkit source differs from the image's last layer.
    A file lock keeps parallel callers (pytest-xdist, two CLIs) from building twice.
    """
    from filelock import FileLock

    ref = image_tag(backend)
    client = _client()

    def current() -> bool:
        img = _get_image(client, ref)
        return img is not None and (img.labels or {}).get("clusterkit.source-hash") == source_hash()

    if current():
        return ref
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{backend}.lock")):
        if current():
            return ref
        return build_node_image(backend, progress=progress)


# --- command line (python -m clusterkit.images ...) ----------------------------------------


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clusterkit.images", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lk = sub.add_parser("lock", help="recompile images/dask.lock and spark.lock")
    lk.add_argument("--union", action="store_true", help="also recompile requirements.lock")
    sub.add_parser("wheelhouse", help="download/build the wheelhouse for the lock")
    bb = sub.add_parser("base", help="build the base image(s)")
    bb.add_argument("--jre", action="store_true", help="only the JRE base")
    bb.add_argument("--no-jre", action="store_true", help="only the plain base")
    b = sub.add_parser("build", help="build a node image")
    b.add_argument("backend", choices=BACKENDS)
    b.add_argument("--force", action="store_true", help="do not use the layer cache")
    sub.add_parser("build-all", help="build bases, wheelhouse and both node images")
    e = sub.add_parser("ensure", help="build a node image if missing or stale")
    e.add_argument("backend", choices=BACKENDS)
    t = sub.add_parser("tag", help="print the current tag of a node image")
    t.add_argument("backend", choices=BACKENDS)
    sub.add_parser("ls", help="list clusterkit images")
    pr = sub.add_parser("prune", help="remove old clusterkit images")
    pr.add_argument("--all", action="store_true", help="also the current ones")
    args = ap.parse_args(argv)
    verbose = _print if os.environ.get("CLUSTERKIT_QUIET") != "1" else _quiet
    t0 = time.monotonic()
    try:
        if args.cmd == "lock":
            for p in compile_locks(union=args.union, progress=verbose):
                print(p)
        elif args.cmd == "wheelhouse":
            print(wheelhouse(progress=verbose))
        elif args.cmd == "base":
            jres = [True] if args.jre else [False] if args.no_jre else [False, True]
            for j in jres:
                print(build_base(j, progress=verbose))
        elif args.cmd == "build":
            print(build_node_image(args.backend, progress=verbose, force=args.force))
        elif args.cmd == "build-all":
            wheelhouse(progress=verbose)
            for bk in BACKENDS:
                print(ensure_image(bk, progress=verbose))
        elif args.cmd == "ensure":
            print(ensure_image(args.backend, progress=verbose))
        elif args.cmd == "tag":
            print(image_tag(args.backend))
        elif args.cmd == "ls":
            for i in list_images():
                print(
                    f"{i.ref:40} {i.backend:8} {i.size_bytes / 1e6:8.0f} MB  {i.created[:19]}  lock {i.lock_hash[:12]}"
                )
        elif args.cmd == "prune":
            for r in prune(keep_current=not args.all):
                print(r)
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except EngineUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if args.cmd not in ("tag", "ls"):
        _print(f"done in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
