"""The drift check: do the client, the scheduler and every worker run the same environment?

Dask only warns on a mismatch, and compares Python by its full version string;
clusterkit grades each difference instead:

- **error** (``VersionMismatch``): another Python minor version, or another
  version of a package that moves data or code between nodes (the backend's
  ``critical_packages`` in :mod:`clusterkit.facts`: its own and cloudpickle),
  or such a package missing on a node, or another version of one of the
  project's own dependencies: what can break a computation;
- **warning**: another version of any other tracked package, another lock hash;
- **info**: another Python micro version (3.11.7 on the host, 3.11.2 in
  Debian's image): pickles and bytecode do not change within a minor version.

Connecting (``Client(cluster)``, a ``Cluster`` object) warns only about the
errors (:func:`summarize`); ``clusterkit doctor`` and ``status`` show every grade.

The tolerance (``--tolerance`` or ``CLUSTERKIT_DRIFT_TOLERANCE``) shifts that line:
``strict`` makes every difference an error; ``default`` is the grading above;
``lenient`` reports only the errors.

    >>> from clusterkit.facts import DEFAULT_BACKEND
    >>> found = compare({"client": {"python": "3.11.7"}, "w1": {"python": "3.12.1"}}, backend=DEFAULT_BACKEND)
    >>> [(d.node, d.package, d.severity) for d in found]
    [('w1', 'python', 'error')]
    >>> found = compare({"client": {"python": "3.11.7"}, "w1": {"python": "3.11.2"}}, backend=DEFAULT_BACKEND)
    >>> [(d.node, d.package, d.severity) for d in found], summarize(found)
    ([('w1', 'python', 'info')], '')
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clusterkit.errors import InvalidValue, VersionMismatch
from clusterkit.facts import FACTS

TOLERANCES = ("strict", "default", "lenient")
#: The grades, the most serious first.
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Difference:
    """One package (or Python) that differs between the reference and a node."""

    node: str
    package: str
    expected: str | None
    found: str | None
    severity: str  # "error", "warning" or "info" (SEVERITIES)


def tolerance_from_env(value: str | None = None) -> str:
    value = value or os.environ.get("CLUSTERKIT_DRIFT_TOLERANCE") or "default"
    if value not in TOLERANCES:
        raise InvalidValue(f"tolerance: {value!r} is not valid; expected one of {', '.join(TOLERANCES)}")
    return value


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def compare(
    versions: dict[str, dict[str, str]],
    *,
    backend: str,
    reference: str = "client",
    tolerance: str | None = None,
    project: Iterable[str] = (),
) -> list[Difference]:
    """Every difference between ``versions[reference]`` and each other node, graded.

    ``backend``'s row in :mod:`clusterkit.facts` says which packages must agree
    (``critical_packages``) and which its image lacks (``foreign_packages``, never compared);
    the ``project``'s own dependencies must agree too.
    """
    tolerance = tolerance_from_env(tolerance)
    expected = versions.get(reference, {})
    facts = FACTS.get(backend)
    own = set(project)
    critical = (*(facts.critical_packages if facts else ()), *own)
    skip = facts.foreign_packages if facts else ()
    found: list[Difference] = []
    for node, theirs in sorted(versions.items()):
        if node == reference:
            continue
        for package in sorted(set(expected) | set(theirs)):
            if package in skip:
                continue
            mine, other = expected.get(package), theirs.get(package)
            if mine == other:
                continue
            if package == "python":
                severity = "error" if _minor(mine or "") != _minor(other or "") else "info"
            elif package in own and (mine is None or other is None):
                continue  # the project's package not installed here: only its tasks need it
            elif package in critical:
                severity = "error"
            elif mine is None or other is None:
                continue  # a package only one side has and the backend does not need
            else:
                severity = "warning"
            if tolerance == "strict":
                severity = "error"
            if tolerance == "lenient" and severity != "error":
                continue
            found.append(Difference(node, package, mine, other, severity))
    return found


def project_packages(versions: dict[str, dict[str, str]], known: Iterable[str]) -> list[str]:
    """The packages the nodes report beyond the ``known`` (tracked) ones: the project's dependencies,
    which a node built with a project's image lists (``CLUSTERKIT_PROJECT_PACKAGES``).

    >>> project_packages({"client": {"a": "1"}, "w1": {"numpy": "2", "mylib": "2", "python": "3.11.7"}}, ["numpy"])
    ['mylib']
    """
    reported = {p for node, found in versions.items() if node != "client" for p in found}
    return sorted(reported - set(known) - {"python", "lock", "java"})


class DriftWarning(UserWarning):
    """The client and the cluster differ (shown once per client, instead of distributed's table)."""


def breaking(differences: list[Difference]) -> list[Difference]:
    """The differences that can break a computation: those a connection warns about (the errors)."""
    return errors(differences)


def summarize(differences: list[Difference]) -> str:
    """The note a connection shows: one line naming each difference that can break a computation
    (:func:`breaking`), on which nodes; ``""`` if there is none (a Python micro version, another
    numpy: ``clusterkit doctor`` shows them).

    >>> summarize([Difference("scheduler", "python", "3.11.7", "3.12.1", "error"),
    ...            Difference("tcp://10.0.0.3:4000", "python", "3.11.7", "3.12.1", "error"),
    ...            Difference("scheduler", "numpy", "2.4.6", "2.4.5", "warning")])
    'clusterkit: version drift between this client and the cluster: python 3.12.1 on the scheduler and 1 worker (client 3.11.7, error); `clusterkit doctor` shows every difference'
    """
    differences = breaking(differences)
    if not differences:
        return ""
    grouped: dict[tuple[str, str | None, str | None, str], list[str]] = {}
    for d in differences:
        grouped.setdefault((d.package, d.found, d.expected, d.severity), []).append(d.node)
    parts = []
    for (package, found, expected, severity), nodes in grouped.items():
        workers = sum(1 for n in nodes if n != "scheduler")
        where = [
            *(["the scheduler"] if "scheduler" in nodes else []),
            *([f"{workers} worker"] if workers else []),
        ]
        where[-1] += "s" if workers > 1 else ""
        parts.append(
            f"{package} {found or '(missing)'} on {' and '.join(where)} "
            f"(client {expected or '(missing)'}, {severity})"
        )
    return (
        "clusterkit: version drift between this client and the cluster: "
        + "; ".join(parts)
        + "; `clusterkit doctor` shows every difference"
    )


def errors(differences: list[Difference]) -> list[Difference]:
    return [d for d in differences if d.severity == "error"]


def raise_on_errors(differences: list[Difference]) -> None:
    """Raise ``VersionMismatch`` naming each error, if there is one."""
    bad = errors(differences)
    if bad:
        listed = "; ".join(f"{d.node}: {d.package} {d.found} (client {d.expected})" for d in bad)
        raise VersionMismatch(
            f"{len(bad)} version mismatch(es) between the client and the cluster: {listed}. "
            "Rebuild the images and the venv from one lock (`make images venv`)"
        )


def render(differences: list[Difference], console: Any = None) -> None:
    """Print the differences as a table (or one line saying there are none)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not differences:
        console.print("[green]no version drift[/green]: client, scheduler and workers match")
        return
    table = Table(title="version drift (reference: client)")
    for column in ("node", "package", "client", "node has", "severity"):
        table.add_column(column)
    for d in differences:
        colour = {"error": "red", "warning": "yellow"}.get(d.severity, "blue")
        table.add_row(
            d.node, d.package, d.expected or "-", d.found or "(missing)", f"[{colour}]{d.severity}[/{colour}]"
        )
    console.print(table)
