"""Progress of long steps as events: the CLI prints them, benchmarks time them.

Every long operation (building an image, starting a cluster) takes a
``progress`` callback and calls it with an :class:`Event` when a step begins,
so a caller can show one line per step or measure how long each step took,
without reaching into private methods.

    >>> seen = []
    >>> report = seen.append
    >>> report(Event("start", "starting 2 workers"))
    >>> seen[0].step, str(seen[0])
    ('start', 'starting 2 workers')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Steps of ``Runtime.up`` and ``scale``, in order: the image is checked or built,
#: the nodes are started, the kit waits until every worker is registered, ready.
UP_STEPS = ("image", "start", "wait", "ready")
#: Steps of an image build: the wheelhouse download, the base image, the node image.
BUILD_STEPS = ("wheelhouse", "base", "build")


@dataclass(frozen=True)
class Event:
    """One step began (``step``), with a line for people (``message``) and when (``at``)."""

    step: str
    message: str
    #: ``time.monotonic()`` when the event was made.
    at: float = field(default_factory=time.monotonic)

    def __str__(self) -> str:
        return self.message


Progress = Callable[[Event], None]


def quiet(_: Event) -> None:
    """The default ``progress``: say nothing."""
