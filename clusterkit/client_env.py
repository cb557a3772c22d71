"""The contract between the host and a client container (``clusterkit run``, ``shell``, the notebook).

A runtime says where a client of a cluster runs (:class:`ClientPlace`: the
cluster's own image, its network, the scheduler's name on that network);
the backend's ``client_environment`` (:mod:`clusterkit.backends`, on top of
:func:`common_environment`) turns that into the variables the container gets;
and :func:`target` reads them back inside, so ``clusterkit.dask.connect_to_scheduler()``
and ``clusterkit.spark.connect_to_scheduler()`` need no argument there.
Plain ``distributed.Client()`` works too: it reads ``DASK_SCHEDULER_ADDRESS``
and the ``DASK_DISTRIBUTED__COMM__TLS__*`` files through dask's config.

Standard library only: the no-argument connect imports this in every client.

    >>> from clusterkit.facts import DEFAULT_BACKEND
    >>> env = {"CLUSTERKIT_CLUSTER": "x", FACTS[DEFAULT_BACKEND].address_env: "tcp://scheduler:8786"}
    >>> here = target(env)
    >>> here.backend == DEFAULT_BACKEND, here.address, here.secured
    (True, 'tcp://scheduler:8786', False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from clusterkit.facts import DASK, FACTS, SPARK

#: The cluster a client container belongs to (set only inside one).
CLUSTER = "CLUSTERKIT_CLUSTER"
#: Dask: the scheduler as seen from the cluster network (distributed reads it too).
DASK_ADDRESS = DASK.address_env
#: Spark: the master as seen from the cluster network.
SPARK_MASTER = SPARK.address_env
#: The dashboard (Dask) or master web UI (Spark) as seen from the cluster network.
DASHBOARD_URL = "CLUSTERKIT_DASHBOARD_URL"
#: Spark with ``security: tls``: the file holding the authentication secret.
SPARK_SECRET_FILE = "CLUSTERKIT_SPARK_SECRET_FILE"  # noqa: S105 - a variable name
#: Where a client container finds the cluster's client credentials (read-only files).
CREDENTIALS_DIR = "/run/clusterkit/credentials"
#: Where the current folder is mounted, and the working directory.
WORKDIR = "/work"
#: The image's own user (``useradd --uid 1000`` in images/Dockerfile.*).
IMAGE_UID = IMAGE_GID = 1000


@dataclass(frozen=True)
class ClientPlace:
    """Where a client container of one cluster runs, as a runtime describes it.

    Attributes:
        cluster: the cluster's name.
        backend: the backend's name (:data:`clusterkit.facts.BACKENDS`).
        image: the image the cluster's nodes run (an ID, so a rebuilt tag does not matter).
        network: the network the nodes share; the client joins it.
        scheduler_host: the scheduler's name on that network.
        scheduler_port: the scheduler's port on that network.
        dashboard_port: the dashboard's (web UI's) port on that network.
        labels: the labels every client container carries (the cluster's, without role).
        dashboard_link: the dashboard as this machine's browser reaches it (published), if it is.
        secured: the cluster runs with ``security: tls`` (see :mod:`clusterkit.security`).
        env: the spec's ``env``, which clients get as the nodes do.
        mounts: the host folders the nodes see at the same path (``PATH:ro|rw``); clients too.
    """

    cluster: str
    backend: str
    image: str
    network: str
    scheduler_host: str
    scheduler_port: int
    dashboard_port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    dashboard_link: str | None = None
    secured: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[str, ...] = ()


def common_environment(place: ClientPlace) -> dict[str, str]:
    """The variables every client container of ``place`` gets, whatever its backend: the
    spec's ``env`` first, then the cluster's name and its web UI on the cluster network.

    The backend adds how to reach its scheduler: ``get_backend(place.backend).client_environment(place)``
    (:mod:`clusterkit.backends`) is the whole environment.

    >>> from clusterkit.facts import DEFAULT_BACKEND
    >>> place = ClientPlace("x", DEFAULT_BACKEND, "sha256:1", "net", "scheduler", 1, 2, env={"A": "1"})
    >>> common_environment(place)
    {'A': '1', 'CLUSTERKIT_CLUSTER': 'x', 'CLUSTERKIT_DASHBOARD_URL': 'http://scheduler:2'}
    """
    env = dict(place.env)
    env[CLUSTER] = place.cluster
    env[DASHBOARD_URL] = f"http://{place.scheduler_host}:{place.dashboard_port}"
    return env


@dataclass(frozen=True)
class ClientTarget:
    """The cluster a process inside a client container talks to, read from its environment."""

    cluster: str
    backend: str
    address: str
    dashboard_url: str | None = None
    secured: bool = False
    spark_secret_file: str | None = None

    @property
    def dashboard_port(self) -> int | None:
        if not self.dashboard_url:
            return None
        return int(self.dashboard_url.rstrip("/").rsplit(":", 1)[1])

    def spark_secret(self) -> str | None:
        """The authentication secret, read from ``spark_secret_file`` (``None`` without one)."""
        if not self.spark_secret_file:
            return None
        with open(self.spark_secret_file) as f:
            return f.read().strip()


def target(environ: Mapping[str, str] | None = None) -> ClientTarget | None:
    """The cluster this client container belongs to, or ``None`` outside one.

    The backend is the one whose ``address_env`` (:mod:`clusterkit.facts`) is set.
    """
    environ = os.environ if environ is None else environ
    cluster = environ.get(CLUSTER)
    if not cluster:
        return None
    dashboard = environ.get(DASHBOARD_URL) or None
    for facts in FACTS.values():
        address = environ.get(facts.address_env)
        if address:
            secret = environ.get(SPARK_SECRET_FILE) or None
            secured = address.startswith("tls://") or bool(secret)
            return ClientTarget(cluster, facts.name, address, dashboard, secured, spark_secret_file=secret)
    return None
