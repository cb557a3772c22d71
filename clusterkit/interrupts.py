"""SIGTERM and SIGHUP end a command the way Ctrl-C does: by an exception, so clean-up runs.

Python's default for SIGTERM and SIGHUP is to die on the spot, which during
``clusterkit up`` left a whole cluster running. Inside :func:`signals_raise`
both raise :class:`Interrupted` (a ``KeyboardInterrupt``, so every
``except BaseException`` clean-up path that handles Ctrl-C handles them
too), and a second signal while that clean-up runs is ignored with a note
instead of cutting it short. SIGKILL cannot be caught: what a killed ``up``
leaves carries its owner's PID (:mod:`clusterkit.records`) and
``clusterkit gc`` removes it.

    >>> with signals_raise():  # doctest: +SKIP
    ...     cluster.up(spec)
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: What ends a command early: Ctrl-C, ``kill``, the terminal closing.
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal ended the command; ``exit_code`` is 128 + its number, as shells report it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextmanager
def signals_raise(signums: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signums`` raises :class:`Interrupted`; later ones are ignored.

    Only the main thread can own signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[int] = []

    def handler(signum: int, _: Any) -> None:
        if raised:
            print("clusterkit: still removing what was started; please wait", file=sys.stderr, flush=True)
            return
        raised.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
