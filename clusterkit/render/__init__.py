"""Pure renderers: a ``ClusterSpec`` as the file a runtime's tool reads (a compose file, a swarm stack).

``make render`` writes the default specs' files under ``compose/`` and a
test fails when they are stale, so a change to what the nodes run shows up
in review as a diff of those files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clusterkit.spec import ClusterSpec


def render_text(spec: ClusterSpec, image: str, fmt: str) -> str:
    """``compose`` or ``stack`` (what a swarm runs: ``security: tls`` unless the spec says otherwise)."""
    from clusterkit.render import compose, stack

    if fmt == "stack":
        document: dict[str, Any] = stack.render(spec.replace(security=spec.security or "tls"), image)
    else:
        document = compose.render(spec, image, secrets_dir="<the cluster's secrets folder>")
    return compose.dump(document)


def default_files() -> dict[str, str]:
    """``{file name: text}`` of the default spec of every backend, for each format."""
    from clusterkit import images
    from clusterkit.spec import BACKENDS, resolve_spec

    files = {}
    for backend in BACKENDS:
        spec = resolve_spec(overrides={"backend": backend}, environ={})
        image = images.image_tag(backend)
        files[f"{backend}.yml"] = render_text(spec, image, "compose")
        files[f"{backend}-stack.yml"] = render_text(spec, image, "stack")
    return files


def write_default_files(folder: Path) -> list[Path]:
    """Write :func:`default_files` into ``folder`` (``make render``)."""
    written = []
    for name, text in default_files().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
