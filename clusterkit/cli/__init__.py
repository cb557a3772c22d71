"""The ``clusterkit`` command: thin; it parses, calls ``clusterkit.cluster``, prints.

Errors print one line (``error: ...``) and exit 2 for bad input or 1 for a
runtime failure; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from clusterkit import __version__, cluster
from clusterkit.errors import ClusterKitError, InvalidValue
from clusterkit.spec import resolve_spec


class _Group(click.Group):
    """Turns ``ClusterKitError`` into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClusterKitError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


from clusterkit.cli.output import console as _console  # noqa: E402
from clusterkit.cli.output import progress as _progress  # noqa: E402


def _env_pairs(values: tuple[str, ...]) -> dict[str, str] | None:
    if not values:
        return None
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidValue(f"env: {item!r} is not valid; expected NAME=value")
        pairs[key] = value
    return pairs


def _runtime_option(text: str = "Which runtime holds the cluster (default: search them all).") -> Any:
    from clusterkit.runtimes import RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES), help=text)


def _name_option() -> Any:
    return click.option("--name", help="Cluster name (default: the only running cluster).")


def _spec_options(func: Any) -> Any:
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
        click.option("--backend", help="dask or spark."),
        click.option("--workers", help="Number of workers (>= 1)."),
        click.option("--cores", help="Cores (threads) per worker."),
        click.option("--memory", help="Memory per worker, e.g. 1g or 512m."),
        click.option("--scheduler-port", help="Scheduler / master port."),
        click.option("--dashboard-port", help="Dashboard / web UI port."),
        click.option("--bind", "bind_address", help="Address published ports bind to (default 127.0.0.1)."),
        click.option("--image", help="Node image (default: built from the lock)."),
        click.option("--env", "env", multiple=True, help="NAME=value for every node (repeatable)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _spec_from(spec_file: str | None, env: tuple[str, ...], **flags: Any) -> Any:
    flags["env"] = _env_pairs(env)
    return resolve_spec(spec_file, overrides=flags)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="clusterkit")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """A real Dask or Spark cluster from one spec and one pinned image."""
    ctx.obj = {"debug": debug}


@main.command()
@_spec_options
@_runtime_option("Where to run it (default: compose if an engine answers, else local).")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for all workers.")
@click.option("--keep", is_flag=True, help="Keep what started if start-up fails (for debugging).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def up(
    runtime: str | None,
    timeout: float,
    keep: bool,
    as_json: bool,
    spec_file: str | None,
    env: tuple[str, ...],
    **flags: Any,
) -> None:
    """Start a cluster and wait until all workers are registered."""
    spec = _spec_from(spec_file, env, **flags)
    status = cluster.up(spec, runtime, timeout=timeout, keep=keep, progress=_progress)
    if as_json:
        click.echo(status.to_json())
    else:
        status.render(_console())


@main.command()
@_name_option()
@_runtime_option()
@click.option("--volumes", is_flag=True, help="Also remove the cluster's volumes.")
def down(name: str | None, runtime: str | None, volumes: bool) -> None:
    """Stop a cluster and remove everything it started."""
    removed = cluster.down(name, runtime, volumes=volumes)
    click.echo(f"cluster {removed!r} is down")


@main.command()
@_name_option()
@_runtime_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(name: str | None, runtime: str | None, as_json: bool) -> None:
    """Show the scheduler, every worker with cores and memory, and versions."""
    found = cluster.status(name, runtime)
    if as_json:
        click.echo(found.to_json())
    else:
        found.render(_console())


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("workers")
@_name_option()
@_runtime_option()
@click.option("--timeout", default=120.0, show_default=True)
def scale(workers: str, name: str | None, runtime: str | None, timeout: float) -> None:
    """Change the number of workers and wait until the scheduler sees exactly that many."""
    found = cluster.scale(name, workers, runtime, timeout=timeout)  # type: ignore[arg-type]
    found.render(_console())


@main.command()
@click.argument("service", required=False)
@_name_option()
@_runtime_option()
@click.option("-f", "--follow", is_flag=True)
@click.option("--tail", default=100, show_default=True)
def logs(service: str | None, name: str | None, runtime: str | None, follow: bool, tail: int) -> None:
    """Show the logs of a cluster's nodes (or one SERVICE: scheduler, worker)."""
    cluster.logs(name, service, runtime, follow=follow, tail=tail)


@main.command()
@_spec_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["compose", "spec"]),
    default="compose",
    show_default=True,
    help="compose: the compose file; spec: the resolved spec.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
def render(fmt: str, output: str | None, spec_file: str | None, env: tuple[str, ...], **flags: Any) -> None:
    """Render the spec (file, CLUSTERKIT_* variables and flags merged) for a runtime."""
    text = cluster.render(_spec_from(spec_file, env, **flags), fmt)
    if output:
        with open(output, "w") as f:
            f.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@_name_option()
@_runtime_option()
@click.option(
    "--tolerance",
    type=click.Choice(["strict", "default", "lenient"]),
    default=None,
    help="strict: warnings are errors; lenient: show errors only (env CLUSTERKIT_DRIFT_TOLERANCE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def doctor(name: str | None, runtime: str | None, tolerance: str | None, as_json: bool) -> None:
    """Compare Python and package versions of this client, the scheduler and every worker."""
    import dataclasses
    import json

    from clusterkit import drift

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


from clusterkit.cli.image import image  # noqa: E402 - registers on ``main`` after it exists

main.add_command(image)
