"""Client containers: ``clusterkit run`` and ``clusterkit shell``, in the cluster's image and network.

A program that sends work to a cluster runs best where the nodes run: the
same locked environment (no Python or cloudpickle drift, no version warning),
on the cluster's network (a Spark driver the executors reach without host
routing), with the cluster's credentials. :func:`run` starts such a container:

* the image is the cluster's own (by ID), the network the cluster's
  (:meth:`ContainerRuntime.client_place <clusterkit.runtimes.containers.ContainerRuntime.client_place>`);
* the current folder is mounted read-only at ``/work`` (the working
  directory), an ``output`` folder read-write; the container runs as the
  caller's uid, so the caller owns what it writes (as root: the image's user,
  and the files are handed to root afterwards: no container of the kit runs as root);
* the scheduler is in the environment (:mod:`clusterkit.client_env`), the
  client credentials of a ``security: tls`` cluster are mounted read-only;
* output streams live; the exit code is the command's; the container is
  removed afterwards, also on Ctrl-C (SIGINT is passed on, SIGKILL follows
  after :data:`GRACE` seconds), SIGTERM and SIGHUP.

    >>> code = run("dask", ["python", "job.py"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.client_env import (
    CREDENTIALS_DIR,
    IMAGE_GID,
    IMAGE_UID,
    WORKDIR,
    ClientPlace,
    credential_files,
    environment,
)
from clusterkit.errors import ClientStartError, ClusterUnavailable, EngineUnavailable, InvalidValue
from clusterkit.interrupts import signals_raise

#: Roles of client containers (the ``clusterkit.role`` label).
JOB, SHELL = "job", "shell"
#: Seconds a program gets between SIGINT (Ctrl-C) and SIGKILL.
GRACE = 10
#: Where an output folder outside the current folder is mounted.
OUTPUT_DIR = "/out"
#: Tells the program where its writable folder is.
OUTPUT_ENV = "CLUSTERKIT_OUTPUT"


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
    >>> place = ClientPlace("x", "dask", "sha256:1", "clusterkit-x", "scheduler", 8786, 8787)
    >>> options = container_options(place, ["python", "job.py"], role="job", name="j", user=(1000, 1000))
    >>> options["network"], options["user"], options["working_dir"], options["labels"]["clusterkit.role"]
    ('clusterkit-x', '1000:1000', '/work', 'job')
    """
    from docker.types import Mount as DockerMount

    variables = environment(place)
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


def place_of(name: str | None, runtime: str | None = None) -> ClientPlace:
    """Where clients of the running cluster ``name`` run; the runtime must run containers."""
    from clusterkit import cluster

    rt, found = cluster.find(name, runtime)
    describe = getattr(rt, "client_place", None)
    if describe is None:
        raise ClientStartError(
            f"cluster {found!r} runs on the {rt.name} runtime, which has no image or network to run a "
            "client in; there this venv is the cluster's environment: run the program directly "
            "(`clusterkit.dask.connect_to_scheduler()` / `clusterkit.spark.connect_to_scheduler()` with "
            "the address `clusterkit status` shows)"
        )
    return describe(found)


def run(
    name: str | None,
    argv: Sequence[str],
    *,
    runtime: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    interactive: bool = False,
    role: str = JOB,
) -> int:
    """Run ``argv`` in a client container of cluster ``name``; returns its exit code.

    Args:
        name: the cluster (``None``: the only running one).
        argv: the command, e.g. ``["python", "job.py", "--n", "10"]``.
        folder: mounted read-only at ``/work``, the working directory (default: the current folder).
        output: a folder mounted read-write (created if missing): at the same place under
            ``/work`` when inside ``folder``, else at ``/out``; ``$CLUSTERKIT_OUTPUT`` names it.
        env: more variables (they win over the cluster's).
        interactive: pass stdin (and a terminal, if this is one), as ``shell`` does.

    Raises:
        ClientStartError: the container could not be created or started.
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after the container is stopped and removed.
    """
    if not argv:
        raise InvalidValue("command: nothing to run; give it after `--`, e.g. `-- python job.py`")
    place = place_of(name, runtime)
    user = client_user()
    folder = Path(folder or Path.cwd()).resolve()
    check_readable(folder, user)
    variables = dict(env or {})
    with contextlib.ExitStack() as stack:
        mounts = [Mount(str(folder), WORKDIR, read_only=True)]
        if output is not None:
            host, target = _output_mount(folder, Path(output))
            source = stack.enter_context(_writable_as(host, user))
            mounts.append(Mount(str(source), target, read_only=False))
            variables.setdefault(OUTPUT_ENV, target)
        if place.secured:
            mounts += credential_mounts(place, user)
        tty = interactive and sys.stdin.isatty() and sys.stdout.isatty()
        options = container_options(
            place,
            argv,
            role=role,
            name=f"clusterkit-{place.cluster}-{role}-{secrets.token_hex(3)}",
            user=user,
            mounts=mounts,
            env=variables,
            interactive=interactive,
            tty=tty,
        )
        return _run_container(options, interactive=interactive)


def shell(name: str | None, *, runtime: str | None = None, folder: str | None = None) -> int:
    """An interactive Python (IPython if the image has it) with a ready ``client`` / ``spark``.

    Piped input runs as a script: ``echo 'print(client)' | clusterkit shell``.
    """
    return run(
        name,
        ["python", "-m", "clusterkit.shell"],
        runtime=runtime,
        folder=folder,
        interactive=True,
        role=SHELL,
    )


# -- folders and credentials -----------------------------------------------------------------


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


