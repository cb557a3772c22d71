"""pytest plugin: a real Dask or Spark cluster in containers, shared per session.

Installed with clusterkit (``pytest11`` entry point), nothing to copy::

    def test_sum(dask_cluster):
        client = dask_cluster.client
        assert client.submit(sum, [1, 2, 3]).result() == 6

Fixtures: ``dask_cluster``, ``spark_cluster``, ``spark_session`` (its session; not
when pytest-spark, which has its own, is active) and ``spark_connect_session`` (a Spark
Connect session on it), all of session scope, and the
factory ``clusterkit_cluster(backend, workers=..., **spec)``. Options:
``--clusterkit-workers N``, ``--clusterkit-keep``, ``--clusterkit-spec PATH``; ini:
``clusterkit_dask_image``, ``clusterkit_spark_image``, ``clusterkit_workers``,
``clusterkit_spec`` (a spec file; none is read unless named, not even
``./clusterkit.yaml``: a test suite must not change with the directory it runs in).
``--clusterkit-reuse`` (ini ``clusterkit_reuse``, ``clusterkit_reuse_restart``,
``clusterkit_reuse_idle``) keeps the clusters for the next run (:mod:`clusterkit.testing.reuse`).

Clean-up does not depend on Ryuk (its image cannot be pulled everywhere):
finalizers remove everything at the end of the session, pass or fail. Each
cluster carries the session id and a lease the session renews on the engine
(:mod:`clusterkit.runtimes.leases`), so the first cluster fixture of a later
session (or ``clusterkit gc``) removes what a killed session left, and never
what a live one in another PID namespace holds. Under pytest-xdist the
processes share one cluster through a file lock and a state file; the last
one out removes it, and the controller removes whatever still carries the
session id at the end (a SIGKILLed worker never gives its share back). A
session that uses no cluster fixture never contacts the engine. Without
Docker or the image, the fixtures skip with the reason, or fail when
``CLUSTERKIT_REQUIRE_DOCKER=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterkit.errors import EngineUnavailable, ImageError
from clusterkit.facts import DEFAULT_BACKEND
from clusterkit.testing import sessions
from clusterkit.testing.handle import ClusterHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clusterkit", "real Dask/Spark clusters in containers")
    group.addoption("--clusterkit-workers", type=int, default=None, help="workers per cluster (default 2)")
    group.addoption(
        "--clusterkit-keep", action="store_true", help="leave the session's clusters up (for debugging)"
    )
    parser.addini("clusterkit_dask_image", "node image for dask_cluster (default: built from the lock)")
    parser.addini("clusterkit_spark_image", "node image for spark_cluster (default: built from the lock)")
    parser.addini("clusterkit_workers", "workers per cluster", default="2")
    group.addoption("--clusterkit-spec", default=None, help="a spec file for the fixtures' clusters")
    parser.addini("clusterkit_spec", "a spec file for the fixtures' clusters (default: none)", type="paths")
    group.addoption(
        "--clusterkit-reuse",
        action="store_true",
        help="keep the clusters for the next run and take a kept one (never when CI is set)",
    )
    parser.addini("clusterkit_reuse", "as --clusterkit-reuse", type="bool", default=False)
    parser.addini(
        "clusterkit_reuse_restart", "restart a reused cluster's workers first", type="bool", default=False
    )
    parser.addini(
        "clusterkit_reuse_idle", "seconds a kept cluster may stay unused (default 3600)", default="3600"
    )


def _required() -> bool:
    return os.environ.get("CLUSTERKIT_REQUIRE_DOCKER") == "1"


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} (CLUSTERKIT_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """One session id for the whole run, handed to xdist workers (see :func:`pytest_configure_node`)."""
    from clusterkit.labels import new_session_id

    if not _is_xdist_worker(config):
        config._clusterkit_session = new_session_id()  # type: ignore[attr-defined]
    if not config.pluginmanager.hasplugin(PYTEST_SPARK):
        config.pluginmanager.register(SparkSessionFixture(), "clusterkit-spark-session")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["clusterkit_session"] = node.config._clusterkit_session


def _session_id(config: pytest.Config) -> str:
    if _is_xdist_worker(config):
        found = config.workerinput  # type: ignore[attr-defined]
        return str(found.get("clusterkit_session") or found["testrunuid"][:12])
    return str(config._clusterkit_session)  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's last process removes what still carries its id (a killed worker's share)."""
    if _is_xdist_worker(config) or config.getoption("clusterkit_keep"):
        return
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or not sessions.was_used(factory.getbasetemp()):
        return  # no cluster fixture ran: no engine call
    sessions.remove_session(_session_id(config))


