"""The options and helpers several ``clusterkit`` commands share.

The main group (:mod:`clusterkit.cli`) and the subcommand modules
(:mod:`clusterkit.cli.client`, ...) import them from here; a subcommand
module never imports the group: the group adds its commands.
"""

from __future__ import annotations

from typing import Any

import click

from clusterkit.errors import InvalidValue
from clusterkit.facts import BACKENDS
from clusterkit.spec import ClusterSpec, resolve_spec


def env_pairs(values: tuple[str, ...]) -> dict[str, str] | None:
    """``NAME=value`` items as a mapping (``None`` for none).

    >>> env_pairs(("A=1", "B=x=y"))
    {'A': '1', 'B': 'x=y'}
    """
    if not values:
        return None
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidValue(f"env: {item!r} is not valid; expected NAME=value")
        pairs[key] = value
    return pairs


def runtime_option(text: str = "Which runtime holds the cluster (default: search them all).") -> Any:
    from clusterkit.runtimes import RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES), help=text)


def name_option() -> Any:
    return click.option("--name", help="Cluster name (default: the only running cluster).")


def spec_options(func: Any) -> Any:
    """The flags that override ``clusterkit.yaml``; values are validated by the spec."""
    options = [
        click.option(
            "-f",
            "--file",
            "spec_file",
            type=click.Path(dir_okay=False),
            help="Spec file (default: ./clusterkit.yaml if present).",
        ),
        click.option("--name", help="Cluster name (default: the backend's name)."),
        click.option("--backend", help=f"{' or '.join(BACKENDS)}."),
        click.option("--workers", help="Number of workers (>= 1)."),
        click.option("--cores", help="Cores (threads) per worker."),
        click.option("--memory", help="Memory per worker, e.g. 1g or 512m."),
        click.option("--scheduler-port", help="Scheduler / master port."),
        click.option("--dashboard-port", help="Dashboard / web UI port."),
        click.option("--bind", "bind_address", help="Address published ports bind to (default 127.0.0.1)."),
        click.option("--image", help="Node image (default: built from the lock)."),
        click.option("--env", "env", multiple=True, help="NAME=value for every node (repeatable)."),
        click.option(
            "--security",
            type=click.Choice(["none", "tls"]),
            help="tls: mutual TLS (Dask) or an auth secret (Spark); default tls on swarm, none elsewhere.",
        ),
        click.option("--encrypted", is_flag=True, default=None, help="Swarm: encrypt the overlay network."),
        click.option("--max-replicas-per-node", help="Swarm: at most this many workers on one node."),
        click.option(
            "--notebook/--no-notebook",
            default=None,
            help="JupyterLab beside the cluster, on 127.0.0.1 (`status` prints the link with its token).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def spec_from(spec_file: str | None, env: tuple[str, ...], **flags: Any) -> ClusterSpec:
    """The spec from the file, the ``CLUSTERKIT_*`` variables and the command's flags."""
    flags["env"] = env_pairs(env)
    return resolve_spec(spec_file, overrides=flags)
