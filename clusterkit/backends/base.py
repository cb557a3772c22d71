"""What every backend provides, and the helpers they share.

A backend *states data* (its name, default ports, the programs it runs, how to
probe and how to read status); runtimes (local processes, compose,
testcontainers) use that data and never special-case a backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import IO, Any, TypeVar

from clusterkit import client_env, leave
from clusterkit.errors import NodeStartError
from clusterkit.facts import BackendFacts
from clusterkit.net import ensure_port_free, parse_address
from clusterkit.spec import ClusterSpec
from clusterkit.status import ClusterStatus

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running event loop."""
    import asyncio  # here, not at the top: node start-up does not need it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


#: What pyspark marks a Spark Connect client process with (its children inherit it): a node
#: started from such a process would run its own Python as a Connect client.
CLIENT_ONLY_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


def launch(
    argv: Sequence[str],
    *,
    detach: bool,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
) -> subprocess.Popen[bytes] | None:
    """Run a node program: replace this process, or start it in its own session.

    ``detach=False`` is what a container's main process does (exec, so signals
    reach the program directly; or, for a Python program this process has
    already imported, run it right here); ``detach=True`` is the local runtime's way.
    """
    full_env = {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_ENV} | dict(env or {})
    python_module = len(argv) > 2 and argv[0] == sys.executable and argv[1] == "-m"
    if not detach and python_module and argv[2] in sys.modules:
        # Imported ahead by this process (a worker container's entry point, while the
        # scheduler started): run it here rather than exec, so its imports are not paid again.
        import warnings

        os.environ.update(env or {})
        for name in CLIENT_ONLY_ENV:
            os.environ.pop(name, None)
        sys.argv = [argv[2], *argv[3:]]
        with warnings.catch_warnings():  # "found in sys.modules ... prior to execution": as intended
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            leave.run_and_leave(argv[2])
    if not detach:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvpe(argv[0], list(argv), full_env)  # noqa: S606 - a container entrypoint
        except OSError as e:
            raise NodeStartError(f"cannot run {argv[0]!r}: {e.strerror}") from e
    try:
        return subprocess.Popen(
            list(argv),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise NodeStartError(f"cannot run {argv[0]!r}: {e.strerror}") from e


class Backend:
    """The seed API plus the data runtimes need. Subclasses set the data.

    The data lower layers read too (name, scheme, ports, health) is the subclass's
    row of :mod:`clusterkit.facts` (``facts``); its class attributes point at it.
    """

    facts: BackendFacts
    name: str = ""
    scheme: str = ""
    scheduler_port: int = 0
    dashboard_port: int = 0
    #: How a client hands over a ``security: tls`` cluster's credential: the keyword of
    #: ``connect_to_scheduler`` and the :mod:`clusterkit.security` function that loads it.
    credential: tuple[str, str] = ("", "")
    #: Whether the scheduler listens on every interface of its container. Spark's master binds
    #: only the address it advertises, so a swarm's host-mode port (which reaches a task through
    #: another interface) cannot reach it; the swarm runtime forwards its port instead.
    listens_on_all_interfaces = True
    #: The scheduler's HTTP health endpoint (on the dashboard port) and the text it shows when ready.
    health_path = "/"
    health_marker = ""
    #: Room a worker container needs above the worker's memory.
    memory_overhead = 512 * 2**20
    #: Environment every node of this backend gets (the spec's ``env`` wins).
    node_env: dict[str, str] = {}
    #: More of it for node containers only, not for the local runtime's processes.
    container_env: dict[str, str] = {}
    #: More for sealed node containers (read-only root): where the backend's scratch goes.
    scratch_env: dict[str, str] = {}
    #: A worker's own web UI port inside its container, for its probe (``None``: no such UI).
    worker_ui_port: int | None = None
    #: The worker program's module, when it is Python (``python -m <module>``): a worker
    #: container imports it while the scheduler starts and runs it in the same process.
    worker_module: str | None = None
    #: What the local runtime passes to ``start_worker``: several workers share one host.
    local_worker_options: dict[str, Any] = {}

    # -- programs: what a backend says ------------------------------------------

    def scheduler_argv(
        self, host: str | None, port: int, dashboard_port: int, secrets_dir: str | None = None, **options: Any
    ) -> list[str]:
        """The scheduler program; ``host`` ``None`` listens on every interface.

        ``secrets_dir`` holds the cluster's credentials (:mod:`clusterkit.security`): TLS/auth on.
        ``options``: the backend's own (:meth:`scheduler_options`).
        """
        raise NotImplementedError

    def scheduler_options(self, spec: ClusterSpec) -> dict[str, int]:
        """What the scheduler node of ``spec`` needs beyond its ports (Spark: its Connect server's
        port and the workers' size), as ``--flag value`` of ``clusterkit.node scheduler``."""
        return {}

    def status_options(self, spec: ClusterSpec) -> dict[str, Any]:
        """Keyword arguments of ``count_workers`` and ``collect_status`` for ``spec`` as this host
        reaches it: its credentials, and what else the backend's readiness covers."""
        return self.credentials(spec)

    def worker_argv(self, scheduler_address: str, **node: Any) -> list[str]:
        """One worker program that joins ``scheduler_address``.

        ``node``: ``cores``, ``memory`` (bytes), ``name``, ``host``, ``work_dir``,
        ``secrets_dir`` and the backend's own options (Spark: ``webui_port``).
        """
        raise NotImplementedError

    def node_process_env(
        self, role: str, work_dir: str | None, secrets_dir: str | None = None
    ) -> dict[str, str]:
        """Environment the node program needs beyond this process's own."""
        return {}

    def credentials(self, spec: ClusterSpec) -> dict[str, Any]:
        """Keyword arguments a client of ``spec`` passes to ``connect_to_scheduler`` and the
        status reads: empty unless the cluster runs with ``security: tls``."""
        from clusterkit import security

        if not security.secured(spec):
            return {}
        keyword, loader = self.credential
        return {keyword: getattr(security, loader)(spec.name)}

    # -- the seed API ----------------------------------------------------------

    def start_scheduler(
        self,
        address: str | None = None,
        *,
        dashboard_port: int | None = None,
        detach: bool = False,
        log: IO[bytes] | None = None,
        work_dir: str | None = None,
        secrets_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """Run the scheduler at ``address`` (``host:port``; host 0.0.0.0 = every interface).

        ``detach=False`` (as inside a container) replaces this process with the
        scheduler; ``detach=True`` returns a ``Popen``. Raises ``PortInUse``
        before starting if a port is taken (Spark would silently move to the next one).
        ``env`` adds to the program's environment (verbatim); ``options`` are the backend's
        own (:meth:`scheduler_options`).
        """
        host, port = parse_address(address or f"0.0.0.0:{self.scheduler_port}", self.scheduler_port)
        dashboard_port = dashboard_port or self.dashboard_port
        bind = None if host in ("0.0.0.0", "", "*") else host
        ensure_port_free(bind or "0.0.0.0", port, "scheduler")
        ensure_port_free(bind or "0.0.0.0", dashboard_port, "dashboard")
        argv = self.scheduler_argv(bind, port, dashboard_port, secrets_dir, **options)
        env = {**(env or {}), **self.node_process_env("scheduler", work_dir, secrets_dir)}
        return launch(argv, detach=detach, env=env, log=log)

    def start_worker(
        self,
        scheduler_address: str,
        *,
        cores: int = 1,
        memory: int | str = "1g",
        name: str | None = None,
        host: str | None = None,
        detach: bool = False,
        log: IO[bytes] | None = None,
        work_dir: str | None = None,
        secrets_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """Run one worker offering ``cores`` and ``memory`` to the scheduler at ``scheduler_address``.

        ``options`` are the backend's own (Spark: ``webui_port``); ``env`` adds to
        the program's environment (verbatim).
        """
        from clusterkit.spec import parse_memory

        argv = self.worker_argv(
            scheduler_address,
            cores=cores,
            memory=parse_memory(memory),
            name=name,
            host=host,
            work_dir=work_dir,
            secrets_dir=secrets_dir,
            **options,
        )
        env = {**(env or {}), **self.node_process_env("worker", work_dir, secrets_dir)}
        return launch(argv, detach=detach, env=env, log=log)

    def connect_to_scheduler(self, address: str, timeout: float = 30, **kwargs: Any) -> Any:
        raise NotImplementedError

    def report_status(self, address: str | None = None, **kwargs: Any) -> ClusterStatus:
        raise NotImplementedError

    def close(self, connection: Any) -> None:
        """Close what ``connect_to_scheduler`` returned."""
        connection.close()

    def connect(self, spec: ClusterSpec, timeout: float = 60, **options: Any) -> Any:
        """A client for the cluster of ``spec`` (as this host reaches it: ``Runtime.client_spec``),
        with the cluster's credentials when it has them."""
        options = {**self.credentials(spec), **options}
        return self.connect_to_scheduler(
            spec.scheduler_address, timeout, ui_port=spec.dashboard_port, **options
        )

    def ship(self, connection: Any, archive: str) -> None:
        """Put a zip of Python modules on every node's path (test code the tasks import)."""
        raise NotImplementedError

    def ship_project(self, connection: Any) -> str | None:
        """Send the project's own packages (:mod:`clusterkit.project`) through ``connection``, to
        nodes that join later too; once per content. ``connect_to_scheduler`` calls it (unless
        ``ship_project=False``). Returns the zip's digest, ``None`` when nothing was sent."""
        raise NotImplementedError

    def count_workers(self, host: str, scheduler_port: int, dashboard_port: int, **credentials: Any) -> int:
        """Workers the scheduler has registered; raises ``NotReady`` if it does not answer."""
        raise NotImplementedError

    def collect_status(
        self, host: str, scheduler_port: int, dashboard_port: int, **credentials: Any
    ) -> ClusterStatus:
        """Status read over the protocol, without keeping a client open."""
        raise NotImplementedError

    # -- clients in a client container (:mod:`clusterkit.client_env`) --------------

    def client_environment(self, place: client_env.ClientPlace) -> dict[str, str]:
        """The variables a client container of ``place`` gets: the spec's ``env`` first, the
        common ones (:func:`clusterkit.client_env.common_environment`), then how a client of
        this backend reaches the scheduler (read back by :func:`clusterkit.client_env.target`)."""
        return client_env.common_environment(place)

    def credential_files(self) -> tuple[str, ...]:
        """File names (in ``security.client_dir``) a client needs with ``security: tls``."""
        raise NotImplementedError

    def shell_namespace(
        self, target: client_env.ClientTarget
    ) -> tuple[dict[str, Any], str, Callable[[], Any]]:
        """What ``clusterkit shell`` (:mod:`clusterkit.shell`) hands the user inside a client
        container of ``target``: the namespace of ready objects, a banner line, and how to close."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<clusterkit {self.name} backend>"
