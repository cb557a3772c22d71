"""Compose runtime: a spec rendered to a compose file (:mod:`clusterkit.render.compose`) and run
by the Compose tool.

The running cluster is found again by labels: the scheduler container carries
the spec as JSON, so ``status``, ``scale`` and ``down`` work from any shell
without a state file. Everything else (finding, diagnosing, graceful
tear-down) is the shared :class:`ContainerRuntime`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clusterkit import records, security
from clusterkit.errors import EngineUnavailable, NodeStartError, StartupTimeout
from clusterkit.net import ensure_port_free
from clusterkit.render.compose import dump, project_name, render
from clusterkit.runtimes.containers import ContainerRuntime
from clusterkit.spec import ClusterSpec


def dies_with_parent() -> list[str]:
    """A prefix that has the Compose tool killed when this process dies (even by SIGKILL).

    Otherwise a ``clusterkit up`` killed mid-way leaves ``docker-compose`` running,
    creating containers after ``clusterkit gc`` has looked. Linux's ``setpriv``
    (util-linux) sets the parent-death signal before it execs the tool.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


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


class ComposeRuntime(ContainerRuntime):
    """Clusters as compose projects ``clusterkit-<name>`` on the local engine."""

    name = "compose"

    @contextmanager
    def _compose_argv(self, spec: ClusterSpec, image: str) -> Iterator[list[str]]:
        """The Compose tool's argv for this cluster, with its file rendered for the call."""
        with tempfile.TemporaryDirectory(prefix="clusterkit-") as tmp:
            path = Path(tmp) / "compose.yml"
            secrets_dir = str(security.client_dir(spec.name)) if security.secured(spec) else None
            # This process owns what the call creates until `up` is done (`clusterkit gc`).
            path.write_text(dump(render(spec, image, secrets_dir, records.owner_labels())))
            yield [*compose_command(), "-p", project_name(spec.name), "-f", str(path)]

    def _compose(self, spec: ClusterSpec, image: str, *args: str, timeout: float = 300) -> None:
        with self._compose_argv(spec, image) as base:
            shown = " ".join([*base[:-2], "-f", "compose.yml", *args])  # the project name, not the temp path
            try:
                result = subprocess.run(
                    [*dies_with_parent(), *base, *args], capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired as e:
                raise StartupTimeout(
                    f"`{shown}` did not finish within {timeout:.0f}s for cluster {spec.name!r}\n"
                    + self._diagnose(spec.name)
                ) from e
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            # The tool's own errors ("ERROR: for worker  Container ... is unhealthy"), not its progress.
            errors = [line.strip() for line in lines if line.lstrip().lower().startswith(("error", "for "))]
            detail = "; ".join(dict.fromkeys(errors or lines[-1:])) or f"exit {result.returncode}"
            diagnosis = self._diagnose(spec.name)
            raise NodeStartError(
                f"`{shown}` failed for cluster {spec.name!r}: {detail}"
                + (f"\n{diagnosis}" if diagnosis else "")
            )

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
        self._compose(spec, image, "up", "-d", "--scale", f"worker={spec.workers}", timeout=timeout)

    def _add_workers(self, name: str, count: int) -> None:
        spec = self.spec_of(name)
        total = len(self._containers(name, "worker")) + count
        # --no-recreate: the scheduler (and its spec label) is left alone; only workers are added.
        self._compose(
            spec, self._image(name), "up", "-d", "--no-recreate", "--scale", f"worker={total}", "worker"
        )
