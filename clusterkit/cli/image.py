"""``clusterkit image ...``: lock, build, list and prune the pinned node images.

The one command line for images (``make lock``, ``make base`` and ``make
images`` call it). Long steps print one line when they start and one
``built X in N.Ns`` line when they end; the raw transcripts go to log files
(see ``clusterkit.images.transcript``). Errors are ``ClusterKitError``s and
the main group prints them.
"""

from __future__ import annotations

import click

from clusterkit.cli.output import console as _console
from clusterkit.cli.output import progress as _progress
from clusterkit.progress import Event
from clusterkit.spec import BACKENDS


class _Counting:
    """The CLI's progress printer, counting the events so a no-op can say so."""

    def __init__(self) -> None:
        self.events = 0

    def __call__(self, event: Event) -> None:
        self.events += 1
        _progress(event)


@click.group()
def image() -> None:
    """Lock, build, list and prune the pinned node images."""


@image.command("lock")
@click.option("--union", is_flag=True, help="Also recompile requirements.lock (the union lock).")
@click.option(
    "--project",
    is_flag=True,
    help="Instead: lock this project's node dependencies into clusterkit.lock (pyproject.toml, "
    "or the spec's requirements:) against the backend's node lock.",
)
def image_lock(union: bool, project: bool) -> None:
    """Recompile images/dask.lock and spark.lock with uv (needs the package index)."""
    from clusterkit.images import compile_locks

    if project:
        _lock_project()
        return
    names = ["requirements.lock"] * union + [f"{b}.lock" for b in BACKENDS]
    _progress(f"compiling {', '.join(names)} with uv")
    for path in compile_locks(union=union):
        click.echo(path)


@image.command("wheelhouse")
def image_wheelhouse() -> None:
    """Download (and build) the wheels of the lock for the node platform; cached by lock hash."""
    from clusterkit import images

    click.echo(images.wheelhouse(progress=_progress))


@image.command("base")
@click.option("--jre/--no-jre", default=None, help="Only the JRE base (Spark) or only the plain one (Dask).")
def image_base(jre: bool | None) -> None:
    """Build the base images from Debian packages (mmdebstrap + docker import), or from $BASE_IMAGE."""
    from clusterkit import images

    for with_jre in (False, True) if jre is None else (jre,):
        click.echo(images.build_base(with_jre, progress=_progress))


@image.command("build")
@click.argument("backends", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild without the layer cache, even if current.")
def image_build(backends: tuple[str, ...], force: bool) -> None:
    """Build the node images that are missing or stale (default: every backend), and their bases.

    A no-op when every image is current; after a code-only change only the
    last layer is rebuilt.
    """
    from clusterkit import images
    from clusterkit.images.locks import check_backend

    for backend in backends:
        check_backend(backend)  # an unknown name fails before anything is built
    report = _Counting()
    refs = []
    for backend in backends or BACKENDS:
        if force:
            refs.append(images.build_node_image(backend, force=True, progress=report))
        else:
            refs.append(images.ensure_image(backend, progress=report))
        click.echo(refs[-1])
    if not report.events:
        _progress(f"nothing to build: {', '.join(refs)} {'is' if len(refs) == 1 else 'are'} current")


@image.command("ensure")
@click.argument("backend")
def image_ensure(backend: str) -> None:
    """Print the current image of BACKEND, building it first if it is missing or stale."""
    from clusterkit import images

    click.echo(images.ensure_image(backend, progress=_progress))


@image.command("notebook")
@click.argument("backend")
def image_notebook(backend: str) -> None:
    """Print the optional notebook image of BACKEND (JupyterLab on the node image), building it if needed.

    `clusterkit up --notebook` builds it too; this builds it ahead.
    """
    from clusterkit.images.locks import check_backend
    from clusterkit.images.notebook import ensure_notebook_image

    check_backend(backend)
    click.echo(ensure_notebook_image(backend, progress=_progress))


@image.command("tag")
@click.argument("backend")
def image_tag(backend: str) -> None:
    """Print the tag the current lock and recipe give BACKEND's image (built or not)."""
    from clusterkit import images

    click.echo(images.image_tag(backend))


@image.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects for scripts.")
def image_ls(as_json: bool) -> None:
    """List clusterkit's images: ref, backend, lock hash, size, creation time."""
    import dataclasses
    import json

    from rich.table import Table

    from clusterkit import images

    if as_json:
        click.echo(json.dumps([dataclasses.asdict(i) for i in images.list_images()], indent=2))
        return
    # Narrow enough for 80 columns (a pipe or CI log), so no ref gets cut.
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for column in ("image", "backend", "lock", "MB", "created"):
        table.add_column(column, justify="right" if column == "MB" else "left", no_wrap=True)
    for info in images.list_images():
        table.add_row(
            info.ref,
            info.backend,
            (info.lock_hash or "")[:8],
            f"{info.size_bytes / 1e6:.0f}",
            info.created[:16].replace("T", " "),
        )
    _console().print(table)


@image.command("prune")
@click.option("--all", "everything", is_flag=True, help="Also the images of the current lock.")
def image_prune(everything: bool) -> None:
    """Remove images (and cached wheelhouses) built from older locks or recipes."""
    from clusterkit import images

    removed = images.prune(keep_current=not everything)
    click.echo(f"removed {len(removed)} item(s)" + (": " + ", ".join(removed) if removed else ""))


@image.command("push")
@click.argument("backends", nargs=-1)
def image_push(backends: tuple[str, ...]) -> None:
    """Send the node image(s) to every swarm node that lacks them (no registry: `docker save` into each
    node's engine; a node's engine URL is its `clusterkit.engine` label, e.g. ssh://user@host)."""
    from clusterkit import images
    from clusterkit.engine import docker_client
    from clusterkit.images.push import manager_node_id, push
    from clusterkit.spec import BACKENDS

    docker = docker_client(timeout=600)
    manager_node_id(docker)  # before any build: a clear line where there is no swarm
    for backend in backends or BACKENDS:
        ref = images.ensure_image(backend, progress=_progress)
        sent = push(docker, ref, progress=_progress)
        click.echo(f"{ref}: sent to {', '.join(sent)}" if sent else f"{ref}: every swarm node has it")


def _lock_project() -> None:
    """``clusterkit image lock --project``: (re)write the project's clusterkit.lock."""
    from pathlib import Path

    from clusterkit.errors import SpecError
    from clusterkit.images import project
    from clusterkit.spec import resolve_spec

    spec = resolve_spec()
    source = Path(spec.requirements) if spec.requirements else project.find_source(Path.cwd())
    if source is None:
        raise SpecError(
            "no project here: no pyproject.toml in this folder or above it, and no requirements: in "
            "clusterkit.yaml; name the nodes' dependencies in one of them"
        )
    named = None if source.name == "pyproject.toml" else source
    wanted = project.declared(source.parent, named)
    if not wanted:
        click.echo(f"{source} declares no dependencies the nodes need; nothing to lock")
        return
    click.echo(project.compile_lock(source.parent, spec.backend, wanted, progress=_progress))
