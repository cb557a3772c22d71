"""The user's project's dependencies on every node: a lock beside the project and a layer on the node image.

A project declares its dependencies where Python projects already do: its
``pyproject.toml`` (``[project].dependencies``) or a requirements file that
``requirements:`` in ``clusterkit.yaml`` names. They are locked with uv, with
hashes, against the node lock as constraints (the nodes' versions win), into
``clusterkit.lock`` beside the spec or ``pyproject.toml``: meant to be
committed, rewritten when the declared list changes (``clusterkit image lock
--project``). The image is one more commit on the node image, made as the
node image is (a container with no network and the host's wheelhouse
mounted), tagged by the hash of the node image and that lock:

    clusterkit/dask:e1c2…  +  clusterkit.lock  ->  clusterkit/dask-project:<hash12>

clusterkit itself and what only the host's command line and tests use never
go onto the nodes.

    >>> declared_in_text('[project]\\nname = "p"\\ndependencies = ["Humanize>=4", "docker", "rich"]\\n')
    ['Humanize>=4']
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from clusterkit import labels
from clusterkit.errors import BuildError, ProjectLockError
from clusterkit.images import transcript
from clusterkit.images.locks import PYTHON_MINOR, lock_path
from clusterkit.images.paths import read_bytes
from clusterkit.progress import Progress, quiet

LOCK_NAME = "clusterkit.lock"
#: What the host's command line and test runs need, never a node: left out of a project's list.
HOST_ONLY = frozenset(
    {"clusterkit", "docker", "testcontainers", "click", "rich", "paramiko", "pytest", "pytest-xdist"}
)
#: The first line of a lock this module wrote: the hash of what it was made from.
_HEADER = "# clusterkit: project lock of {inputs}; regenerate with `clusterkit image lock --project`"
#: Its second line: the packages the project named, which the nodes report to `clusterkit doctor`.
_NAMED = "# clusterkit: the project names {names}"
#: How a node learns those names: the project layer sets it (:func:`clusterkit.status.local_versions`).
PACKAGES_ENV = "CLUSTERKIT_PROJECT_PACKAGES"
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
#: The node platform, as `make lock` compiles the node locks for it.
UV_PLATFORM = "x86_64-manylinux_2_36"


def _name(requirement: str) -> str:
    match = _NAME_RE.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def _keep(requirements: list[str]) -> list[str]:
    found = [r.strip() for r in requirements if r.strip() and not r.strip().startswith(("#", "-"))]
    return [r for r in found if _name(r) and _name(r) not in HOST_ONLY]


def declared_in_text(pyproject: str) -> list[str]:
    """The node-relevant ``[project].dependencies`` of a ``pyproject.toml``'s text."""
    project = tomllib.loads(pyproject).get("project") or {}
    if _name(str(project.get("name", ""))) == "clusterkit":
        return []  # clusterkit's own checkout: its dependencies are the host's
    return _keep([str(r) for r in project.get("dependencies") or []])


