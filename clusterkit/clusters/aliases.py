"""``LocalCluster``'s argument names, accepted by ``Cluster(...)`` as aliases of clusterkit's.

``n_workers`` is ``workers``, ``threads_per_worker`` is ``cores`` and
``memory_limit`` is ``memory`` (in any form ``LocalCluster`` takes: ``"2GiB"``,
``"512MB"``, a byte count). Giving an alias and its clusterkit name with
different values is an error; the same value twice is fine.

    >>> merge_aliases({"workers": None}, n_workers=2, threads_per_worker=1, memory_limit="2GiB")
    {'workers': 2, 'cores': 1, 'memory': '2048m'}
"""

from __future__ import annotations

from typing import Any

from clusterkit.errors import InvalidValue
from clusterkit.spec import format_memory, parse_memory

#: ``LocalCluster``'s name -> clusterkit's spec field.
ALIASES = {"n_workers": "workers", "threads_per_worker": "cores", "memory_limit": "memory"}


def memory_text(value: Any, field_name: str = "memory_limit") -> str:
    """``LocalCluster``'s memory forms as the spec's (``1024m``): ``"2GiB"``, ``"512MB"``, bytes.

    Binary units, as the spec reads them (``1GB`` = 2**30).

    >>> memory_text("2GiB"), memory_text("512MB"), memory_text(2**30), memory_text(1.5 * 2**30)
    ('2048m', '512m', '1024m', '1536m')
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return format_memory(parse_memory(value, field_name))


def _same(field: str, ours: Any, theirs: Any) -> bool:
    if field == "memory":
        return memory_text(ours, "memory") == memory_text(theirs)
    try:
        return int(ours) == int(theirs)
    except (TypeError, ValueError):
        return str(ours).strip() == str(theirs).strip()


def merge_aliases(fields: dict[str, Any], **aliases: Any) -> dict[str, Any]:
    """``fields`` with each alias given (not ``None``) under its clusterkit name.

    >>> merge_aliases({"workers": 2}, n_workers=3)
    Traceback (most recent call last):
    ...
    clusterkit.errors.InvalidValue: n_workers=3 and workers=2 disagree: give one of them (n_workers is LocalCluster's name for workers)
    """
    merged = dict(fields)
    for alias, value in aliases.items():
        field = ALIASES[alias]
        if value is None:
            continue
        if field == "memory":
            value = memory_text(value, alias)
        ours = merged.get(field)
        if ours is not None and not _same(field, ours, value):
            raise InvalidValue(
                f"{alias}={aliases[alias]!r} and {field}={ours!r} disagree: give one of them "
                f"({alias} is LocalCluster's name for {field})"
            )
        if ours is None:
            merged[field] = value
    return merged
