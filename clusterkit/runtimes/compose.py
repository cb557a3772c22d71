"""Compose runtime: a spec rendered to a compose file (:mod:`clusterkit.render.compose`), its
containers created through the engine's API (:mod:`clusterkit.runtimes.compose_engine`).

The containers carry Compose's labels, so the Compose tool sees the project as
its own (``docker-compose -p clusterkit-NAME ps``), but it is not needed to run
one: creating every container at once is the second that the tool spent.

The running cluster is found again by labels: the scheduler container carries
the spec as JSON, so ``status``, ``scale`` and ``down`` work from any shell
without a state file. Everything else (finding, diagnosing, graceful
tear-down) is the shared :class:`ContainerRuntime`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from clusterkit import records, security
from clusterkit.errors import EngineUnavailable, NodeStartError
from clusterkit.net import ensure_port_free
from clusterkit.render.compose import project_name, render
from clusterkit.runtimes.compose_engine import NUMBER, ComposeProject
from clusterkit.runtimes.containers import ContainerRuntime
from clusterkit.spec import ClusterSpec


def compose_command() -> list[str]:
    """``docker compose`` (v2) if present, else ``docker-compose`` (v1): for people and benchmarks."""
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


class ComposeRuntime(ContainerRuntime):
    """Clusters as compose projects ``clusterkit-<name>`` on the local engine."""

    name = "compose"

    def _project(self, spec: ClusterSpec, image: str) -> ComposeProject:
        """The rendered file of this cluster, as its containers are created from it."""
        secrets_dir = str(security.client_dir(spec.name)) if security.secured(spec) else None
        # This process owns what the call creates until `up` is done (`clusterkit gc`).
        document = render(spec, image, secrets_dir, records.owner_labels())
        return ComposeProject(self.docker, document, project_name(spec.name))

    def _apply(self, spec: ClusterSpec, what: str, action: Callable[[], None]) -> None:
        """Run an engine-side step; an engine refusal is a :class:`NodeStartError` with the diagnosis."""
        from docker.errors import APIError

        try:
            action()
        except APIError as e:
            diagnosis = self._diagnose(spec.name)
            raise NodeStartError(
                f"{what} failed for cluster {spec.name!r}: {e.explanation or e}"
                + (f"\n{diagnosis}" if diagnosis else "")
            ) from e

    def _image(self, name: str) -> str:
        return self._scheduler(name).attrs["Config"]["Image"]

    # -- what this runtime says -------------------------------------------------------

    def _preflight(self, spec: ClusterSpec) -> None:
        super()._preflight(spec)
        ensure_port_free(spec.bind_address, spec.scheduler_port, "scheduler")
        ensure_port_free(spec.bind_address, spec.dashboard_port, "dashboard")
        if spec.connect_port:
            ensure_port_free(spec.bind_address, spec.connect_port, "Spark Connect")

    def _start(self, spec: ClusterSpec, image: str | None, timeout: float) -> None:
        assert image is not None
        if security.secured(spec):  # opt-in here: what runs on a swarm, tried on this machine
            security.save(security.Material.create(spec.name))
            security.share_with_nodes(spec.name, int((spec.user or str(security.NODE_UID)).split(":")[0]))
        self._apply(spec, "creating the containers", self._project(spec, image).up)

    def _add_workers(self, name: str, count: int) -> None:
        spec = self.spec_of(name)
        numbers = [int(c.labels.get(NUMBER) or 0) for c in self._containers(name, "worker")]
        project = self._project(spec, self._image(name))
        self._apply(spec, "adding workers", lambda: project.add("worker", count, max(numbers, default=0) + 1))