def spec_file(config: pytest.Config) -> str:
    """The spec file the fixtures read: ``--clusterkit-spec``, else the ini's ``clusterkit_spec``.

    With neither, no file at all: :data:`os.devnull` stands for an empty one,
    because ``resolve_spec`` would otherwise pick up ``./clusterkit.yaml``.
    """
    given = config.getoption("clusterkit_spec")
    if given:
        return str(Path(config.invocation_params.dir, given))
    listed = config.getini("clusterkit_spec")
    return str(listed[0]) if listed else os.devnull


#: The progress steps a fixture prints: what builds images, not every start-up step.
_SHOWN = frozenset({"base", "wheelhouse", "build", "lock"})


_FIXTURES = ("dask_cluster", "spark_cluster")


@pytest.fixture(autouse=True)
def _clusterkit_ship_test_module(request: pytest.FixtureRequest) -> None:
    """Make the test's own module importable on the workers.

    Functions defined in ``test_*.py`` are pickled by reference, and workers
    cannot import test modules; so the module (or its package, zipped) is
    sent with ``Client.upload_file`` (Dask) or ``SparkContext.addPyFile``.
    """
    for name in _FIXTURES:
        if name in request.fixturenames:
            request.getfixturevalue(name).ship(request.module)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test that used a cluster gets its nodes' recent logs as report sections."""
    outcome = yield
    from clusterkit.testing.report import attach

    attach(item, outcome.get_result())  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    swept = getattr(config, "_clusterkit_swept", None)
    if swept:
        terminalreporter.write_line(f"clusterkit: removed {len(swept)} cluster(s) left by dead sessions")
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None and sessions.was_used(factory.getbasetemp()):
        for line in sessions.notes(factory.getbasetemp()):  # from whichever process took a cluster
            terminalreporter.write_line(f"clusterkit: {line}")


