"""PyYAML's safe loading, refusing a key given twice (YAML itself keeps the last one silently)."""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping (YAML itself would keep the last one silently)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader``, refusing a key given twice in one mapping (``workers: 2``, ``workers: 3``).

    The spec's own keys also collide when they differ only in ``-`` and ``_``
    (``scheduler-port``, ``scheduler_port``); a merge (``<<``) may still override.
    """

    _root: Any = None

    def construct_document(self, node: yaml.Node) -> Any:
        self._root = node
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, tuple[int, str]] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if node is self._root and isinstance(key, str):
                key = key.replace("-", "_")
            here = (key_node.start_mark.line + 1, str(key_node.value))
            try:
                first = seen.setdefault(key, here)
            except TypeError:
                continue  # an unhashable key: SafeLoader refuses it with its own message
            if first is not here:
                both = f"keys {first[1]!r} and {here[1]!r} both set {key!r}" if first[1] != here[1] else ""
                lines = f"lines {first[0]} and {here[0]}" if first[0] != here[0] else f"line {here[0]}"
                raise DuplicateKey(f"{both or f'key {here[1]!r} is given twice'} ({lines})")
        return super().construct_mapping(node, deep)
