"""What every CLI command prints with: a rich console and one line per progress event."""

from __future__ import annotations

from typing import Any

import click

from clusterkit.progress import Event


def console() -> Any:
    from rich.console import Console

    return Console()


def log_to_terminal(level: int) -> None:
    """Show the ``clusterkit`` logger's records at ``level`` and above on stderr.

    The library only logs (:mod:`clusterkit.log`); the command line decides what a
    person sees: rich's rendering on a terminal, plain ``clusterkit: ...`` lines
    (like the progress lines, never wrapped) in a CI log or a pipe.
    """
    import logging
    import sys

    logger = logging.getLogger("clusterkit")
    if not any(getattr(h, "clusterkit_cli", False) for h in logger.handlers):
        handler: logging.Handler
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.logging import RichHandler

            handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("clusterkit: %(message)s"))
        handler.clusterkit_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


def progress(event: Event | str) -> None:
    """Print one progress line to stderr (stdout stays for tables and JSON)."""
    click.echo(f"clusterkit: {event}", err=True)