class _Clusters:
    """The session's clusters, shared across xdist workers through a state file."""

    def __init__(self, config: pytest.Config, root: Path) -> None:
        from clusterkit.runtimes.testcontainers import TestcontainersRuntime

        self.config = config
        self.root = root
        # The owner PID stays as a label for people; ownership itself is the lease.
        owner = os.getppid() if _is_xdist_worker(config) else os.getpid()
        self.runtime = TestcontainersRuntime(session=_session_id(config), owner_pid=owner)
        self.handles: dict[str, ClusterHandle] = {}
        self.swept = False

    def _sweep_once(self) -> None:
        """At the first cluster fixture, not at start-up: a session without one never calls the engine."""
        if not self.swept:
            self.swept = True
            found = sessions.sweep()
            if found:
                self.config._clusterkit_swept = found  # type: ignore[attr-defined]

    def say(self, event: Any) -> None:
        """Image builds on the terminal as they happen (a first build takes minutes: never silent)."""
        if getattr(event, "step", "") not in _SHOWN:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return  # an xdist worker: the controller's terminal is not ours
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"clusterkit: {event}")

    def image_for(self, backend: str) -> str | None:
        """The ini file's image for ``backend``; ``None``: the one built from the lock."""
        configured = self.config.getini(f"clusterkit_{backend}_image")
        return str(configured) if configured else None

    def shared_folders(self, named: tuple[str, ...] | None) -> tuple[str, ...]:
        """The spec's folders (default: the rootdir, read-only) plus pytest's temporary folders, read-write.

        The parent of the base temp folder (``/tmp/pytest-of-USER``): every
        ``tmp_path`` of this run, of its xdist processes and of later runs.
        """
        from clusterkit.mounts import default_folder

        if named is None:
            root = default_folder(self.config.rootpath)
            named = (f"{root}:ro",) if root else ()
        temp = default_folder(self.root.parent) or str(self.root)  # root: this run's, xdist or not
        return (*named, f"{temp}:rw")

    def get(self, backend: str, workers: int | None, overrides: dict[str, Any]) -> ClusterHandle:
        from filelock import FileLock

        from clusterkit import Cluster
        from clusterkit.spec import resolve_spec

        fixture = json.dumps([backend, workers, sorted(overrides.items())], default=str)  # a kept one's slot
        workers = (
            workers
            or self.config.getoption("clusterkit_workers")
            or int(self.config.getini("clusterkit_workers"))
        )
        overrides["image"] = overrides.get("image") or self.image_for(backend)
        key = hashlib.sha256(json.dumps([backend, workers, sorted(overrides.items())], default=str).encode())
        digest = key.hexdigest()[:8]
        if digest in self.handles:
            return self.handles[digest]
        name = f"pytest-{backend}-{self.runtime.session}-{digest}"[:41].rstrip("-_")
        spec = resolve_spec(
            spec_file(self.config),
            overrides={"backend": backend, "name": name, "workers": workers, **overrides},
            environ={},
        )
        spec = spec.replace(mounts=self.shared_folders(spec.mounts))
        self._sweep_once()
        sessions.mark_used(self.root)
        state_path = self.root / f"clusterkit-{digest}.json"
        with FileLock(str(self.root / f"clusterkit-{digest}.lock")):
            if state_path.exists():
                state = json.loads(state_path.read_text())
                state["users"] += 1
                cluster = Cluster.from_name(state["name"], runtime=self.runtime)
                self.runtime.hold(state["name"])  # it stays leased if the process that started it is killed
            else:
                cluster, state = self._start(spec, fixture)
            state_path.write_text(json.dumps(state))
        handle = ClusterHandle(cluster, self.root)
        self.handles[digest] = handle
        return handle

    def _start(self, spec: Any, fixture: str) -> tuple[Any, dict[str, Any]]:
        """A new cluster for this session, or a kept one (``--clusterkit-reuse``), and its state."""
        from clusterkit import Cluster
        from clusterkit.testing import reuse

        refused = reuse.refusal(self.config)
        if refused:
            sessions.note(self.root, f"--clusterkit-reuse is off: {refused}; this run's clusters are its own")
        elif refused is not None:  # asked, and allowed here
            reuse.idle_seconds(self.config)  # a bad value fails before anything starts
            slot_id = reuse.slot(str(self.config.rootpath), spec.backend, fixture)
            restart = bool(self.config.getini("clusterkit_reuse_restart"))
            got = reuse.acquire(self.runtime, spec, slot_id, restart=restart, progress=self.say)
            if got is not None:
                for line in got[1]:
                    sessions.note(self.root, line)
                return got[0], {"name": got[0].spec.name, "users": 1, "kept": True}
            sessions.note(
                self.root,
                f"the kept {spec.backend} cluster is in use by another session; this run started its own",
            )
        cluster = Cluster(spec=spec, runtime=self.runtime, timeout=180, progress=self.say)
        cluster.owned = False  # the state file's count decides; the last one out removes it
        return cluster, {"name": spec.name, "users": 1}

    def release_all(self) -> None:
        from filelock import FileLock

        keep = self.config.getoption("clusterkit_keep")
        for digest, handle in list(self.handles.items()):
            handle.close_client()
            handle.cluster.close()
            state_path = self.root / f"clusterkit-{digest}.json"
            with FileLock(str(self.root / f"clusterkit-{digest}.lock")):
                state = json.loads(state_path.read_text()) if state_path.exists() else {"users": 1}
                state["users"] -= 1
                if state["users"] > 0:
                    state_path.write_text(json.dumps(state))
                    self.runtime.release(handle.spec.name)  # the others renew its lease
                else:
                    state_path.unlink(missing_ok=True)
                    if state.get("kept"):  # parked for the next run (--clusterkit-reuse)
                        from clusterkit.runtimes.kept import park
                        from clusterkit.testing.reuse import idle_seconds

                        self.runtime.release(handle.spec.name)
                        park(self.runtime.docker, handle.spec.name, idle_seconds(self.config))
                    elif keep:
                        self.runtime.keep(handle.spec.name)
                        print(f"\nclusterkit: kept {handle.spec.name} at {handle.scheduler_address}")
                    else:
                        self.runtime.down(handle.spec.name)
            del self.handles[digest]


