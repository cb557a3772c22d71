"""``clusterkit run`` and ``clusterkit shell``: the client in the cluster's own image and network.

Thin, like the rest of the CLI: the front door (:func:`clusterkit.cluster.client_place`)
says where the cluster's clients run, :mod:`clusterkit.jobs` does the work. The
exit code is the command's; Ctrl-C stops and removes the container, then
exits 130 (the main group prints ``interrupted``). The main group adds these
commands; this module never imports it.
"""

from __future__ import annotations

import sys

import click

from clusterkit import cluster
from clusterkit.cli.options import env_pairs, name_option, runtime_option
from clusterkit.cli.output import progress


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a command in the cluster's image, on its network.",
)
@name_option()
@runtime_option()
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False),
    help="A folder the command may write (created if missing; the current folder stays read-only).",
)
@click.option("--env", "env", multiple=True, help="NAME=value for the command (repeatable).")
@click.option("-i", "--interactive", is_flag=True, help="Pass stdin (and the terminal, if this is one).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    name: str | None,
    runtime: str | None,
    output: str | None,
    env: tuple[str, ...],
    interactive: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in a container of the cluster's own image, on its network.

    \b
        clusterkit run --name dask -- python job.py --rows 1000
        clusterkit run --name spark -o results -- python etl.py

    The current folder is the working directory (/work, read-only); the
    scheduler is in DASK_SCHEDULER_ADDRESS / SPARK_MASTER, so
    clusterkit.dask.connect_to_scheduler() and clusterkit.spark.connect_to_scheduler()
    need no argument. Output streams live; the exit code is the command's.
    """
    from clusterkit import jobs

    variables = env_pairs(env)  # bad input fails before any lookup
    place = cluster.client_place(name, runtime)
    sys.exit(
        jobs.run(place, command, output=output, env=variables, interactive=interactive, progress=progress)
    )


@click.command(short_help="An interactive Python with a ready client, in the cluster's image.")
@name_option()
@runtime_option()
def shell(name: str | None, runtime: str | None) -> None:
    """An interactive Python (IPython) on the cluster's network with a ready `client` (Dask)
    or `spark` and `sc` (Spark). Piped input runs as a script:

    \b
        echo 'print(client.submit(sum, [1, 2]).result())' | clusterkit shell --name dask
    """
    from clusterkit import jobs

    sys.exit(jobs.shell(cluster.client_place(name, runtime), progress=progress))