def declared(folder: Path, requirements: Path | None = None) -> list[str]:
    """The project's dependencies: ``requirements`` (a requirements file) if given, else
    ``folder/pyproject.toml``'s; ``[]`` when it declares none."""
    if requirements is not None:
        try:
            return _keep(requirements.read_text().splitlines())
        except OSError as e:
            raise BuildError(
                f"requirements: {requirements} cannot be read ({e.strerror}); name a requirements "
                "file relative to clusterkit.yaml"
            ) from e
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        return declared_in_text(pyproject.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{pyproject} is not valid TOML ({e}); fix it or name a requirements file") from e


def _inputs_hash(backend: str, wanted: list[str]) -> str:
    node = read_bytes(lock_path(backend))
    return hashlib.sha256(node + "\n".join(sorted(wanted)).encode()).hexdigest()[:16]


def lock_is_current(lock: Path, backend: str, wanted: list[str]) -> bool:
    """Whether ``lock`` was made from ``wanted`` against today's node lock of ``backend``."""
    try:
        first = lock.read_text().splitlines()[0]
    except (OSError, IndexError):
        return False
    return first == _HEADER.format(inputs=_inputs_hash(backend, wanted))


def compile_lock(folder: Path, backend: str, wanted: list[str], *, progress: Progress = quiet) -> Path:
    """Write ``folder/clusterkit.lock``: ``wanted`` with hashes, constrained by the node lock."""
    out = folder / LOCK_NAME
    source = folder / ".clusterkit-requirements.in"
    source.write_text("\n".join(wanted) + "\n")
    argv = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-header", "--generate-hashes"]
    argv += ["--python-version", PYTHON_MINOR, "--python-platform", UV_PLATFORM]
    argv += ["-c", str(lock_path(backend)), str(source), "-o", str(out)]
    progress_step = f"locking {len(wanted)} project dependencies against the {backend} node lock"
    with transcript.step(progress, "lock", f"project-lock-{backend}", progress_step) as log:
        log.write("$ " + " ".join(argv))
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        finally:
            source.unlink(missing_ok=True)
        log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ProjectLockError(_conflict(done.stderr, backend))
    names = ",".join(sorted({_name(r) for r in wanted}))
    header = _HEADER.format(inputs=_inputs_hash(backend, wanted)) + "\n" + _NAMED.format(names=names)
    out.write_text(header + "\n" + out.read_text())
    return out


def named_in(lock: Path) -> list[str]:
    """The packages the project named, from its lock's second line (``[]`` for an older lock)."""
    lines = lock.read_text().splitlines()[:2]
    prefix = _NAMED.format(names="")
    return (
        [n for n in lines[1][len(prefix) :].split(",") if n]
        if len(lines) > 1 and lines[1].startswith(prefix)
        else []
    )


def _conflict(stderr: str, backend: str) -> str:
    """uv's explanation, in one line, with what to do."""
    decoration = " \u2570\u2500\u25b6\u00d7"  # uv's tree drawing and its error cross
    lines = [ln.strip(decoration) for ln in stderr.splitlines() if ln.strip(decoration)]
    reason = " ".join(ln.removeprefix("error: ") for ln in lines).rstrip(".") or "uv could not resolve them"
    return (
        f"the project's dependencies cannot be locked against the {backend} node lock: {reason}. "
        "Loosen the project's requirement, or use the node lock's version"
    )


def find_source(start: Path) -> Path | None:
    """The ``pyproject.toml`` of the project ``start`` is in (``start`` or a parent), else ``None``.

    The search stops below the home folder and the file system's root, which
    are never a project.
    """
    stop = {Path.home().resolve(), Path("/")}
    here = start.resolve()
    while here not in stop:
        if (here / "pyproject.toml").is_file():
            return here / "pyproject.toml"
        here = here.parent
    return None


def ensure_lock(source: Path, backend: str, *, progress: Progress = quiet) -> Path | None:
    """The current lock beside ``source`` (a ``pyproject.toml`` or a requirements file), made or
    remade when the declared list changed; ``None``: the project declares no node dependencies."""
    named = None if source.name == "pyproject.toml" else source
    wanted = declared(source.parent, named)
    if not wanted:
        return None
    lock = source.parent / LOCK_NAME
    if lock_is_current(lock, backend, wanted):
        return lock
    return compile_lock(source.parent, backend, wanted, progress=progress)


def with_project(node_ref: str, backend: str, requirements: str | None, *, progress: Progress = quiet) -> str:
    """The image a cluster's nodes run: ``node_ref``, plus the project's dependencies when it has any.

    ``requirements``: the spec's (a file); ``None``: the ``pyproject.toml`` of the
    project the current folder is in.
    """
    source = Path(requirements) if requirements else find_source(Path.cwd())
    lock = ensure_lock(source, backend, progress=progress) if source else None
    return ensure_project_image(node_ref, backend, lock, progress=progress) if lock else node_ref


def project_tag(node_id: str, backend: str, lock: Path) -> str:
    """``clusterkit/<backend>-project:<hash12>`` over the node image and the project lock."""
    digest = hashlib.sha256(node_id.encode() + read_bytes(lock)).hexdigest()[:12]
    return f"clusterkit/{backend}-project:{digest}"


def ensure_project_image(node_ref: str, backend: str, lock: Path, *, progress: Progress = quiet) -> str:
    """The node image plus the project's locked dependencies (built when missing); returns its ref."""
    from clusterkit.engine import docker_client
    from clusterkit.images.layer import install_layer
    from clusterkit.images.store import image_exists
    from clusterkit.images.wheels import wheelhouse

    engine = docker_client()
    node = engine.images.get(node_ref)
    ref = project_tag(node.id, backend, lock)
    if image_exists(ref):
        return ref
    wheels = wheelhouse(lock, progress=progress) / "wheels"
    doing = f"adding the project's dependencies ({lock}) to {node_ref}"
    with transcript.step(progress, "build", ref.replace("/", "_").replace(":", "_"), doing) as log:
        install_layer(
            engine,
            log,
            node,
            ref,
            lock,
            wheels,
            {labels.PROJECT: labels.PROJECT_VALUE, "clusterkit.project-lock": str(lock)},
            {PACKAGES_ENV: ",".join(named_in(lock))},
        )
    return ref