def _output_mount(folder: Path, output: Path) -> tuple[Path, str]:
    """The host folder and where the container sees it."""
    host = output if output.is_absolute() else Path.cwd() / output
    host.mkdir(parents=True, exist_ok=True)
    host = host.resolve()
    if host == folder:
        raise InvalidValue(
            f"output: {str(output)!r} is the current folder itself, which stays read-only; "
            "give a folder for the results, e.g. `-o results`"
        )
    if host.is_relative_to(folder):
        return host, f"{WORKDIR}/{host.relative_to(folder).as_posix()}"
    return host, OUTPUT_DIR


@contextlib.contextmanager
def _writable_as(host: Path, user: tuple[int, int]) -> Iterator[Path]:
    """A folder the container's user may write, whose files end up in ``host``, owned by the caller.

    For a caller that is not root the container runs as the caller: ``host``
    itself. For root the container runs as the image's user, so it writes
    into a staging folder inside ``host`` whose contents are moved into
    ``host`` and handed to root afterwards (also after Ctrl-C).
    """
    if os.getuid() != 0:
        yield host
        return
    stage = Path(tempfile.mkdtemp(prefix=".clusterkit-run-", dir=host))
    try:
        os.chown(stage, *user)
        yield stage
    finally:
        _hand_back(stage, host)
        shutil.rmtree(stage, ignore_errors=True)


def _hand_back(stage: Path, host: Path) -> None:
    """Move what the container wrote into ``host``, owned by this process's uid and gid."""
    uid, gid = os.getuid(), os.getgid()
    for root, dirs, files in os.walk(stage):
        for entry in dirs + files:
            os.lchown(os.path.join(root, entry), uid, gid)
    for entry in stage.iterdir():
        _merge(entry, host / entry.name)


def _merge(source: Path, dest: Path) -> None:
    if source.is_dir() and not source.is_symlink() and dest.is_dir() and not dest.is_symlink():
        for child in source.iterdir():
            _merge(child, dest / child.name)
        return
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    os.replace(source, dest)


def credential_mounts(place: ClientPlace, user: tuple[int, int]) -> list[Mount]:
    """The cluster's client credentials, mounted read-only under ``CREDENTIALS_DIR``.

    They are the caller's 0600 files in ``security.client_dir``; for root,
    whose containers run as the image's user, a copy owned by that user sits
    beside them (in root's 0700 folder, removed with it by ``down``).
    """
    from clusterkit import security

    folder = security.client_dir(place.cluster)
    names = credential_files(place.backend)
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


# -- the container's life ----------------------------------------------------------------------


def _run_container(options: dict[str, Any], *, interactive: bool) -> int:
    """Create, attach, start, wait for and remove one client container."""
    from docker.errors import APIError, ImageNotFound

    from clusterkit.engine import docker_client

    engine = docker_client()
    with signals_raise():  # SIGTERM and SIGHUP too: the container goes either way
        try:
            container = engine.containers.create(**options)
        except ImageNotFound as e:
            raise ClientStartError(
                f"the cluster's image {options['image']} is gone from the engine; restart the cluster"
            ) from e
        except APIError as e:
            raise ClientStartError(f"cannot create a client container: {e.explanation or e}") from e
        try:
            add_user(container, options["user"])
            if interactive:
                return _interactive(container)
            return _streamed(container)
        except KeyboardInterrupt:
            _interrupt(container)
            raise
        finally:
            _remove(container)


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


def _streamed(container: Any) -> int:
    """Start with stdout and stderr streamed live (attached before the start: nothing is lost)."""
    from docker.errors import APIError

    frames = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
    pump = threading.Thread(target=_pump, args=(frames,), daemon=True)
    pump.start()
    try:
        container.start()
    except APIError as e:
        raise ClientStartError(f"cannot start the client container: {e.explanation or e}") from e
    code = int(container.wait()["StatusCode"])
    pump.join(timeout=GRACE)  # the rest of the output, after the exit
    return code


def _pump(frames: Any) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for stdout, stderr in frames:
            if stdout:
                out.write(stdout)
                out.flush()
            if stderr:
                err.write(stderr)
                err.flush()
    except (OSError, ValueError):
        pass  # the container was removed under the stream (Ctrl-C), or our stdout closed


def _interactive(container: Any) -> int:
    """stdin, stdout and stderr (and the terminal's raw mode) through ``docker start -ai``."""
    docker = shutil.which("docker")
    if docker is None:
        raise EngineUnavailable(
            "`clusterkit shell` and `run -i` need the docker command line client (for the terminal); "
            "install it, or run a script with `clusterkit run` instead"
        )
    result = subprocess.run([docker, "start", "--attach", "--interactive", container.id], check=False)
    container.reload()
    if container.attrs["State"]["Running"]:
        return result.returncode  # detached (Ctrl-P Ctrl-Q): the session is over all the same
    return int(container.attrs["State"]["ExitCode"])


def _interrupt(container: Any) -> None:
    """Pass Ctrl-C on to the program; kill it if it has not ended after ``GRACE`` seconds."""
    from docker.errors import APIError, NotFound
    from requests.exceptions import RequestException

    try:
        container.kill(signal="SIGINT")
        container.wait(timeout=GRACE)
    except (APIError, NotFound, RequestException):
        pass  # not running any more, or still running: the removal kills it


def _remove(container: Any) -> None:
    from docker.errors import APIError, NotFound

    try:
        container.remove(force=True)
    except NotFound:
        pass
    except APIError as e:
        if e.status_code != 409:  # 409: removal already in progress
            raise
