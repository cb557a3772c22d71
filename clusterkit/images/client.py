"""The client layer: ``clusterkit/<backend>-client:<hash12>``, the nodes' image plus the command line.

Nodes carry what they run (the node lock, and the project's layer when it has
one). ``clusterkit run``, ``shell``, ``doctor --in-cluster`` and the notebook
run more: the ``clusterkit`` command (click, rich), the Docker SDK,
testcontainers, IPython. They run this layer, one commit on the image the
nodes run, made as the other layers are (a container with no network and the
host's wheelhouse mounted read-only). It installs the packages of
``images/client.lock`` that the image lacks; what the image has keeps its
version (the nodes', and the project's where it pins its own), so a client
computes with exactly the nodes' environment. ``pip check`` ends the build.

The tag covers the client lock, this recipe and the ID of the image below, so
a rebuilt node image (a code-only change too) gets a new client layer; the
client layers of images that are gone or untagged are removed then.
"""

from __future__ import annotations

import json
from typing import Any

from clusterkit import labels
from clusterkit.errors import BuildError
from clusterkit.images import paths, transcript
from clusterkit.images.commit import SETUP_DIR, WHEELS_DIR
from clusterkit.images.layer import PIP
from clusterkit.images.locks import client_lock_path, lock_hash, read_lock
from clusterkit.images.notebook import NODE_IMAGE
from clusterkit.images.store import client
from clusterkit.images.tags import REPO, digest, read_input
from clusterkit.progress import Progress, quiet

__all__ = ["client_requirements", "client_tag", "ensure_client_image"]

#: The requirement file the build container reads (in ``SETUP_DIR``).
REQUIREMENTS = "client.txt"

#: Run by the node venv's Python as root in the build container: skip what the image has,
#: install the rest from the wheelhouse by hash, then check the whole venv.
_INSTALL = f"""
import importlib.metadata as m, os, re, subprocess, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n or "").lower()
have = {{norm(d.metadata["Name"]) for d in m.distributions()}}
lines = open("{SETUP_DIR}/{REQUIREMENTS}").read().splitlines()
want = [ln for ln in lines if ln and not ln.startswith("#") and norm(ln.split("==")[0]) not in have]
print(f"adding {{len(want)}} packages; {{len(lines) - 1 - len(want)}} the image has already", flush=True)
tmp = "/tmp/clusterkit-client.txt"
open(tmp, "w").write("\\n".join(want) + "\\n")
pip = {PIP!r} + ["--require-hashes", "--no-deps", "--find-links", "{WHEELS_DIR}", "-r", tmp]
code = subprocess.call(pip) if want else 0
os.remove(tmp)
sys.exit(code or subprocess.call(["/opt/venv/bin/pip", "check"]))
"""


def client_requirements(manifest: dict) -> str:
    """The client lock as a requirement file, with the hashes of the wheels the wheelhouse holds.

    Raises ``BuildError`` if the wheelhouse lacks one (the client lock is newer: ``make lock``).
    """
    lines = ["# generated from images/client.lock by clusterkit.images.client; do not edit"]
    for name, pin in sorted(read_lock(client_lock_path()).items()):
        entry = manifest.get(name)
        if entry is None:
            raise BuildError(f"{name} is in client.lock but not in the wheelhouse: run `make lock`")
        lines.append(pin.line(entry["hashes"] if entry["built_from_sdist"] else None))
    return "\n".join(lines) + "\n"


def client_tag(backend: str, base_id: str) -> str:
    """``clusterkit/<backend>-client:<hash12>`` over the client lock, this recipe and the base image ID."""
    parts: list[bytes | str] = [backend, "client", read_input(client_lock_path()), _INSTALL, base_id]
    return f"{REPO}/{backend}-client:{digest(parts)[:12]}"


def ensure_client_image(backend: str, base: str, *, progress: Progress = quiet) -> str:
    """The client layer on ``base`` (the image a cluster's nodes run: a ref or an ID), built if missing."""
    from filelock import FileLock

    from clusterkit.images.store import get_image

    engine = client()
    below = get_image(engine, base)
    if below is None:
        raise BuildError(f"the cluster's image {base} is gone from the engine; restart the cluster")
    ref = client_tag(backend, below.id)
    if get_image(engine, ref) is not None:
        return ref
    locks = paths.cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{backend}-client.lock")):
        if get_image(engine, ref) is None:
            _build(engine, backend, below, ref, progress)
    _remove_stale(engine, backend, keep=ref)
    return ref


def _build(engine: Any, backend: str, below: Any, ref: str, progress: Progress) -> None:
    import tempfile
    from pathlib import Path

    from clusterkit.images.layer import install_layer
    from clusterkit.images.wheels import wheelhouse

    house = wheelhouse(progress=progress)
    requirements = client_requirements(json.loads((house / "manifest.json").read_text()))
    image_labels = {
        labels.PROJECT: labels.PROJECT_VALUE,
        labels.BACKEND: f"{backend}-client",
        NODE_IMAGE: str(below.id),
        "clusterkit.client-lock-hash": lock_hash(client_lock_path()),
    }
    doing = f"adding the command line's packages (images/client.lock) to {below.tags[0] if below.tags else below.id[:19]}"
    with (
        tempfile.TemporaryDirectory(prefix=f"clusterkit-{backend}-client-") as tmp,
        transcript.step(progress, "build", ref.replace("/", "_").replace(":", "_"), doing) as log,
    ):
        setup = Path(tmp) / REQUIREMENTS
        setup.write_text(requirements)
        argv = ["/opt/venv/bin/python", "-c", _INSTALL]
        install_layer(
            engine, log, below, ref, setup, house / "wheels", image_labels, {}, argv=argv, doing=doing
        )


def _remove_stale(engine: Any, backend: str, *, keep: str) -> None:
    """Remove this backend's client layers whose base image is gone or untagged (none in use)."""
    import docker

    from clusterkit.images.store import get_image

    found = engine.images.list(filters={"label": f"{labels.BACKEND}={backend}-client"})
    for img in found:
        if keep in img.tags:
            continue
        base = get_image(engine, (img.labels or {}).get(NODE_IMAGE, ""))
        if base is not None and base.tags:
            continue  # the client layer of another current image (another project's)
        try:
            engine.images.remove(img.id)
        except docker.errors.APIError:
            pass  # a client container still runs on it