@pytest.fixture(scope="session")
def _clusterkit_clusters(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_Clusters]:
    base = tmp_path_factory.getbasetemp()
    root = base.parent if _is_xdist_worker(request.config) else base
    clusters = _Clusters(request.config, root)
    try:
        yield clusters
    finally:
        clusters.release_all()


@pytest.fixture(scope="session")
def clusterkit_cluster(_clusterkit_clusters: _Clusters) -> Callable[..., ClusterHandle]:
    """Factory: ``clusterkit_cluster("spark", workers=3, cores=2)`` -> a started cluster.

    Clusters with the same arguments are shared for the whole session.
    """

    def make(backend: str = DEFAULT_BACKEND, workers: int | None = None, **spec: Any) -> ClusterHandle:
        from clusterkit.extras import missing_extra

        missing = missing_extra(backend)
        if missing:  # the client side of the backend is not installed here
            _unavailable(f"the {backend} fixtures need the backend's client: pip install '{missing}'")
        try:
            return _clusterkit_clusters.get(backend, workers, dict(spec))
        except (EngineUnavailable, ImageError) as e:
            _unavailable(str(e))
            raise  # not reached: skip/fail raise

    return make


@pytest.fixture(scope="session")
def dask_cluster(clusterkit_cluster: Callable[..., ClusterHandle]) -> ClusterHandle:
    """A Dask scheduler and workers in containers; ``dask_cluster.client`` is ready."""
    return clusterkit_cluster("dask")


@pytest.fixture(scope="session")
def spark_cluster(clusterkit_cluster: Callable[..., ClusterHandle]) -> ClusterHandle:
    """A Spark master and workers in containers; ``spark_cluster.session`` is ready."""
    return clusterkit_cluster("spark")


@pytest.fixture(scope="session")
def spark_connect_session(spark_cluster: ClusterHandle) -> Any:
    """A Spark Connect session on ``spark_cluster``: its driver runs in the cluster, so this
    process starts no JVM. pyspark runs one kind of session per process: a run uses this
    or ``spark_session``, not both (the second is a one-line error)."""
    return spark_cluster.connect_session


class SparkSessionFixture:
    """``spark_session``, registered by :func:`pytest_configure` unless pytest-spark is active:
    that plugin defines a fixture of the same name (a local session), and which of two
    plugins' fixtures pytest picks would depend on their load order."""

    @pytest.fixture(scope="session")
    @staticmethod
    def spark_session(spark_cluster: ClusterHandle) -> Any:
        """The ``SparkSession`` on ``spark_cluster`` (its driver in this process; UTC, 2
        shuffle partitions per core, a share of the cores under pytest-xdist)."""
        return spark_cluster.session


#: pytest-spark's plugin name (its ``pytest11`` entry point).
PYTEST_SPARK = "spark"


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.pluginmanager.hasplugin(PYTEST_SPARK):
        return ["clusterkit: `spark_session` is pytest-spark's; the cluster's is `spark_cluster.session`"]
    return []
