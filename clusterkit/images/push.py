"""Images on every swarm node with no registry: ``docker save`` streamed into each node's engine.

A node is reached through its own engine: this machine's for the node it is,
otherwise the URL in the node's ``clusterkit.engine`` label (``ssh://user@host``
through the Docker SDK's paramiko transport, or ``tcp://host:2376`` protected
by TLS with the certificates in ``$DOCKER_CERT_PATH``; plain TCP is refused).
Only nodes whose engine lacks the exact image (compared by image ID) get it.

    docker node update --label-add clusterkit.engine=ssh://me@host2 host2
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from clusterkit.errors import ImageError, ImageNotFound, SwarmUnavailable
from clusterkit.progress import Event, Progress, quiet

#: The node label that says how to reach a node's engine.
ENGINE_LABEL = "clusterkit.engine"
#: Seconds an image export may go without a byte (the remote engines' clients wait as long).
EXPORT_TIMEOUT = 600


@dataclass(frozen=True)
class Node:
    """A swarm node and how this machine reaches its engine (``None``: it is this engine)."""

    id: str
    hostname: str
    engine: str | None

    @property
    def shown(self) -> str:
        return f"{self.hostname} ({self.id[:12]})"


def manager_node_id(docker: Any) -> str:
    """This engine's swarm node ID; ``SwarmUnavailable`` unless it is a swarm manager."""
    swarm = docker.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        raise SwarmUnavailable(
            "this Docker engine is not part of a swarm; run `docker swarm init` (or join one, on a "
            "manager), or choose another runtime (`--runtime compose`)"
        )
    if not swarm.get("ControlAvailable"):
        raise SwarmUnavailable(
            "this Docker engine is a swarm worker, not a manager; run clusterkit on a manager node "
            "(`docker node ls` there lists them)"
        )
    return str(swarm["NodeID"])


def swarm_nodes(docker: Any) -> list[Node]:
    """The swarm's nodes that can run tasks (ready, active)."""
    here = manager_node_id(docker)
    found = []
    for node in docker.nodes.list():
        attrs = node.attrs
        if attrs["Status"]["State"] != "ready" or attrs["Spec"].get("Availability") != "active":
            continue
        engine = None if node.id == here else (attrs["Spec"].get("Labels") or {}).get(ENGINE_LABEL, "")
        found.append(Node(node.id, attrs["Description"]["Hostname"], engine))
    return found


def engine_client(url: str) -> Any:
    """A Docker SDK client for another node's engine (ssh, TLS-protected TCP, or a local socket)."""
    import docker

    if url.startswith("tcp://"):
        cert_path = os.environ.get("DOCKER_CERT_PATH")
        if not cert_path:
            raise ImageError(
                f"engine {url} is plain TCP: set DOCKER_CERT_PATH to a folder with ca.pem, cert.pem and key.pem "
                "(a TLS-protected engine), or use an ssh:// URL"
            )
        tls = docker.tls.TLSConfig(
            client_cert=(os.path.join(cert_path, "cert.pem"), os.path.join(cert_path, "key.pem")),
            ca_cert=os.path.join(cert_path, "ca.pem"),
            verify=True,
        )
        return docker.DockerClient(base_url=url, tls=tls, timeout=EXPORT_TIMEOUT)
    return docker.DockerClient(base_url=url, use_ssh_client=False, timeout=EXPORT_TIMEOUT)


def _reach(node: Node, local: Any) -> Any:
    if node.engine is None:
        return local
    if not node.engine:
        raise ImageError(
            f"swarm node {node.shown} has no {ENGINE_LABEL} label, so the image cannot be checked or sent "
            f"there; add one: `docker node update --label-add {ENGINE_LABEL}=ssh://USER@HOST {node.id[:12]}`, "
            "or drain the node (`docker node update --availability drain ...`)"
        )
    try:
        client = engine_client(node.engine)
        client.ping()
        return client
    except ImageError:
        raise
    except Exception as e:  # the SDK raises DockerException, paramiko and socket errors alike
        raise ImageError(
            f"swarm node {node.shown}: its engine at {node.engine} does not answer ({type(e).__name__}: {e}); "
            f"fix the {ENGINE_LABEL} label or the node's engine"
        ) from e


@contextmanager
def _patient(docker: Any) -> Iterator[None]:
    """This engine's read timeout raised to :data:`EXPORT_TIMEOUT` while an image streams
    out: it exports a large image as one response, and under load its first bytes can take
    longer than the client's usual timeout (a request's timeout is read when it starts)."""
    before = docker.api.timeout
    docker.api.timeout = max(before or 0, EXPORT_TIMEOUT)
    try:
        yield
    finally:
        docker.api.timeout = before


def push(docker: Any, ref: str, progress: Progress = quiet) -> list[str]:
    """Make sure every swarm node has ``ref`` (by image ID); returns the nodes it was sent to."""
    import docker as sdk

    try:
        image = docker.images.get(ref)
    except sdk.errors.ImageNotFound as e:
        raise ImageNotFound(
            f"image {ref!r} is not on this engine: build it first (`clusterkit image build`)"
        ) from e
    sent = []
    for node in swarm_nodes(docker):
        engine = _reach(node, docker)
        if engine is docker:
            continue  # the image is here
        try:
            if engine.images.get(ref).id == image.id:
                continue
        except sdk.errors.ImageNotFound:
            pass
        progress(Event("push", f"sending {ref} to swarm node {node.shown}"))
        try:
            with _patient(docker):
                engine.images.load(image.save(named=True))
        except (sdk.errors.DockerException, OSError) as e:  # requests' errors are OSErrors
            raise ImageError(f"sending {ref} to swarm node {node.shown} failed: {e}") from e
        sent.append(node.shown)
    return sent


def paths_missing(docker: Any, image: str, paths: list[str], labels: dict[str, str]) -> dict[str, list[str]]:
    """The folders of ``paths`` each swarm node lacks, by node (only nodes that lack some).

    Asked of each node's engine, as :func:`push` reaches it: a container that
    binds the folder is created (never started) and removed; an engine refuses
    to create it when the folder is not there. ``image`` must be on every node.
    """
    import docker as sdk
    from docker.types import Mount

    found: dict[str, list[str]] = {}
    for node in swarm_nodes(docker):
        engine = _reach(node, docker)
        for path in paths:
            try:
                probe = engine.containers.create(
                    image, ["true"], mounts=[Mount(path, path, type="bind", read_only=True)], labels=labels
                )
            except sdk.errors.APIError as e:
                if "does not exist" not in str(e):
                    raise ImageError(f"swarm node {node.shown}: checking {path} failed: {e}") from e
                found.setdefault(node.shown, []).append(path)
            else:
                probe.remove(force=True)
    return found
