"""``clusterkit image ...``: build, list and prune the pinned node images."""

from __future__ import annotations

import click

from clusterkit.cli.output import console as _console
from clusterkit.cli.output import progress as _progress


@click.group()
def image() -> None:
    """Build, list and prune the pinned node images."""


@image.command("base")
def image_base() -> None:
    """Build the base images from Debian packages (mmdebstrap + docker import)."""
    from clusterkit import images

    for jre in (False, True):
        click.echo(images.build_base(jre, progress=_progress))


@image.command("build")
@click.argument("backends", nargs=-1)
@click.option("--force", is_flag=True, help="Rebuild even if current.")
def image_build(backends: tuple[str, ...], force: bool) -> None:
    """Build the node image(s) from the lock (default: dask and spark)."""
    from clusterkit import images
    from clusterkit.backends import get_backend

    for backend in backends or ("dask", "spark"):
        get_backend(backend)  # an unknown name fails here, with the accepted ones
        ref = (
            images.build_node_image(backend, force=True, progress=_progress)
            if force
            else images.ensure_image(backend, progress=_progress)
        )
        click.echo(ref)


@image.command("ls")
def image_ls() -> None:
    """List clusterkit's images: tag, lock hash, size, age."""
    from rich.table import Table

    from clusterkit import images

    table = Table()
    for column in ("image", "backend", "lock", "size", "created"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for info in images.list_images():
        table.add_row(
            info.ref,
            info.backend,
            (info.lock_hash or "")[:12],
            f"{info.size_bytes / 1e6:.0f} MB",
            info.created[:19],
        )
    _console().print(table)


@image.command("prune")
@click.option("--all", "everything", is_flag=True, help="Also the images of the current lock.")
def image_prune(everything: bool) -> None:
    """Remove images built from older locks or sources."""
    from clusterkit import images

    removed = images.prune(keep_current=not everything)
    click.echo(f"removed {len(removed)} image(s)" + (": " + ", ".join(removed) if removed else ""))
