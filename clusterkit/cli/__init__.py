"""The ``clusterkit`` command: thin; it parses, calls ``clusterkit.cluster``, prints.

Errors print one line (``error: ...``) and exit 2 for bad input or 1 for a
runtime failure; ``--debug`` shows the traceback instead. ``status`` exits 0
only for a healthy cluster: 3 when it is degraded, 4 when it is down. A
command ended by a signal exits 128 + its number (130 for Ctrl-C, 143 for
SIGTERM) after removing what it started.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from clusterkit import cluster
from clusterkit.cli.client import run, shell
from clusterkit.cli.image import image
from clusterkit.cli.logs import logs
from clusterkit.cli.options import name_option, runtime_option, spec_from, spec_options
from clusterkit.cli.output import console as _console
from clusterkit.cli.output import progress as _progress
from clusterkit.errors import ClusterKitError
from clusterkit.interrupts import Interrupted
from clusterkit.version import __version__


class _Group(click.Group):
    """Turns ``ClusterKitError`` (and a bad option) into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClusterKitError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(e.exit_code)
        except click.UsageError as e:  # an unknown option, a missing argument: one line, exit 2
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = e.ctx.command_path if e.ctx else "clusterkit"
            click.secho(f"error: {e.format_message()} (see `{where} --help`)", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt as e:
            click.echo(str(e) if isinstance(e, Interrupted) else "interrupted", err=True)
            sys.exit(e.exit_code if isinstance(e, Interrupted) else 130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="clusterkit")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """A real Dask or Spark cluster from one spec and one pinned image."""
    ctx.obj = {"debug": debug}


@main.command()
@spec_options
@runtime_option("Where to run it (default: compose if an engine answers, else local).")
@click.option("--timeout", default="120", show_default=True, help="Seconds to wait for all workers.")
@click.option("--keep", is_flag=True, help="Keep what started if start-up fails (for debugging).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--supervise/--no-supervise",
    default=True,
    show_default=True,
    help="Leave a reconciler running that starts a node that dies again (stopped by `down`).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Stay in the foreground, repair and print what dies; Ctrl-C (or closing the terminal) "
    "takes the cluster down.",
)
def up(
    runtime: str | None,
    timeout: str,
    keep: bool,
    as_json: bool,
    supervise: bool,
    watch: bool,
    spec_file: str | None,
    env: tuple[str, ...],
    **flags: Any,
) -> None:
    """Start a cluster and wait until all workers are registered.

    SIGINT, SIGTERM and SIGHUP during start-up remove what was started; a
    SIGKILL leaves resources that `clusterkit gc` recognises and removes.
    """
    from clusterkit.interrupts import signals_raise

    spec = spec_from(spec_file, env, **flags)
    seconds = cluster.check_timeout(timeout)
    with signals_raise():
        status = cluster.up(spec, runtime, timeout=seconds, keep=keep, progress=_progress)
    if as_json:
        click.echo(status.to_json())
    else:
        status.render(_console())
    if watch:
        _watch(spec.name, status.runtime or "")
    elif supervise:
        from clusterkit import supervisor

        pid = supervisor.spawn_detached(status.runtime or "", spec.name)
        _progress(f"supervising: a node that dies is started again (pid {pid}; `clusterkit down` stops it)")


def _watch(name: str, runtime: str) -> None:
    """Repair in the foreground until a signal; then take the cluster down."""
    from clusterkit.interrupts import signals_raise
    from clusterkit.runtimes import get_runtime
    from clusterkit.supervisor import Supervisor

    rt = get_runtime(runtime)
    _progress(f"watching cluster {name!r}: Ctrl-C takes it down")
    with signals_raise():  # a second signal while the cluster goes down is ignored
        try:
            Supervisor(rt, name).run()
        except KeyboardInterrupt as e:
            _progress(f"{e or 'interrupted'}: taking cluster {name!r} down")
            if rt.exists(name):
                rt.down(name)
            click.echo(f"cluster {name!r} is down")


@main.command()
@name_option()
@runtime_option()
@click.option("--volumes", is_flag=True, help="Also remove the cluster's volumes.")
def down(name: str | None, runtime: str | None, volumes: bool) -> None:
    """Stop a cluster and remove everything it started."""
    removed = cluster.down(name, runtime, volumes=volumes)
    click.echo(f"cluster {removed!r} is down")


@main.command()
@name_option()
@runtime_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--repair/--no-repair",
    default=True,
    show_default=True,
    help="Start ended nodes again after reporting them.",
)
def status(name: str | None, runtime: str | None, as_json: bool, repair: bool) -> None:
    """Compare the cluster with its spec: healthy (exit 0), degraded (exit 3) or down (exit 4).

    Shows the wanted and registered workers, every node (running, restarting,
    exited or missing, with exit code and restart count) and the problems.
    """
    found = cluster.status(name, runtime, repair=repair)
    if as_json:
        click.echo(found.to_json())
    else:
        found.render(_console())
    if found.exit_code:
        sys.exit(found.exit_code)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("workers")
