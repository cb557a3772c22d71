"""What a client container is: its user, mounts, credentials and ``containers.create`` keywords.

:mod:`clusterkit.jobs` (``run``, ``shell``) and :mod:`clusterkit.notebook`
build their containers from these pieces; nothing here creates or starts one.
Each piece works from a :class:`~clusterkit.client_env.ClientPlace`, which the
front door (:func:`clusterkit.cluster.client_place`) gets from the runtime.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.backends import get_backend
from clusterkit.client_env import CREDENTIALS_DIR, IMAGE_GID, IMAGE_UID, WORKDIR, ClientPlace
from clusterkit.errors import ClientStartError, ClusterUnavailable

#: Roles of client containers (the ``clusterkit.role`` label).
JOB, SHELL = "job", "shell"


@dataclass(frozen=True)
class Mount:
    """A host path bound into a client container."""

    source: str
    target: str
    read_only: bool = True


def client_user() -> tuple[int, int]:
    """The uid and gid a client container runs as: the caller's, or the image's user for root."""
    uid, gid = os.getuid(), os.getgid()
    return (uid, gid) if uid != 0 else (IMAGE_UID, IMAGE_GID)


def container_options(
    place: ClientPlace,
    argv: Sequence[str],
    *,
    role: str,
    name: str,
    user: tuple[int, int],
    mounts: Sequence[Mount] = (),
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
    tty: bool = False,
) -> dict[str, Any]:
    """The docker SDK's ``containers.create`` keywords for one client container (pure).

    >>> from clusterkit.client_env import ClientPlace
    >>> from clusterkit.facts import DEFAULT_BACKEND
    >>> place = ClientPlace("x", DEFAULT_BACKEND, "sha256:1", "clusterkit-x", "scheduler", 8786, 8787)
    >>> options = container_options(place, ["python", "job.py"], role="job", name="j", user=(1000, 1000))
    >>> options["network"], options["user"], options["working_dir"], options["labels"]["clusterkit.role"]
    ('clusterkit-x', '1000:1000', '/work', 'job')
    """
    from docker.types import Mount as DockerMount

    variables = get_backend(place.backend).client_environment(place)
    if user[0] != IMAGE_UID:  # the image's home belongs to its own user
        variables["HOME"] = "/tmp"
    variables.update(env or {})
    return {
        "image": place.image,
        "command": list(argv),
        "name": name,
        "user": f"{user[0]}:{user[1]}",
        "working_dir": WORKDIR,
        "environment": variables,
        "mounts": [DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in mounts],
        "network": place.network,
        "labels": {**place.labels, labels.ROLE: role},
        "stdin_open": interactive,  # closed at the caller's EOF (the SDK sets StdinOnce with it)
        "tty": tty,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }


def check_readable(folder: Path, user: tuple[int, int]) -> None:
    """Refuse a folder the container's user could not read (root's 0700 folders, for uid 1000)."""
    info = folder.stat()
    if info.st_uid == user[0] or info.st_mode & 0o005 == 0o005:
        return
    if info.st_gid == user[1] and info.st_mode & 0o050 == 0o050:
        return
    raise ClientStartError(
        f"the client container runs as uid {user[0]} (never as root) and cannot read {folder} "
        f"(mode {info.st_mode & 0o777:o}, owner uid {info.st_uid}); `chmod o+rx` it or run from another folder"
    )


def credential_mounts(place: ClientPlace, user: tuple[int, int]) -> list[Mount]:
    """The cluster's client credentials, mounted read-only under ``CREDENTIALS_DIR``.

    They are the caller's 0600 files in ``security.client_dir``; for root,
    whose containers run as the image's user, a copy owned by that user sits
    beside them (in root's 0700 folder, removed with it by ``down``).
    """
    from clusterkit import security

    folder = security.client_dir(place.cluster)
    names = get_backend(place.backend).credential_files()
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise ClusterUnavailable(
            f"cluster {place.cluster!r} requires TLS/authentication, and this machine has no credentials "
            f"for it (no {folder / missing[0]}); run the client on the machine that ran `clusterkit up`"
        )
    if os.getuid() != 0:
        return [Mount(str(folder / n), f"{CREDENTIALS_DIR}/{n}") for n in names]
    copy = folder / f"for-uid-{user[0]}"
    copy.mkdir(mode=0o700, exist_ok=True)
    for n in names:
        fd, tmp = tempfile.mkstemp(dir=copy)
        with os.fdopen(fd, "wb") as f:
            f.write((folder / n).read_bytes())
        os.chmod(tmp, 0o400)
        os.chown(tmp, *user)
        os.replace(tmp, copy / n)  # atomic: another client may be reading the old copy
    return [Mount(str(copy / n), f"{CREDENTIALS_DIR}/{n}") for n in names]


def add_user(container: Any, user: str) -> None:
    """Give the caller's uid a name and home in the created container's ``/etc/passwd``.

    A uid the image does not know has no name and no home: Java (a Spark
    driver) then fails ("invalid null input: name"), and so do tools that ask
    for the user. The entry goes into the container's own layer before it
    starts (no file on the host), so a restarted notebook keeps it.
    """
    import io
    import tarfile

    uid, gid = (int(part) for part in user.split(":"))
    files: dict[str, str] = {}
    for name in ("passwd", "group"):
        chunks, _ = container.get_archive(f"/etc/{name}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.extractfile(name)
            files[name] = member.read().decode() if member else ""
    users = {
        line.split(":")[2]: line.split(":")[0]
        for line in files["passwd"].splitlines()
        if line.count(":") >= 6
    }
    if str(uid) in users:
        return
    login = _login_name(uid, taken=set(users.values()))
    files["passwd"] += f"{login}:x:{uid}:{gid}:clusterkit client:/tmp:/bin/sh\n"
    groups = {line.split(":")[2] for line in files["group"].splitlines() if line.count(":") >= 3}
    if str(gid) not in groups:
        files["group"] += f"{login}:x:{gid}:\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    container.put_archive("/etc", archive.getvalue())


def _login_name(uid: int, taken: set[str]) -> str:
    import pwd
    import re

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = ""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name) or name in taken:
        name = f"user{uid}"
    return name
