"""``clusterkit run`` and ``clusterkit shell``: the client in the cluster's own image and network.

Thin, like the rest of the CLI: :mod:`clusterkit.jobs` does the work. The
exit code is the command's; Ctrl-C stops and removes the container, then
exits 130 (the main group prints ``interrupted``).
"""

from __future__ import annotations

import sys

import click

from clusterkit.cli import _env_pairs, _name_option, _runtime_option


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help="Run a command in the cluster's image, on its network.",
)
@_name_option()
@_runtime_option()
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

    code = jobs.run(
        name, command, runtime=runtime, output=output, env=_env_pairs(env), interactive=interactive
    )
    sys.exit(code)


@click.command(short_help="An interactive Python with a ready client, in the cluster's image.")
@_name_option()
@_runtime_option()
def shell(name: str | None, runtime: str | None) -> None:
    """An interactive Python (IPython) on the cluster's network with a ready `client` (Dask)
    or `spark` and `sc` (Spark). Piped input runs as a script:

    \b
        echo 'print(client.submit(sum, [1, 2]).result())' | clusterkit shell --name dask
    """
    from clusterkit import jobs

    sys.exit(jobs.shell(name, runtime=runtime))
