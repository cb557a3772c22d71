"""Compose runtime: a spec rendered to a compose file and run by the Compose tool.

``render`` is pure (spec -> dict) and is what ``clusterkit render`` writes
under ``compose/``. The running cluster is found again by labels: the
scheduler container carries the spec as JSON, so ``status``, ``scale`` and
``down`` work from any shell without a state file.

The image's entrypoint is tini, so SIGTERM reaches the node program and it
stops well within ``stop_grace_period``. The file avoids keys that either Compose v1 (docker-compose 1.29) or v2
rejects: no ``version``, no top-level ``name``, no ``start_interval``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from clusterkit import labels
from clusterkit.backends import get_backend
from clusterkit.backends.base import ensure_port_free, format_host
from clusterkit.engine import docker_client
from clusterkit.errors import (
    ClusterExists,
    ClusterKitError,
    ClusterNotFound,
    ClusterUnavailable,
    EngineUnavailable,
    ImageNotFound,
    NodeStartError,
    StartupTimeout,
)
from clusterkit.runtimes.base import Progress, Runtime, _quiet, wait_for_workers
from clusterkit.spec import ClusterSpec, format_memory, resolve_spec
from clusterkit.status import ClusterStatus
from clusterkit.waiting import NotReady

STOP_TIMEOUT = 5


def project_name(cluster: str) -> str:
    return f"clusterkit-{cluster}"


def network_name(cluster: str) -> str:
    return f"clusterkit-{cluster}"


def _healthcheck(test: list[str], interval: str) -> dict[str, Any]:
    return {
        "test": ["CMD", *test],
        "interval": interval,
        "timeout": "5s",
        "retries": 3,
        "start_period": "60s",
    }


def node_commands(spec: ClusterSpec, scheduler_host: str = "scheduler") -> dict[str, dict[str, list[str]]]:
    """Commands and health probes of the scheduler and a worker, inside the image.

    Shared by every container runtime (compose, swarm, testcontainers), so ports,
    commands and probes are described once.
    """
    b, p, d = spec.backend, str(spec.scheduler_port), str(spec.dashboard_port)
    node = ["python", "-m", "clusterkit.node"]  # = `clusterkit node`, without the CLI's imports
    scheduler = [*node, "scheduler", "--backend", b, "--port", p, "--dashboard-port", d]
    worker = [*node, "worker", "--backend", b, "--scheduler", f"{scheduler_host}:{p}"]
    worker += ["--cores", str(spec.cores), "--memory", format_memory(spec.memory)]
    probe = ["python", "-m", "clusterkit.probe"]  # = `clusterkit probe`, without the CLI's imports
    scheduler_probe = [*probe, "scheduler", "--backend", b, "--ui", f"127.0.0.1:{d}"]
    worker_probe = [*probe, "worker", "--backend", b, "--ui", f"{scheduler_host}:{d}"]
    worker_ui = get_backend(b).worker_ui_port
    if worker_ui:
        worker_probe += ["--worker-ui", f"127.0.0.1:{worker_ui}"]
    return {
        "scheduler": {"command": scheduler, "probe": scheduler_probe},
        "worker": {"command": worker, "probe": worker_probe},
    }


def node_environment(spec: ClusterSpec) -> dict[str, str]:
    """The backend's node environment, overridden by the spec's ``env``."""
    return {**get_backend(spec.backend).node_env, **dict(spec.env)}


def render(spec: ClusterSpec, image: str) -> dict[str, Any]:
    """The compose file for ``spec`` as a dict (pure: no Docker, no files).

    >>> from clusterkit.spec import resolve_spec
    >>> doc = render(resolve_spec(overrides={"workers": 3}, environ={}), "clusterkit/dask:abc")
    >>> doc["services"]["worker"]["scale"], doc["services"]["scheduler"]["ports"][0]
    (3, '127.0.0.1:8786:8786')
    """
    commands = node_commands(spec)
    env = node_environment(spec)
    spec_json = json.dumps(spec.to_dict(), sort_keys=True)

    def service(role: str) -> dict[str, Any]:
        svc: dict[str, Any] = {
            "image": image,
            "command": commands[role]["command"],
            "restart": "unless-stopped",
            "stop_grace_period": f"{STOP_TIMEOUT}s",
            "networks": ["cluster"],
            "labels": labels.cluster_labels(spec.name, spec.backend, "compose", role),
            # Workers start once the scheduler is healthy, so its probe runs often;
            # nothing waits on a worker's health, so theirs cost less CPU.
            "healthcheck": _healthcheck(commands[role]["probe"], "1s" if role == "scheduler" else "5s"),
        }
        if env:
            svc["environment"] = dict(sorted(env.items()))
        return svc

    scheduler = service("scheduler")
    scheduler["hostname"] = "scheduler"
    scheduler["labels"][labels.SPEC] = spec_json
    bind = spec.bind_address
    scheduler["ports"] = [
        f"{bind}:{spec.scheduler_port}:{spec.scheduler_port}",
        f"{bind}:{spec.dashboard_port}:{spec.dashboard_port}",
    ]
    worker = service("worker")
    worker["depends_on"] = {"scheduler": {"condition": "service_healthy"}}
    worker["scale"] = spec.workers
    worker["cpus"] = float(spec.cores)
    worker["mem_limit"] = spec.memory + get_backend(spec.backend).memory_overhead
    return {
        "services": {"scheduler": scheduler, "worker": worker},
        "networks": {
            "cluster": {
                "name": network_name(spec.name),
                "labels": labels.cluster_labels(spec.name, spec.backend, "compose"),
            }
        },
    }


def dump(document: dict[str, Any]) -> str:
    header = "# Written by `clusterkit render`; do not edit by hand (CI compares it).\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def compose_command() -> list[str]:
    """``docker compose`` (v2) if present, else ``docker-compose`` (v1)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise EngineUnavailable(
        "neither `docker compose` nor `docker-compose` is installed; install the Compose tool"
    )


