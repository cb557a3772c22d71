"""The ``clusterkit`` command: thin; it parses, calls ``clusterkit.cluster``, prints.

Errors print one line (``error: ...``) and exit 2 for bad input or 1 for a
runtime failure; ``--debug`` shows the traceback instead. ``status`` exits 0
only for a healthy cluster: 3 when it is degraded, 4 when it is down. A
command ended by a signal exits 128 + its number (130 for Ctrl-C, 143 for
SIGTERM) after removing what it started.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from clusterkit import cluster
from clusterkit.cli.client import run, shell
from clusterkit.cli.image import image
from clusterkit.cli.logs import logs
from clusterkit.cli.options import INTEGER, name_option, runtime_option, spec_from, spec_options
from clusterkit.cli.output import console as _console
from clusterkit.cli.output import progress as _progress
from clusterkit.errors import ClusterKitError
from clusterkit.interrupts import Interrupted
from clusterkit.version import __version__


class _Group(click.Group):
    """Turns ``ClusterKitError`` (and a bad option) into one line and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # `python -m clusterkit` is `clusterkit` too: in usage lines and for shell completion.
        kwargs.setdefault("prog_name", "clusterkit")
        kwargs.setdefault("complete_var", "_CLUSTERKIT_COMPLETE")
        return super().main(*args, **kwargs)

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
    import logging

    from clusterkit.cli.output import log_to_terminal

    ctx.obj = {"debug": debug}
    log_to_terminal(logging.DEBUG if debug else logging.INFO)


@main.command()
@spec_options
@runtime_option("Where to run it (default: compose if an engine answers, else local).")
@click.option(
    "--timeout", type=INTEGER, default=120, show_default=True, help="Seconds to wait for all workers."
)
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
    timeout: int | str,
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
        project = Path(spec_file).resolve().parent if spec_file else None
        status = cluster.up(spec, runtime, timeout=seconds, keep=keep, progress=_progress, project=project)
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


@main.command(short_help="List the running clusters: workers, health, age.")
@runtime_option("Only this runtime's clusters (default: every runtime).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects for scripts.")
def ls(runtime: str | None, as_json: bool) -> None:
    """List the running clusters of every runtime: workers wanted and registered, health, age.

    Only looks: nothing is repaired (`clusterkit status --repair` heals one cluster).
    """
    import json
    import time

    from clusterkit import listing

    rows = listing.clusters(runtime)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    elif rows:
        listing.render(rows, _console(), time.time())
    else:
        click.echo("no cluster is running; start one with `clusterkit up`")


@main.command(short_help="Stop a cluster and remove everything it started.")
@name_option()
@runtime_option()
@click.option("--volumes", is_flag=True, help="Also remove the cluster's volumes.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every cluster `clusterkit ls` lists, except those a live test session or Python process holds.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"removed": [...], "kept": [...]} as JSON.')
def down(name: str | None, runtime: str | None, volumes: bool, everything: bool, as_json: bool) -> None:
    """Stop a cluster and remove everything it started (exit 0 if there is none: nothing to remove)."""
    import json

    if everything and name:
        raise click.UsageError("--all and --name exclude each other")
    kept: list[dict[str, str]] = []
    if everything:
        removed, kept = cluster.down_all(runtime, volumes=volumes)
    else:
        gone = cluster.remove(name, runtime, volumes=volumes, missing_ok=True)
        removed = [gone] if gone else []
        if gone is None:
            named = cluster.resolve_name(name)[0]
            said = f"nothing to remove: no cluster named {named!r}" if named else "nothing to remove"
            click.echo(said, err=as_json)  # stdout stays JSON with --json
    if as_json:
        click.echo(json.dumps({"removed": removed, "kept": kept}, indent=2))
        return
    for item in removed:
        click.echo(f"cluster {item['name']!r} is down")
    if everything and not removed:
        click.echo("nothing to remove: no cluster is running" if not kept else "nothing removed")
    if kept:
        held = ", ".join(f"{k['name']} ({k['runtime']})" for k in kept)
        click.echo(f"kept {held}: held by a live test session or process (`down --name` removes one anyway)")


@main.command()
@name_option()
@runtime_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--repair/--no-repair",
    default=False,
    show_default=True,
    help="Also start ended nodes again, once, after reporting them (default: only look).",
)
def status(name: str | None, runtime: str | None, as_json: bool, repair: bool) -> None:
    """Compare the cluster with its spec: healthy (exit 0), degraded (exit 3) or down (exit 4).

    Shows the wanted and registered workers, every node (running, restarting,
    exited or missing, with exit code and restart count) and the problems.
    Only looks, unless --repair.
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
@click.option(
    "--timeout", type=INTEGER, default=120, show_default=True, help="Seconds to wait for the workers."
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def scale(workers: str, name: str | None, runtime: str | None, timeout: int | str, as_json: bool) -> None:
    """Change the number of workers and wait until the scheduler sees exactly that many."""
    seconds = cluster.check_timeout(timeout)
    found = cluster.scale(name, workers, runtime, timeout=seconds)
    if as_json:
        click.echo(found.to_json())
    else:
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
        sys.exit(jobs.run(cluster.client_place(name, runtime), argv, progress=_progress))
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
@click.option("--reuse", is_flag=True, help="Also the test clusters kept for reuse (--clusterkit-reuse).")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the clusters as a JSON list.")
def gc(everything: bool, reuse: bool, dry_run: bool, as_json: bool) -> None:
    """Remove containers and networks left by crashed test sessions (found by label)."""
    import json

    found = cluster.sweep(everything, dry_run=dry_run, reuse=reuse)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    listed = ", ".join(f"cluster {c['name']} ({c['runtime']})" for c in found)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(found)} leftover resource(s)" + (f": {listed}" if listed else ""))


@main.command(short_help="Print the shell completion script (bash, zsh or fish).")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion(shell: str) -> None:
    """Print the SHELL's completion script: `eval "$(clusterkit completion bash)"` in ~/.bashrc."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    assert found is not None
    click.echo(found(main, {}, "clusterkit", "_CLUSTERKIT_COMPLETE").source())


# --- what runs inside a node ------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []}, hidden=True)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def node(args: tuple[str, ...]) -> None:
    """Run a scheduler or worker in the foreground, as a container does (see --help)."""
    from clusterkit import node as nodes

    sys.exit(nodes.main(list(args)))


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []}, hidden=True)
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
