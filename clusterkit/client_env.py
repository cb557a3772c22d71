"""The contract between the host and a client container (``clusterkit run``, ``shell``, the notebook).

A runtime says where a client of a cluster runs (:class:`ClientPlace`: the
cluster's own image, its network, the scheduler's name on that network);
:func:`environment` turns that into the variables the container gets; and
:func:`target` reads them back inside, so ``clusterkit.dask.connect_to_scheduler()``
and ``clusterkit.spark.connect_to_scheduler()`` need no argument there.
Plain ``distributed.Client()`` works too: it reads ``DASK_SCHEDULER_ADDRESS``
and the ``DASK_DISTRIBUTED__COMM__TLS__*`` files through dask's config.

Standard library only: the no-argument connect imports this in every client.

    >>> env = {"CLUSTERKIT_CLUSTER": "x", "DASK_SCHEDULER_ADDRESS": "tcp://scheduler:8786"}
    >>> target(env)
    ClientTarget(cluster='x', backend='dask', address='tcp://scheduler:8786', dashboard_url=None, secured=False, spark_secret_file=None)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The cluster a client container belongs to (set only inside one).
CLUSTER = "CLUSTERKIT_CLUSTER"
#: Dask: the scheduler as seen from the cluster network (distributed reads it too).
DASK_ADDRESS = "DASK_SCHEDULER_ADDRESS"
#: Spark: the master as seen from the cluster network.
SPARK_MASTER = "SPARK_MASTER"
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
        backend: ``dask`` or ``spark``.
        image: the image the cluster's nodes run (an ID, so a rebuilt tag does not matter).
        network: the network the nodes share; the client joins it.
        scheduler_host: the scheduler's name on that network.
        scheduler_port: the scheduler's port on that network.
        dashboard_port: the dashboard's (web UI's) port on that network.
        labels: the labels every client container carries (the cluster's, without role).
        dashboard_link: the dashboard as this machine's browser reaches it (published), if it is.
        secured: the cluster runs with ``security: tls`` (see :mod:`clusterkit.security`).
        env: the spec's ``env``, which clients get as the nodes do.
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


def credential_files(backend: str) -> tuple[str, ...]:
    """File names (in ``security.client_dir``) a client of ``backend`` needs with ``security: tls``."""
    from clusterkit import security

    if backend == "dask":
        return (security.CA, security.CLIENT_CERT, security.CLIENT_KEY)
    return (security.SPARK_SECRET,)


def environment(place: ClientPlace) -> dict[str, str]:
    """The variables a client container of ``place`` gets (the spec's ``env`` first).

    >>> place = ClientPlace("x", "dask", "sha256:1", "net", "scheduler", 8786, 8787,
    ...                     dashboard_link="http://127.0.0.1:9000/status")
    >>> environment(place)["DASK_SCHEDULER_ADDRESS"]
    'tcp://scheduler:8786'
    """
    env = dict(place.env)
    env[CLUSTER] = place.cluster
    env[DASHBOARD_URL] = f"http://{place.scheduler_host}:{place.dashboard_port}"
    if place.backend == "dask":
        scheme = "tls" if place.secured else "tcp"
        env[DASK_ADDRESS] = f"{scheme}://{place.scheduler_host}:{place.scheduler_port}"
        # Every client sends the working folder's modules to the nodes (clusterkit.workdir).
        env["DASK_DISTRIBUTED__CLIENT__PRELOAD"] = '["clusterkit.workdir"]'
        env["DASK_LOGGING"] = '{"distributed.preloading": "warning"}'  # no "Creating preload" line
        if place.dashboard_link:
            # What `client.dashboard_link` shows: a link the browser on this machine can open.
            env["DASK_DISTRIBUTED__DASHBOARD__LINK"] = place.dashboard_link
        if place.secured:
            from clusterkit import security

            tls = "DASK_DISTRIBUTED__COMM__TLS__"
            env[tls + "CA_FILE"] = f"{CREDENTIALS_DIR}/{security.CA}"
            env[tls + "CLIENT__CERT"] = f"{CREDENTIALS_DIR}/{security.CLIENT_CERT}"
            env[tls + "CLIENT__KEY"] = f"{CREDENTIALS_DIR}/{security.CLIENT_KEY}"
            env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] = "True"
    else:
        env[SPARK_MASTER] = f"spark://{place.scheduler_host}:{place.scheduler_port}"
        if place.secured:
            from clusterkit import security

            env[SPARK_SECRET_FILE] = f"{CREDENTIALS_DIR}/{security.SPARK_SECRET}"
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

    def dask_security(self) -> Any:
        """A ``distributed.Security`` from the TLS files dask's config names (``None`` without TLS)."""
        if not self.secured:
            return None
        from distributed import Security

        return Security(require_encryption=True)  # the file names come from DASK_DISTRIBUTED__COMM__TLS__*

    def spark_secret(self) -> str | None:
        if not self.spark_secret_file:
            return None
        with open(self.spark_secret_file) as f:
            return f.read().strip()


def target(environ: Mapping[str, str] | None = None) -> ClientTarget | None:
    """The cluster this client container belongs to, or ``None`` outside one."""
    environ = os.environ if environ is None else environ
    cluster = environ.get(CLUSTER)
    if not cluster:
        return None
    dashboard = environ.get(DASHBOARD_URL) or None
    if environ.get(DASK_ADDRESS):
        address = environ[DASK_ADDRESS]
        return ClientTarget(cluster, "dask", address, dashboard, secured=address.startswith("tls://"))
    if environ.get(SPARK_MASTER):
        secret = environ.get(SPARK_SECRET_FILE) or None
        return ClientTarget(
            cluster, "spark", environ[SPARK_MASTER], dashboard, secured=bool(secret), spark_secret_file=secret
        )
    return None
