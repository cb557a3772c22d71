"""clusterkit's loggers: ``clusterkit`` and a child per module (``clusterkit.supervisor`` ...).

A library logs and lets the application decide what is shown: the package
logger has a ``NullHandler`` (so nothing reaches Python's last-resort stderr
handler unless the application configures logging), and the CLI or an
application adds a handler (``logging.basicConfig()``, rich's ``RichHandler``).

    >>> get_logger("clusterkit.supervisor").name, get_logger("supervisor").name
    ('clusterkit.supervisor', 'clusterkit.supervisor')
    >>> any(isinstance(h, logging.NullHandler) for h in logging.getLogger(ROOT).handlers)
    True
"""

from __future__ import annotations

import logging

#: The package logger's name.
ROOT = "clusterkit"

if not any(isinstance(h, logging.NullHandler) for h in logging.getLogger(ROOT).handlers):
    logging.getLogger(ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under ``clusterkit``."""
    if name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    return logging.getLogger(name)
