"""Image layers made by a container and ``docker commit``, not by ``docker build``.

On this kind of engine (fuse-overlayfs, the legacy builder) every Dockerfile
step is a container and a layer commit: ~5 s each on a 570 MB image, even
for an ``ENV``; and a build context is uploaded whole, wheels included. So a
node image is made in two commits:

- the venv (:func:`install_env`): ``images/install-venv.sh`` runs in a
  container of the base image, no network, the host wheelhouse mounted
  read-only, and the container becomes ``clusterkit/<backend>-env:<tag>``;
- the node image (:func:`apply_recipe`): a container of that image gets the
  clusterkit source (``put_archive``, about a megabyte) and is committed with
  every setting of ``images/Dockerfile.<backend>`` at once.

``Dockerfile.<backend>`` stays a valid Dockerfile (``docker build --build-arg
ENV=clusterkit/<backend>-env:<tag>`` gives the same image), read here as a
recipe: its settings become the commit's changes and its ``COPY clusterkit``
the source layer.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.errors import BuildError
from clusterkit.images import transcript
from clusterkit.images.tags import read_input

#: Where install-venv.sh finds itself and its inputs, and where the wheelhouse is mounted.
SETUP_DIR, WHEELS_DIR = "/tmp/build", "/tmp/wheels"
#: No network in any build step: everything comes from the host's wheelhouse.
NETWORK = "none"
#: Dockerfile instructions a commit can apply (``docker commit --change``).
SETTINGS = ("ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "LABEL", "EXPOSE", "VOLUME")
#: The base image's command, restored on the venv image (the set-up container's is a script).
BASE_CMD = 'CMD ["/bin/bash"]'


def recipe(dockerfile: Path) -> tuple[list[str], str]:
    """``(settings, source destination)`` of a node Dockerfile: ``FROM ${ENV}``, settings, ``COPY clusterkit``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "Dockerfile"
    >>> _ = p.write_text("ARG ENV\\nFROM ${ENV}\\n# x\\nENV A=1 \\\\\\n    B=2\\nUSER u\\nCOPY clusterkit /opt/c/clusterkit\\n")
    >>> recipe(p)
    (['ENV A=1 B=2', 'USER u'], '/opt/c/clusterkit')
    """
    text = re.sub(r"\\\n\s*", " ", read_input(dockerfile).decode())
    settings: list[str] = []
    dest = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word in ("ARG", "FROM"):
            continue
        if word in SETTINGS:
            settings.append(f"{word} {' '.join(rest.split())}")
        elif word == "COPY" and rest.split()[:1] == ["clusterkit"] and len(rest.split()) == 2:
            dest = rest.split()[1]
        else:
            raise BuildError(
                f"{dockerfile}: {line.split()[0]} is not something a node recipe can hold; it takes "
                f"{', '.join(SETTINGS)} and one `COPY clusterkit <dir>` (run steps go in install-venv.sh)"
            )
    if dest is None:
        raise BuildError(f"{dockerfile} has no `COPY clusterkit <dir>`: the node needs the clusterkit source")
    return settings, dest


def container_name(ref: str) -> str:
    return "clusterkit-build-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", ref)


def remove_container(engine: Any, name: str) -> None:
    import docker

    try:
        engine.containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def commit_as(container: Any, ref: str, changes: list[str]) -> None:
    repo, _, tag = ref.rpartition(":")
    container.commit(repository=repo, tag=tag, changes=changes)


def run_and_commit(
    container: Any, log: transcript.Transcript, ref: str, changes: list[str], doing: str
) -> None:
    """Start a build container, write its output to the transcript, and commit it as ``ref`` if it
    exits 0; else raise a ``BuildError`` saying ``doing`` failed, with the output's tail."""
    container.start()
    for chunk in container.logs(stream=True, follow=True):
        log.write(chunk.decode(errors="replace"))
    code = container.wait().get("StatusCode")
    if code != 0:
        raise log.error(f"{doing} failed (exit {code})")
    commit_as(container, ref, changes)


def install_env(
    engine: Any, log: transcript.Transcript, base: str, env: str, setup: Path, wheels: Path
) -> None:
    """Run install-venv.sh (in ``setup``) in a container of ``base``; commit it as ``env``.

    The set-up folder and the wheelhouse are read-only bind mounts, so no
    wheel is copied anywhere; the container is removed whatever happens.
    """
    import docker
    from docker.types import Mount

    name = container_name(env)
    remove_container(engine, name)  # left by a build that was killed
    container = None
    try:
        container = engine.containers.create(
            base,
            ["sh", f"{SETUP_DIR}/install-venv.sh"],
            name=name,
            user="root",
            network_mode=NETWORK,
            labels={labels.PROJECT: labels.PROJECT_VALUE},
            # Mounts, not `volumes=`: that also declares the targets as the container's volumes,
            # the commit would make them the image's VOLUMEs, and every node container would
            # leave two anonymous volumes behind.
            mounts=[
                Mount(SETUP_DIR, str(setup), type="bind", read_only=True),
                Mount(WHEELS_DIR, str(wheels), type="bind", read_only=True),
            ],
        )
        log.write(f"$ sh {SETUP_DIR}/install-venv.sh  # in {name}, from {base}, network {NETWORK}")
        run_and_commit(container, log, env, [BASE_CMD], f"installing the venv of {env}")
    except docker.errors.APIError as e:
        raise log.error(f"building {env} failed: {e.explanation or e}") from e
    finally:
        if container is not None:
            remove_container(engine, name)


def apply_recipe(
    engine: Any,
    log: transcript.Transcript,
    env: str,
    ref: str,
    dockerfile: Path,
    source: Path,
    more: list[str],
) -> None:
    """Commit ``ref``: ``env`` plus the clusterkit ``source`` and the recipe's settings, then ``more``."""
    import docker

    settings, dest = recipe(dockerfile)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:  # the engine makes the missing parents
        tar.add(str(source), arcname=dest.strip("/"), filter=_root_owned)
    name = container_name(ref)
    remove_container(engine, name)
    container = None
    try:
        container = engine.containers.create(
            env, name=name, network_mode=NETWORK, labels={labels.PROJECT: labels.PROJECT_VALUE}
        )
        log.write(f"$ put_archive {dest} ({len(archive.getvalue())} bytes) and commit {ref}")
        if not container.put_archive("/", archive.getvalue()):
            raise log.error(f"copying the clusterkit source into {name} failed")
        changes = settings + more
        log.write("".join(f"  {c}\n" for c in changes))
        commit_as(container, ref, changes)
    except docker.errors.APIError as e:
        raise log.error(f"building {ref} failed: {e.explanation or e}") from e
    finally:
        if container is not None:
            remove_container(engine, name)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Files owned by root and readable by all (the node user reads, never writes, its code)."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() else 0o644
    return info
