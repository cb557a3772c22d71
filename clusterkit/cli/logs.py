"""``clusterkit logs``: the nodes' logs, on the terminal or into a folder."""

from __future__ import annotations

import click

from clusterkit import cluster
from clusterkit.cli.options import name_option, runtime_option


@click.command()
@click.argument("service", required=False)
@name_option()
@runtime_option()
@click.option("-f", "--follow", is_flag=True)
@click.option("--tail", default=100, show_default=True)
def logs(service: str | None, name: str | None, runtime: str | None, follow: bool, tail: int) -> None:
    """Show the logs of a cluster's nodes (or one SERVICE: scheduler, worker)."""
    cluster.logs(name, service, runtime, follow=follow, tail=tail)
