"""The install extras: which one a backend's client needs, and what each one pins.

``pip install clusterkit`` gives the command line, the engine client and the
pytest plugin; a backend's client packages come with its extra
(``clusterkit[dask]``, ``clusterkit[spark]``; ``clusterkit[swarm]`` for a
swarm over SSH; ``clusterkit[all]``). The nodes' versions win: a backend
extra pins what must agree between client and nodes to the exact version of
that backend's node lock. The pins are written by
``python -m clusterkit.images.pins --write`` into ``images/extras-<extra>.txt``,
which ``pyproject.toml`` reads (``dynamic = ["optional-dependencies"]``).

Standard library only, and nothing heavy is imported: :func:`missing_extra`
asks :func:`importlib.util.find_spec`, so the pytest plugin can ask it for
every fixture.

    >>> extra_requirement(SWARM)
    'clusterkit[swarm]'
"""

from __future__ import annotations

import importlib.util
import sys

from clusterkit.facts import BACKENDS, DASK, SPARK, facts_of

#: The distribution name, as pip spells it.
DISTRIBUTION = "clusterkit"

#: What (de)serializes data on both sides besides the drift check's critical packages.
_DATA = ("pandas", "numpy", "pyarrow")

#: Per backend extra: the packages that must match across client and nodes, pinned to the node lock
#: (the drift check's critical packages first, ``clusterkit.facts``).
PINNED: dict[str, tuple[str, ...]] = {
    DASK.name: (*DASK.critical_packages, "tornado", "toolz", *_DATA),  # msgpack is critical
    SPARK.name: (*SPARK.critical_packages, *_DATA),
}

#: Per backend: the modules its client imports; one of them missing means its extra is not installed.
#: (A backend is named after its package: Dask's client is ``dask`` plus ``distributed``.)
CLIENT_MODULES: dict[str, tuple[str, ...]] = {
    DASK.name: (DASK.name, "distributed"),
    SPARK.name: ("pyspark", "py4j"),
}

#: The swarm runtime's SSH transport: client-side only, so ranges rather than node pins.
SWARM = "swarm"
SWARM_REQUIREMENTS: tuple[str, ...] = ("cryptography>=42", "paramiko>=3.4")

#: Spark Connect's client (pyspark's own ``connect`` extra): the client side only, never a node,
#: so ranges (pyspark's minimums) rather than node pins.
SPARK_CONNECT_REQUIREMENTS: tuple[str, ...] = (
    "grpcio>=1.76",
    "grpcio-status>=1.76",
    "googleapis-common-protos>=1.71",
    "zstandard>=0.25",
)

#: Every backend extra and the swarm one.
ALL = "all"
EXTRAS: tuple[str, ...] = (*BACKENDS, SWARM, ALL)


def extra_requirement(extra: str) -> str:
    """What to ``pip install`` for ``extra``: ``clusterkit[<extra>]``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: expected one of {', '.join(EXTRAS)}")
    return f"{DISTRIBUTION}[{extra}]"


def pin_file(extra: str) -> str:
    """The file in ``images/`` holding ``extra``'s requirements (pyproject.toml reads it)."""
    extra_requirement(extra)
    return f"extras-{extra}.txt"


def importable(module: str) -> bool:
    """Whether ``module`` (top-level) can be imported, without importing it.

    One already imported counts; ``sys.modules[name] = None`` (how imports are blocked) does not.
    """
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses the name
        return False


def missing_extra(backend: str) -> str | None:
    """``clusterkit[<backend>]`` when the backend's client packages are not importable, else None.

    An unknown backend raises ``UnknownBackend``.
    """
    facts_of(backend)
    if all(importable(m) for m in CLIENT_MODULES[backend]):
        return None
    return extra_requirement(backend)


def requirement_lines(extra: str, versions: dict[str, str]) -> list[str]:
    """The requirement lines of ``extra``, backend pins taken from ``versions`` ({name: version}).

    ``versions`` maps a backend's node-lock names (PEP 503) to versions; for
    ``all`` it must hold every backend's packages. A package missing there is
    a ``KeyError`` naming it.
    """
    extra_requirement(extra)
    if extra == SWARM:
        return list(SWARM_REQUIREMENTS)
    names = PINNED[extra] if extra in PINNED else sorted({n for b in BACKENDS for n in PINNED[b]})
    lines = [f"{name}=={versions[name]}" for name in names]
    if extra in (SPARK.name, ALL):
        lines += SPARK_CONNECT_REQUIREMENTS
    return lines + (list(SWARM_REQUIREMENTS) if extra == ALL else [])


def render(extra: str, versions: dict[str, str], source: str) -> str:
    """The text of ``extra``'s pin file; ``source`` says which lock(s) the pins come from."""
    head = [
        f"# {extra_requirement(extra)}: generated from {source} by",
        "# `python -m clusterkit.images.pins --write`; do not edit (pyproject.toml reads this file).",
    ]
    return "\n".join(head + requirement_lines(extra, versions)) + "\n"
