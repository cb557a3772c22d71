"""The size of P5's workload, shared by what runs it and what reports it.

:mod:`benchmarks.runner` runs the tasks and :mod:`benchmarks.definitions`
names their count in its rows and titles; both import it from here, so
neither has to import the other for it.
"""

from __future__ import annotations

#: Tiny tasks (``client.map`` then ``gather``) that P5 times.
TASKS = 10_000
