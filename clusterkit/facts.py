"""What each backend is, as plain data: the table every layer below ``backends/`` reads.

The spec's default ports, the image builder's need for a JRE, the probes'
paths and the drift check's packages differ per backend. Lower layers look
those up here by the spec's backend name instead of comparing names, and
``backends/<name>/`` (the code) states the same values by pointing at its row.
Standard library only: the container probes import it at every check.

    >>> SPARK.scheduler_port, SPARK.jre, FACTS[SPARK.name] is SPARK
    (7077, True, True)
    >>> facts_of("ray")
    Traceback (most recent call last):
    ...
    clusterkit.errors.UnknownBackend: backend: 'ray' is not known; expected one of dask, spark
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterkit.errors import UnknownBackend


@dataclass(frozen=True)
class Readiness:
    """How a probe asks one node whether it is ready, over HTTP on a known port.

    ``kind`` names the protocol the probe speaks (:mod:`clusterkit.probe`):
    ``text`` (the page says ``marker``) or ``alive-json`` (Spark's ``/json/``
    says ``ALIVE``; a worker checks that its master lists it ``ALIVE``).
    """

    kind: str
    path: str
    marker: str


@dataclass(frozen=True)
class BackendFacts:
    """One backend's data, read by layers that must not import the backend's code."""

    name: str
    #: The scheduler's URL scheme (``tcp://``, ``spark://``).
    scheme: str
    scheduler_port: int
    dashboard_port: int
    #: A worker's own web UI port (its probe reads it); ``None``: no worker UI.
    worker_ui_port: int | None
    #: What a browser opens on the dashboard port.
    dashboard_path: str
    #: The variable that names the scheduler to a client in a client container.
    address_env: str
    #: The node image needs a Java runtime.
    jre: bool
    #: Packages that must agree between client and nodes: they (de)serialize code and data.
    critical_packages: tuple[str, ...]
    #: Packages this backend's image does not have; never compared there.
    foreign_packages: tuple[str, ...]
    scheduler_ready: Readiness
    worker_ready: Readiness
    #: The scheduler's page that lists registered workers, and how to count them:
    #: a JSON field holding the count, or (``""``) the ``workers`` list's ``ALIVE`` entries.
    workers_path: str
    workers_field: str
    #: The port of a server beside the scheduler that clients reach instead of the scheduler
    #: (Spark Connect's gRPC, its own default 15002); ``None``: the backend has none.
    connect_port: int | None = None


DASK = BackendFacts(
    name="dask",
    scheme="tcp",
    scheduler_port=8786,
    dashboard_port=8787,
    worker_ui_port=8789,
    dashboard_path="/status",
    address_env="DASK_SCHEDULER_ADDRESS",
    jre=False,
    critical_packages=("dask", "distributed", "cloudpickle", "msgpack"),
    foreign_packages=("pyspark", "py4j", "java"),
    scheduler_ready=Readiness("text", "/health", "ok"),
    worker_ready=Readiness("text", "/health", "ok"),
    # counts only: identity.json fails (500) while tasks run
    workers_path="/json/counts.json",
    workers_field="workers",
)

SPARK = BackendFacts(
    name="spark",
    scheme="spark",
    scheduler_port=7077,
    dashboard_port=8080,
    worker_ui_port=8081,
    dashboard_path="",
    address_env="SPARK_MASTER",
    jre=True,
    critical_packages=("pyspark", "py4j", "cloudpickle"),
    foreign_packages=("dask", "distributed", "msgpack", "tornado"),
    scheduler_ready=Readiness("alive-json", "/json/", '"ALIVE"'),
    worker_ready=Readiness("alive-json", "/json/", '"ALIVE"'),
    workers_path="/json/",
    workers_field="",
    connect_port=15002,
)

#: Every backend by name; the first is the default.
FACTS: dict[str, BackendFacts] = {f.name: f for f in (DASK, SPARK)}
BACKENDS: tuple[str, ...] = tuple(FACTS)
DEFAULT_BACKEND = BACKENDS[0]


def facts_of(name: str) -> BackendFacts:
    """The row of backend ``name``; an unknown name raises ``UnknownBackend``."""
    try:
        return FACTS[name]
    except KeyError:
        raise UnknownBackend(
            f"backend: {name!r} is not known; expected one of {', '.join(BACKENDS)}"
        ) from None
