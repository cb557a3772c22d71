"""``clusterkit logs``: the nodes' logs, on the terminal or into a folder."""

from __future__ import annotations

import json
from typing import Any

import click

from clusterkit import cluster
from clusterkit.cli.options import name_option, runtime_option
from clusterkit.errors import InvalidValue


def _tail(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--tail``: a number of lines or ``all``; unset: 100 on the terminal, all with ``--to``."""
    if value is None:
        return None if ctx.params.get("to") else 100
    if value == "all":
        return None
    if not value.isdigit():
        raise InvalidValue(f"tail: {value!r} is not valid; expected a number of lines (>= 0) or 'all'")
    return int(value)


@click.command()
@click.argument("service", required=False)
@name_option()
@runtime_option()
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing what the nodes write (an added worker too) until Ctrl-C or the cluster is gone.",
)
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False),
    is_eager=True,
    help="Write one file per node into this folder (DIR/scheduler.log, DIR/worker-1.log, a Spark "
    "worker's executor stdout/stderr) instead of printing; prints the files written.",
)
@click.option(
    "--tail",
    callback=_tail,
    metavar="N|all",
    help="Lines from the end of each node's log (default: 100 on the terminal, all with --to).",
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only lines written since WHEN: a duration back from now (30s, 10m, 1h30m) or a timestamp "
    "(2026-01-02T15:04:05Z; without a zone, this machine's).",
)
@click.option(
    "-t", "--timestamps", is_flag=True, help="Start each line with the time it was written (RFC 3339)."
)
@click.option("--json", "as_json", is_flag=True, help="With --to: list the files written as JSON.")
def logs(service: str | None, name: str | None, runtime: str | None, **options: Any) -> None:
    """Show the logs of a cluster's nodes (or one SERVICE: scheduler, worker).

    Each line starts with the name of the node that wrote it (scheduler, worker-1, ...).
    """
    to, as_json = options.pop("to"), options.pop("as_json")
    if to and options["follow"]:
        raise InvalidValue("--to writes the logs as they are now; it cannot --follow")
    if as_json and not to:
        raise InvalidValue("--json lists the files --to writes; add --to DIR")
    written = cluster.logs(name, service, runtime, to=to, **options)
    if as_json:
        click.echo(json.dumps({"files": written}, indent=2))
    elif to:
        for path in written:
            click.echo(path)
        click.echo(f"clusterkit: wrote {len(written)} log files to {to}", err=True)