class ComposeRuntime(Runtime):
    """Clusters as compose projects ``clusterkit-<name>`` on the local engine."""

    name = "compose"

    def __init__(self) -> None:
        self._docker: Any = None

    @property
    def docker(self) -> Any:
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    # -- helpers -------------------------------------------------------------------

    def _containers(self, name: str | None = None, role: str | None = None) -> list[Any]:
        wanted: dict[str, str] = {"runtime": "compose"}
        if name:
            wanted["cluster"] = name
        if role:
            wanted["role"] = role
        return self.docker.containers.list(all=True, filters={"label": labels.selector(**wanted)})

    @contextmanager
    def _compose_argv(self, spec: ClusterSpec, image: str) -> Iterator[list[str]]:
        """The Compose tool's argv for this cluster, with its file rendered for the call."""
        with tempfile.TemporaryDirectory(prefix="clusterkit-") as tmp:
            path = Path(tmp) / "compose.yml"
            path.write_text(dump(render(spec, image)))
            yield [*compose_command(), "-p", project_name(spec.name), "-f", str(path)]

    def _compose(self, spec: ClusterSpec, image: str, *args: str, timeout: float = 300) -> str:
        with self._compose_argv(spec, image) as base:
            argv = [*base, *args]
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                raise StartupTimeout(
                    f"`{' '.join(argv[:2])} {' '.join(args)}` did not finish within {timeout:.0f}s "
                    f"for cluster {spec.name!r}\n" + self._diagnose(spec.name)
                ) from e
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise NodeStartError(
                f"`{' '.join(argv[:2])} {' '.join(args)}` failed for cluster {spec.name!r}: "
                + (detail[-1] if detail else f"exit {result.returncode}")
            )
        return result.stdout

    def _recorded(self, name: str) -> tuple[ClusterSpec, str]:
        schedulers = self._containers(name, "scheduler")
        if not schedulers:
            raise ClusterNotFound(
                f"no compose cluster named {name!r}; start one with `clusterkit up --name {name}`"
            )
        container = schedulers[0]
        spec = resolve_spec(overrides=json.loads(container.labels[labels.SPEC]), environ={})
        return spec, container.attrs["Config"]["Image"]

    def clusters(self) -> list[str]:
        try:
            found = self._containers(role="scheduler")
        except EngineUnavailable:
            return []
        return sorted({c.labels[labels.CLUSTER] for c in found})

    def spec_of(self, name: str) -> ClusterSpec:
        return self._recorded(name)[0]

    def image_of(self, name: str) -> str:
        return self._recorded(name)[1]

    def _unregistered(self, name: str) -> list[str]:
        """Worker containers the scheduler does not list (by host name or address)."""
        from clusterkit.backends import get_backend

        try:
            spec, _ = self._recorded(name)
            host = spec.scheduler_address.rsplit(":", 1)[0]
            seen = get_backend(spec.backend).collect_status(host, spec.scheduler_port, spec.dashboard_port)
        except (ClusterKitError, NotReady):
            return []
        known = {w.name for w in seen.workers} | {
            w.address.split("://")[-1].rsplit(":", 1)[0] for w in seen.workers
        }
        missing = []
        for c in self._containers(name, "worker"):
            addresses = {n.get("IPAddress") for n in c.attrs["NetworkSettings"]["Networks"].values()}
            if c.attrs["Config"]["Hostname"] not in known and not addresses & known:
                missing.append(c.name)
        return sorted(missing)

    def _diagnose(self, name: str) -> str:
        lines = []
        missing = self._unregistered(name)
        if missing:
            lines.append(f"  not registered with the scheduler: {', '.join(missing)}")
        for c in self._containers(name):
            c.reload()
            state = c.attrs["State"]
            health = state.get("Health", {}).get("Status", "")
            if state["Status"] != "running" or health == "unhealthy" or state.get("ExitCode"):
                lines.append(
                    f"  {c.name} ({c.labels.get(labels.ROLE)}) is {state['Status']}"
                    f"{' ' + health if health else ''}, exit code {state.get('ExitCode')}; last log lines:"
                )
                tail = c.logs(tail=8).decode(errors="replace").rstrip().splitlines()
                lines += [f"    {line}" for line in tail] or ["    (empty log)"]
                probes = state.get("Health", {}).get("Log") or []
                if probes and probes[-1].get("ExitCode"):
                    lines.append(f"    last health probe: {probes[-1].get('Output', '').strip()[:300]}")
        return "\n".join(lines)

    def _check(self, name: str) -> None:
        """Fail at once if a node has exited for good (not restarting)."""
        for c in self._containers(name):
            state = c.attrs["State"]
            if state["Status"] == "exited" and state.get("ExitCode") not in (0, None):
                raise NodeStartError(f"cluster {name!r}: a node exited\n" + self._diagnose(name))

    # -- Runtime -------------------------------------------------------------------

    def up(
        self, spec: ClusterSpec, *, timeout: float = 180, keep: bool = False, progress: Progress = _quiet
    ) -> ClusterStatus:
        from clusterkit import images

        if self._containers(spec.name):
            raise ClusterExists(
                f"cluster {spec.name!r} already has containers; run `clusterkit down --name {spec.name}` "
                "first or choose another --name"
            )
        if spec.image:
            image = spec.image
            if not images.image_exists(image):
                raise ImageNotFound(
                    f"image {image!r} is not present on the engine; build it (`make images`) "
                    "or drop `image:` to use the one built from the lock"
                )
        else:
            image = images.ensure_image(spec.backend, progress=progress)
        ensure_port_free(spec.bind_address, spec.scheduler_port, "scheduler")
        ensure_port_free(spec.bind_address, spec.dashboard_port, "dashboard")
        progress(f"starting {spec.backend} scheduler and {spec.workers} workers ({image})")
        deadline = time.monotonic() + timeout  # one deadline for compose and the wait
        try:
            self._compose(spec, image, "up", "-d", "--scale", f"worker={spec.workers}", timeout=timeout)
            self._wait(spec, spec.workers, max(1.0, deadline - time.monotonic()))
        except BaseException:
            if not keep:
                self._teardown(spec.name)
            raise
        return self.status(spec.name)

    def _wait(self, spec: ClusterSpec, expected: int, timeout: float) -> None:
        host = spec.scheduler_address.rsplit(":", 1)[0]
        wait_for_workers(
            spec,
            host,
            expected=expected,
            timeout=timeout,
            check=lambda: self._check(spec.name),
            diagnose=lambda: self._diagnose(spec.name),
        )

    def _teardown(self, name: str, volumes: bool = False) -> None:
        """Stop and remove everything labelled with the cluster, gracefully and in parallel.

        By label rather than through the compose file, so it also removes what a
        crashed or older ``up`` left, and does not pay the Compose tool's start-up.
        Workers get SIGTERM first; the scheduler follows as soon as it has seen
        them leave (a worker whose scheduler vanishes first waits to reconnect),
        while the workers' processes finish exiting.
        """
        from concurrent.futures import ThreadPoolExecutor

        from docker.errors import APIError, NotFound

        def quietly(action: Any) -> None:
            try:
                action()
            except NotFound:
                pass  # already gone
            except APIError as e:
                if e.status_code not in (409,):  # 409: not running, or removal in progress
                    raise

        containers = self._containers(name)
        workers = [c for c in containers if c.labels.get(labels.ROLE) != "scheduler"]
        schedulers = [c for c in containers if c not in workers]
        with ThreadPoolExecutor(max_workers=min(32, len(containers) + 1)) as pool:
            list(pool.map(lambda c: quietly(lambda: c.kill(signal="SIGTERM")), workers))
            self._await_workers_gone(schedulers)
            stops = pool.map(lambda c: quietly(lambda: c.stop(timeout=STOP_TIMEOUT)), containers)
            list(stops)
            list(pool.map(lambda c: quietly(lambda: c.remove(v=volumes, force=True)), containers))
        for network in self.docker.networks.list(
            filters={"label": labels.selector(cluster=name, runtime="compose")}
        ):
            network.remove()
        if volumes:
            for volume in self.docker.volumes.list(filters={"label": labels.selector(cluster=name)}):
                volume.remove(force=True)

    def _await_workers_gone(self, schedulers: list[Any], timeout: float = 3.0) -> None:
        """Wait (briefly) until the scheduler lists no worker; give up quietly if it does not answer."""
        from clusterkit import probe
        from clusterkit.waiting import wait_for

        if not schedulers:
            return
        try:
            spec = resolve_spec(overrides=json.loads(schedulers[0].labels[labels.SPEC]), environ={})
        except (KeyError, ValueError, ClusterKitError):
            return
        ui = f"{spec.scheduler_address.rsplit(':', 1)[0]}:{spec.dashboard_port}"

        def none_left() -> None:
            try:
                left = probe.registered_workers(spec.backend, ui)
            except probe.NotReadyYet:
                return  # the scheduler does not answer: nothing to wait for
            if left:
                raise NotReady(f"{left} workers still registered")

        try:
            wait_for(none_left, what="workers to leave", timeout=timeout, interval=0.05, max_interval=0.1)
        except StartupTimeout:
            pass  # stop the scheduler anyway; the workers are already terminating

    def down(self, name: str, *, volumes: bool = False) -> None:
        if not self._containers(name):
            raise ClusterNotFound(f"no compose cluster named {name!r}; `clusterkit status` lists what runs")
        self._teardown(name, volumes)

    def status(self, name: str) -> ClusterStatus:
        from clusterkit.backends import get_backend

        spec, _ = self._recorded(name)
        host = spec.scheduler_address.rsplit(":", 1)[0]
        try:
            found = get_backend(spec.backend).collect_status(host, spec.scheduler_port, spec.dashboard_port)
        except NotReady as e:
            raise ClusterUnavailable(
                f"cluster {name!r} has containers but its scheduler does not answer ({e})\n"
                + self._diagnose(name)
            ) from e
        return ClusterStatus(**{**found.__dict__, "name": name, "runtime": self.name})

    def scale(self, name: str, workers: int, *, timeout: float = 180) -> ClusterStatus:
        spec, image = self._recorded(name)
        spec = spec.replace(workers=workers)
        # --no-recreate: the scheduler (and its spec label, which keeps the first
        # worker count) is left alone; only workers are added or removed.
        self._compose(spec, image, "up", "-d", "--no-recreate", "--scale", f"worker={workers}", "worker")
        self._wait(spec, workers, timeout)
        return self.status(name)

    def logs(self, name: str, service: str | None = None, *, follow: bool = False, tail: int = 100) -> None:
        spec, image = self._recorded(name)
        with self._compose_argv(spec, image) as argv:
            argv += (
                ["logs", "--tail", str(tail)] + (["-f"] if follow else []) + ([service] if service else [])
            )
            subprocess.run(argv, check=False)

    def driver_host(self, name: str) -> str:
        """The cluster network's gateway: an address of this host that containers reach."""
        network = self.docker.networks.get(network_name(name))
        return network.attrs["IPAM"]["Config"][0]["Gateway"]


def write_default_files(folder: Path) -> list[Path]:
    """Write ``compose/<backend>.yml`` for each backend's default spec (``make render``)."""
    from clusterkit import images
    from clusterkit.spec import BACKENDS

    written = []
    for backend in BACKENDS:
        spec = resolve_spec(overrides={"backend": backend}, environ={})
        path = folder / f"{backend}.yml"
        path.write_text(dump(render(spec, images.image_tag(backend))))
        written.append(path)
    return written


if __name__ == "__main__":
    import sys

    for written in write_default_files(Path(sys.argv[1] if len(sys.argv) > 1 else "compose")):
        print(f"wrote {written}")

__all__ = ["ComposeRuntime", "dump", "format_host", "node_commands", "render"]
