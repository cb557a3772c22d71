"""A client container's life: create it, attach to it, start it, wait for its exit, remove it.

Output streams live (attached before the start: nothing is lost); an
interactive session goes through ``docker start -ai`` for the terminal. The
container is removed afterwards, also on Ctrl-C (SIGINT is passed on, SIGKILL
follows after :data:`GRACE` seconds), SIGTERM and SIGHUP.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from typing import Any

from clusterkit.errors import ClientStartError, EngineUnavailable
from clusterkit.interrupts import signals_raise
from clusterkit.jobs.container import add_user

#: Seconds a program gets between SIGINT (Ctrl-C) and SIGKILL.
GRACE = 10


def run_container(options: dict[str, Any], *, interactive: bool) -> int:
    """Create, attach, start, wait for and remove one client container; returns its exit code."""
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
    code = int(container.wait()["StatusCode"])  # the program's own run: no deadline
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
        container.wait(timeout=GRACE)  # the engine's own wait for the exit, not a poll
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