@name_option()
@runtime_option()
@click.option("--timeout", default="120", show_default=True)
def scale(workers: str, name: str | None, runtime: str | None, timeout: str) -> None:
    """Change the number of workers and wait until the scheduler sees exactly that many."""
    seconds = cluster.check_timeout(timeout)
    found = cluster.scale(name, workers, runtime, timeout=seconds)  # type: ignore[arg-type]
    found.render(_console())


@main.command()
@spec_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["compose", "stack", "spec"]),
    default="compose",
    show_default=True,
    help="compose: the compose file; stack: the swarm stack file; spec: the resolved spec.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
def render(fmt: str, output: str | None, spec_file: str | None, env: tuple[str, ...], **flags: Any) -> None:
    """Render the spec (file, CLUSTERKIT_* variables and flags merged) for a runtime."""
    text = cluster.render(spec_from(spec_file, env, **flags), fmt)
    if output:
        with open(output, "w") as f:
            f.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@name_option()
@runtime_option()
@click.option(
    "--tolerance",
    type=click.Choice(["strict", "default", "lenient"]),
    default=None,
    help="strict: warnings are errors; lenient: show errors only (env CLUSTERKIT_DRIFT_TOLERANCE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option(
    "--in-cluster",
    is_flag=True,
    help="Compare from a client in the cluster's image and network (as `run`, `shell` and the notebook).",
)
def doctor(
    name: str | None, runtime: str | None, tolerance: str | None, as_json: bool, in_cluster: bool
) -> None:
    """Compare Python and package versions of this client, the scheduler and every worker."""
    import dataclasses
    import json

    from clusterkit import drift

    if in_cluster:
        from clusterkit import jobs

        argv = [
            "clusterkit",
            "doctor",
            *(["--tolerance", tolerance] if tolerance else []),
            *(["--json"] * as_json),
        ]
        sys.exit(jobs.run(cluster.client_place(name, runtime), argv))
    differences, versions = cluster.drift(name, runtime, tolerance=tolerance)
    if as_json:
        click.echo(
            json.dumps(
                {"differences": [dataclasses.asdict(d) for d in differences], "versions": versions}, indent=2
            )
        )
    else:
        click.echo(f"compared {len(versions)} nodes: {', '.join(sorted(versions))}")
        drift.render(differences, _console())
    drift.raise_on_errors(differences)


@main.command()
@click.option("--all", "everything", is_flag=True, help="Also what belongs to live test sessions.")
def gc(everything: bool) -> None:
    """Remove containers and networks left by crashed test sessions (found by label)."""
    removed = cluster.gc(everything)
    click.echo(
        f"removed {len(removed)} leftover resource(s)" + (": " + ", ".join(removed) if removed else "")
    )


# --- what runs inside a node ------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def node(args: tuple[str, ...]) -> None:
    """Run a scheduler or worker in the foreground, as a container does (see --help)."""
    from clusterkit import node as nodes

    sys.exit(nodes.main(list(args)))


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def probe(args: tuple[str, ...]) -> None:
    """Health check in the backend's protocol: exit 0 if ready, 1 if not (see --help)."""
    from clusterkit import probe as probes

    sys.exit(probes.main(list(args)))


# The subcommand modules define their commands on their own (they never import this module).
main.add_command(image)
main.add_command(logs)
main.add_command(run)
main.add_command(shell)
