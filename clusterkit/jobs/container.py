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
    """The notebook's uid and gid: the caller's, or the image's user for root (JupyterLab refuses root unless told)."""
    uid, gid = os.getuid(), os.getgid()
    return (uid, gid) if uid != 0 else (IMAGE_UID, IMAGE_GID)


def caller_user() -> tuple[int, int]:
    """The uid and gid a job or shell runs as: the caller's, root included.

    So the job reads what the caller reads (root's 0700 home too) and what it
    writes is the caller's on the host, with nothing to hand back. Every
    capability is dropped (:func:`container_options`): a root job reaches
    what root owns, not every file as root on the host would.
    """
    return os.getuid(), os.getgid()


def caller_groups() -> tuple[int, ...]:
    """The caller's supplementary groups, for a non-root caller (root gets none: only what root owns)."""
    if os.getuid() == 0:
        return ()
    return tuple(sorted(set(os.getgroups()) - {os.getgid()}))


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
    groups: Sequence[int] = (),
    working_dir: str = WORKDIR,
) -> dict[str, Any]:
    """The docker SDK's ``containers.create`` keywords for one client container (pure).

    Whoever it runs as, it has no capability and cannot gain one
    (``no-new-privileges``): file access is the plain owner, group and mode check.

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
        "working_dir": working_dir,
        "environment": variables,
        "mounts": [DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in mounts],
        "network": place.network,
        "labels": {**place.labels, labels.ROLE: role},
        "stdin_open": interactive,  # closed at the caller's EOF (the SDK sets StdinOnce with it)
        "tty": tty,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        **({"group_add": [str(g) for g in groups]} if groups else {}),
    }


def shared_mounts(place: ClientPlace, *own: Mount) -> list[Mount]:
    """``own`` mounts plus the cluster's shared folders at their own path, one per target (``rw`` wins).

    >>> from clusterkit.client_env import ClientPlace
    >>> from clusterkit.facts import DEFAULT_BACKEND
    >>> place = ClientPlace("x", DEFAULT_BACKEND, "i", "n", "s", 1, 2, mounts=("/srv/p:rw",))
    >>> [(m.target, m.read_only) for m in shared_mounts(place, Mount("/srv/p", "/srv/p"))]
    [('/srv/p', False)]
    """
    from clusterkit.mounts import parse

    found: dict[str, Mount] = {}
    for mount in [*own, *(Mount(m.path, m.path, m.read_only) for m in map(parse, place.mounts))]:
        if mount.target not in found or not mount.read_only:
            found[mount.target] = mount
    return list(found.values())


def check_readable(
    folder: Path, user: tuple[int, int], groups: Sequence[int] = (), *, write: bool = False
) -> None:
    """Refuse a folder the container's user could not read (or ``write``), before starting anything.

    The container has no capability, so root's ``CAP_DAC_OVERRIDE`` does not
    apply: the owner, group and other bits decide, for root too. Only the
    folder itself counts: the engine binds it, its parents are never walked.
    """
    info = folder.stat()
    mode, need = info.st_mode, 0o3 if write else 0o5  # write and enter, or read and enter
    if info.st_uid == user[0]:
        allowed = mode >> 6 & need == need
    elif info.st_gid in (user[1], *groups):
        allowed = mode >> 3 & need == need
    else:
        allowed = mode & need == need
    if allowed:
        return
    who = "root without capabilities" if user[0] == 0 else f"uid {user[0]}"
    raise ClientStartError(
        f"the client container runs as {who} and cannot {'write' if write else 'read'} {folder} "
        f"(mode {mode & 0o777:o}, owner uid {info.st_uid}, group {info.st_gid}); "
        f"`chmod o+{'wx' if write else 'rx'}` it or use another folder"
    )


def credential_mounts(place: ClientPlace, user: tuple[int, int]) -> list[Mount]:
    """The cluster's client credentials, mounted read-only under ``CREDENTIALS_DIR``.

    They are 0600 files in ``security.client_dir``, and a container holds no
    capability to read another user's file: one its user owns is mounted as
    it is; any other (root's files for root's notebook, which runs as the
    image's user; the CA root shares with the nodes' uid, for a root job) is
    copied for that user beside them (in the 0700 folder, removed with it by ``down``).
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
    copy = folder / f"for-uid-{user[0]}"
    mounts = []
    for n in names:
        source = folder / n
        if source.stat().st_uid != user[0]:
            source = _copy_for(source, copy, user)
        mounts.append(Mount(str(source), f"{CREDENTIALS_DIR}/{n}"))
    return mounts


def _copy_for(source: Path, folder: Path, user: tuple[int, int]) -> Path:
    """A 0400 copy of ``source`` owned by ``user`` (only root gets here: it owns files it may hand over)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder)
    with os.fdopen(fd, "wb") as f:
        f.write(source.read_bytes())
    os.chmod(tmp, 0o400)
    os.chown(tmp, *user)
    target = folder / source.name
    os.replace(tmp, target)  # atomic: another client may be reading the old copy
    return target


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
