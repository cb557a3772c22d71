"""pytest plugin: a real Dask or Spark cluster in containers, shared per session.

Installed with clusterkit (``pytest11`` entry point), nothing to copy::

    def test_sum(dask_cluster):
        client = dask_cluster.client
        assert client.submit(sum, [1, 2, 3]).result() == 6

Fixtures: ``dask_cluster`` and ``spark_cluster`` (session scope) and the
factory ``clusterkit_cluster(backend, workers=..., **spec)``. Options:
``--clusterkit-workers N``, ``--clusterkit-keep``; ini: ``clusterkit_dask_image``,
``clusterkit_spark_image``, ``clusterkit_workers``.

Clean-up does not depend on Ryuk (its image cannot be pulled everywhere):
finalizers remove everything at the end of the session, pass or fail; each
resource carries the session id and the owner's PID, and a new session removes
what sessions whose process died (SIGKILL) left behind. Under pytest-xdist the
processes share one cluster through a file lock and a state file; the last
one out removes it. Without Docker or the image, the fixtures skip with the
reason, or fail when ``CLUSTERKIT_REQUIRE_DOCKER=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterkit.errors import ClusterKitError, EngineUnavailable, ImageError
from clusterkit.facts import DEFAULT_BACKEND


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clusterkit", "real Dask/Spark clusters in containers")
    group.addoption("--clusterkit-workers", type=int, default=None, help="workers per cluster (default 2)")
    group.addoption(
        "--clusterkit-keep", action="store_true", help="leave the session's clusters up (for debugging)"
    )
    parser.addini("clusterkit_dask_image", "node image for dask_cluster (default: built from the lock)")
    parser.addini("clusterkit_spark_image", "node image for spark_cluster (default: built from the lock)")
    parser.addini("clusterkit_workers", "workers per cluster", default="2")


def _required() -> bool:
    return os.environ.get("CLUSTERKIT_REQUIRE_DOCKER") == "1"


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} (CLUSTERKIT_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remove what earlier sessions that died (SIGKILL, OOM) left behind."""
    if _is_xdist_worker(session.config):
        return  # the controller sweeps once
    try:
        from clusterkit import cluster

        swept = cluster.gc()
    except (ClusterKitError, ImportError):
        return
    if swept:
        session.config._clusterkit_swept = swept  # type: ignore[attr-defined]


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


def pytest_report_header(config: pytest.Config) -> str | None:
    swept = getattr(config, "_clusterkit_swept", None)
    if swept:
        return f"clusterkit: removed {len(swept)} resource(s) left by dead test sessions"
    return None


def _module_archive(module: Any, scratch: Path) -> str:
    """A zip of the code a test module imports from its own tree.

    A top-level ``test_x.py`` may import its neighbours (``from helpers
    import ...``), so the zip holds every ``.py`` file of its folder; a module
    inside a package brings its whole top-level package.
    """
    import zipfile

    path = Path(module.__file__)
    parts = module.__name__.split(".")
    if len(parts) == 1:
        folder, files = path.parent, sorted(path.parent.glob("*.py"))
        arcname = lambda source: source.name  # noqa: E731
    else:
        depth = len(parts) - 1 if path.name == "__init__.py" else len(parts) - 2
        top = path.parents[depth]  # the folder of the top-level package
        folder, files = top, sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)
        arcname = lambda source: source.relative_to(top.parent).as_posix()  # noqa: E731
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    archive = scratch / f"clusterkit-ship-{os.getpid()}-{digest}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for source in files:
            zf.write(source, arcname(source))
    return str(archive)


class ClusterHandle:
    """What a test gets: addresses, a ready client, ``status()`` and ``scale(n)``.

    ``cluster`` is the :class:`clusterkit.Cluster` underneath (a distributed
    cluster for Dask); the session's reference count, not this object, decides
    when it is removed.
    """

    def __init__(self, cluster: Any, scratch: Path) -> None:
        from clusterkit.backends import get_backend

        self.cluster = cluster
        self._backend = get_backend(cluster.spec.backend)
        self._client: Any = None
        self._scratch = scratch
        self._shipped: set[str] = set()

    @property
    def spec(self) -> Any:
        return self.cluster.spec

    @property
    def backend(self) -> str:
        return self.cluster.spec.backend

    @property
    def scheduler_address(self) -> str:
        """``127.0.0.1:<port>``, reachable from the test process."""
        return self.cluster.client_spec.scheduler_address

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.cluster.client_spec.dashboard_port}"

    @property
    def client(self) -> Any:
        """A ``distributed.Client`` (Dask) or ``SparkSession`` (Spark), made once."""
        if self._client is None:
            self._client = self._backend.connect(self.cluster.client_spec, 60)
        return self._client

    @property
    def session(self) -> Any:
        """The ``SparkSession`` (alias of ``client`` for Spark clusters)."""
        return self.client

    def status(self) -> Any:
        return self.cluster.report()

    def ship(self, module: Any) -> None:
        """Send ``module``'s code to every worker (once), so tasks can import it."""
        name = getattr(module, "__name__", "")
        if not getattr(module, "__file__", None) or name in self._shipped:
            return
        self._backend.ship(self.client, _module_archive(module, self._scratch))
        self._shipped.add(name)

    def scale(self, workers: int, timeout: float = 180) -> Any:
        return self.cluster.scale(workers, timeout=timeout)

    def close_client(self) -> None:
        if self._client is not None:
            self._backend.close(self._client)
            self._client = None


class _Clusters:
    """The session's clusters, shared across xdist workers through a state file."""

    def __init__(self, config: pytest.Config, root: Path) -> None:
        from clusterkit.labels import new_session_id
        from clusterkit.runtimes.testcontainers import TestcontainersRuntime

        self.config = config
        self.root = root
        if _is_xdist_worker(config):
            session = f"{config.workerinput['testrunuid'][:12]}"  # type: ignore[attr-defined]
            owner = os.getppid()  # the xdist controller outlives every worker
        else:
            session, owner = new_session_id(), os.getpid()
        self.runtime = TestcontainersRuntime(session=session, owner_pid=owner)
        self.handles: dict[str, ClusterHandle] = {}

    def image_for(self, backend: str) -> str | None:
        """The ini file's image for ``backend``; ``None``: the one built from the lock."""
        configured = self.config.getini(f"clusterkit_{backend}_image")
        return str(configured) if configured else None

    def get(self, backend: str, workers: int | None, overrides: dict[str, Any]) -> ClusterHandle:
        from filelock import FileLock

        from clusterkit import Cluster
        from clusterkit.spec import resolve_spec

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
            overrides={"backend": backend, "name": name, "workers": workers, **overrides}, environ={}
        )
        state_path = self.root / f"clusterkit-{digest}.json"
        with FileLock(str(self.root / f"clusterkit-{digest}.lock")):
            if state_path.exists():
                state = json.loads(state_path.read_text())
                state["users"] += 1
                cluster = Cluster.from_name(name, runtime=self.runtime)
            else:
                cluster = Cluster(spec=spec, runtime=self.runtime, timeout=180)
                cluster.owned = False  # the state file's count decides; the last one out removes it
                state = {"name": name, "users": 1}
            state_path.write_text(json.dumps(state))
        handle = ClusterHandle(cluster, self.root)
        self.handles[digest] = handle
        return handle

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
                else:
                    state_path.unlink(missing_ok=True)
                    if keep:
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
