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

import itertools
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
    #: The step ended (``built X in 12.3s``) rather than began.
    ended: bool = False

    def __str__(self) -> str:
        return self.message


Progress = Callable[[Event], None]


def quiet(_: Event) -> None:
    """The default ``progress``: say nothing."""


def numbered(progress: Progress, total: int) -> Progress:
    """``progress``, with ``[k/total]`` before the line of each build step that begins.

    >>> seen = []
    >>> report = numbered(seen.append, 2)
    >>> report(Event("base", "building the base")); report(Event("base", "built it in 3.0s", ended=True))
    >>> report(Event("build", "building the node image"))
    >>> [str(e) for e in seen]
    ['[1/2] building the base', 'built it in 3.0s', '[2/2] building the node image']
    """
    count = itertools.count(1)

    def report(event: Event) -> None:
        if event.step in BUILD_STEPS and not event.ended:
            event = Event(event.step, f"[{next(count)}/{total}] {event.message}", event.at)
        progress(event)

    return report
