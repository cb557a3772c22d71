"""One more layer on a node image: packages installed from a hashed lock, as the node image was made.

A container of the node image runs pip as root with no network, the host's
wheelhouse and the lock as read-only bind mounts (never copied into a layer),
and is committed with the node image's own user, entry point and command, so
the result runs exactly like the node image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clusterkit.images import transcript
from clusterkit.images.commit import (
    NETWORK,
    SETUP_DIR,
    WHEELS_DIR,
    container_name,
    remove_container,
    run_and_commit,
)

#: pip of the node venv; ``--no-deps``: the lock names every package, the node's ones included.
PIP = ["/opt/venv/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--no-index"]


def _restore(config: dict[str, Any], more_labels: dict[str, str], env: dict[str, str]) -> list[str]:
    """``docker commit`` changes that give the new image the node image's settings back, plus ``env``."""
    changes = [f"USER {config.get('User') or 'root'}"]
    changes += [f"ENV {k}={v}" for k, v in sorted(env.items()) if v]
    if config.get("Entrypoint"):
        changes.append(f"ENTRYPOINT {json.dumps(config['Entrypoint'])}")
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    changes += [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in sorted(more_labels.items())]
    return changes


def install_layer(
    engine: Any,
    log: transcript.Transcript,
    node: Any,
    ref: str,
    lock: Path,
    wheels: Path,
    more_labels: dict[str, str],
    env: dict[str, str],
    *,
    argv: list[str] | None = None,
    doing: str = "installing the project's dependencies",
) -> None:
    """Commit ``ref``: ``node`` (an image object) plus ``lock`` installed from ``wheels``.

    ``argv``: the command that installs it (default: pip with the lock's hashes), run as root
    with the lock's folder at ``SETUP_DIR`` and the wheels at ``WHEELS_DIR``.
    """
    import docker
    from docker.types import Mount

    from clusterkit.errors import BuildError

    name = container_name(ref)
    remove_container(engine, name)  # left by a build that was killed
    argv = argv or [
        *PIP,
        "--require-hashes",
        "--no-deps",
        "--find-links",
        WHEELS_DIR,
        "-r",
        f"{SETUP_DIR}/{lock.name}",
    ]
    container = None
    try:
        container = engine.containers.create(
            node.id,
            argv,
            entrypoint=[],
            name=name,
            user="root",
            network_mode=NETWORK,
            labels=dict(more_labels),
            mounts=[
                Mount(SETUP_DIR, str(lock.parent.resolve()), type="bind", read_only=True),
                Mount(WHEELS_DIR, str(wheels), type="bind", read_only=True),
            ],
        )
        log.write(f"$ {' '.join(argv)}  # in {name}, from {node.id[:19]}, network {NETWORK}")
        changes = _restore(node.attrs["Config"], more_labels, env)
        run_and_commit(container, log, ref, changes, f"{doing} into {ref}")
    except docker.errors.APIError as e:
        raise BuildError(f"building {ref} failed: {e.explanation or e}") from e
    finally:
        if container is not None:
            remove_container(engine, name)
