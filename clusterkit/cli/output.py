"""What every CLI command prints with: a rich console and one line per progress event."""

from __future__ import annotations

from typing import Any

import click

from clusterkit.progress import Event


def console() -> Any:
    from rich.console import Console

    return Console()


def progress(event: Event | str) -> None:
    """Print one progress line to stderr (stdout stays for tables and JSON)."""
    click.echo(f"clusterkit: {event}", err=True)
