"""A rendered compose file brought up through the engine's API, every container at once.

The Compose tool (v1 here) takes ~0.3 s to start, then creates and starts the
containers one request after another: 1.7 s for 5 containers where the engine
itself needs well under one. This module reads the same rendered file
(:func:`clusterkit.render.compose.render`, the user-facing artefact) and makes
the same network and containers, with Compose's own names and labels (project,
service, number, oneoff), so ``docker-compose -p clusterkit-NAME ps/logs/down``
still see them as theirs. It understands only the keys ``render`` writes: a new
key there fails here (:data:`KNOWN_KEYS`), never silently dropped.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from docker.types import Healthcheck, Mount

from clusterkit.security import NODE_SECRETS_DIR

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
NETWORK = "com.docker.compose.network"
#: The service keys this module turns into engine options (what ``render`` writes).
KNOWN_KEYS = frozenset(
    "image command restart stop_grace_period networks labels healthcheck environment tmpfs cap_drop "
    "security_opt hostname ports read_only depends_on scale cpus mem_limit volumes secrets user".split()
)
#: Requests in flight at once (the SDK's connection pool holds 10).
CONCURRENCY = 8


def unescape(value: Any) -> Any:
    """The file's values as the nodes get them (``render`` writes each ``$`` as ``$$``).

    >>> unescape({"A": "a$$b", "B": ["x$$$$y"]})
    {'A': 'a$b', 'B': ['x$$y']}
    """
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {unescape(k): unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape(v) for v in value]
    return value


def nanoseconds(duration: str) -> int:
    """A compose duration (``5s``, ``500ms``, ``1m``) in nanoseconds.

    >>> nanoseconds("5s"), nanoseconds("500ms"), nanoseconds("1m")
    (5000000000, 500000000, 60000000000)
    """
    for suffix, scale in (("ms", 10**6), ("s", 10**9), ("m", 60 * 10**9)):
        if duration.endswith(suffix) and duration[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(duration[: -len(suffix)]) * scale)
    raise ValueError(f"not a compose duration: {duration!r}")


def port_bindings(entries: list[str]) -> dict[str, tuple[str, int]]:
    """``ports:`` entries (``HOST:PORT:PORT``, IPv6 in brackets) as the engine's bindings.

    >>> port_bindings(["127.0.0.1:8786:8786", "[::1]:8787:8787"])
    {'8786/tcp': ('127.0.0.1', 8786), '8787/tcp': ('::1', 8787)}
    """
    found = {}
    for entry in entries:
        host, published, target = entry.rsplit(":", 2)
        found[f"{target}/tcp"] = (host.strip("[]"), int(published))
    return found


def container_options(document: dict[str, Any], service: str, project: str, number: int) -> dict[str, Any]:
    """What ``APIClient.create_container`` gets for container ``number`` of ``service``, host config apart."""
    svc = document["services"][service]
    unknown = set(svc) - KNOWN_KEYS
    if unknown:
        raise ValueError(
            f"compose service {service!r} has keys this runtime does not apply: {sorted(unknown)}"
        )
    health = svc.get("healthcheck")
    return {
        "image": svc["image"],
        "command": svc["command"],
        "name": f"{project}_{service}_{number}",
        # The engine publishes only exposed ports: each published one is exposed too.
        "ports": [int(port.split("/")[0]) for port in port_bindings(svc.get("ports", []))] or None,
        "hostname": svc.get("hostname"),
        "user": svc.get("user"),
        "environment": svc.get("environment"),
        "labels": {**svc["labels"], PROJECT: project, SERVICE: service, NUMBER: str(number), ONEOFF: "False"},
        "healthcheck": Healthcheck(
            test=health["test"],
            interval=nanoseconds(health["interval"]),
            timeout=nanoseconds(health["timeout"]),
            retries=health["retries"],
            start_period=nanoseconds(health["start_period"]),
        )
        if health
        else None,
        "stop_timeout": nanoseconds(svc["stop_grace_period"]) // 10**9
        if "stop_grace_period" in svc
        else None,
    }


def host_options(document: dict[str, Any], service: str) -> dict[str, Any]:
    """What ``APIClient.create_host_config`` gets for ``service``: limits, isolation, ports, mounts."""
    svc = document["services"][service]
    mounts = [
        Mount(v["target"], v["source"], type="bind", read_only=bool(v.get("read_only")))
        for v in svc.get("volumes", [])
    ]
    secrets = document.get("secrets", {})
    mounts += [
        Mount(f"{NODE_SECRETS_DIR}/{name}", secrets[name]["file"], type="bind", read_only=True)
        for name in svc.get("secrets", [])
    ]
    options: dict[str, Any] = {
        "restart_policy": {"Name": svc["restart"]} if svc.get("restart") else None,
        "tmpfs": dict(entry.split(":", 1) for entry in svc.get("tmpfs", [])),
        "cap_drop": svc.get("cap_drop"),
        "security_opt": svc.get("security_opt"),
        "read_only": svc.get("read_only"),
        "port_bindings": port_bindings(svc.get("ports", [])) or None,
        "mounts": mounts or None,
        "mem_limit": svc.get("mem_limit"),
        "nano_cpus": int(float(svc["cpus"]) * 1e9) if "cpus" in svc else None,
    }
    return {k: v for k, v in options.items() if v is not None}


def _network(docker: Any, document: dict[str, Any], project: str) -> str:
    """The file's one network, created with Compose's labels (a left-over one of this cluster is used)."""
    from docker.errors import APIError

    (key, network), *more = document["networks"].items()
    if more:
        raise ValueError("the rendered compose file has one network")
    net_labels = {**network.get("labels", {}), PROJECT: project, NETWORK: key}
    try:
        docker.networks.create(network["name"], driver="bridge", labels=net_labels, check_duplicate=True)
    except APIError as e:
        if e.status_code != 409:
            raise
    return network["name"]


class ComposeProject:
    """Containers of one rendered file (``document``) in compose project ``project``."""

    def __init__(self, docker: Any, document: dict[str, Any], project: str) -> None:
        self.docker = docker
        self.document = unescape(document)
        self.project = project

    def up(self) -> None:
        """The network, then every service's ``scale`` containers, created and started concurrently.

        A service starts after the services it ``depends_on`` were started (not
        after they are ready: nothing waits on a health probe); each container
        is created while those start.
        """
        network = _network(self.docker, self.document, self.project)
        services = self.document["services"]
        started = {name: threading.Event() for name in services}
        jobs = [(name, n) for name, svc in services.items() for n in range(1, int(svc.get("scale", 1)) + 1)]
        left = {name: int(svc.get("scale", 1)) for name, svc in services.items()}
        lock = threading.Lock()

        def make(service: str, number: int) -> None:
            try:
                container = self._create(service, number, network)
                for other in services[service].get("depends_on", []):
                    started[other].wait()
                self.docker.api.start(container)
            finally:  # a failed start releases its dependents too: the first error is raised after
                with lock:
                    left[service] -= 1
                    if not left[service]:
                        started[service].set()

        self._run(make, jobs)

    def add(self, service: str, count: int, first: int) -> None:
        """``count`` more containers of ``service``, numbered from ``first``, created and started concurrently."""
        network = _network(self.docker, self.document, self.project)
        jobs = [(service, n) for n in range(first, first + count)]
        self._run(lambda s, n: self.docker.api.start(self._create(s, n, network)), jobs)

    def _create(self, service: str, number: int, network: str) -> str:
        api = self.docker.api
        endpoint = api.create_endpoint_config(aliases=[service])
        created = api.create_container(
            **container_options(self.document, service, self.project, number),
            host_config=api.create_host_config(**host_options(self.document, service)),
            networking_config=api.create_networking_config({network: endpoint}),
        )
        return created["Id"]

    def _run(self, make: Any, jobs: list[tuple[str, int]]) -> None:
        """Every job, at most :data:`CONCURRENCY` at once; the first failure is raised once all ended."""
        services = self.document["services"]
        # A service's containers start once its dependencies were started: those go first in the queue.
        jobs.sort(key=lambda job: bool(services[job[0]].get("depends_on")))
        with ThreadPoolExecutor(max_workers=max(1, min(CONCURRENCY, len(jobs)))) as pool:
            futures = [pool.submit(make, service, number) for service, number in jobs]
        for future in futures:
            future.result()
