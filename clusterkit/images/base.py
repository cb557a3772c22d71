"""Base images: Debian bookworm with Python 3.11 (and a JRE if the backend needs one), made without a registry.

By default the base is made from Debian's packages with ``mmdebstrap`` and
``docker import`` (``images/build-base.sh``), so nothing is pulled. Users who
can pull set ``$BASE_IMAGE`` (and ``$BASE_IMAGE_JRE``) to an image they have,
and ``images/Dockerfile.base-online`` adds the packages to it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from clusterkit import labels
from clusterkit.errors import BuildError, ImageNotFound
from clusterkit.images import transcript
from clusterkit.images.paths import images_dir
from clusterkit.images.store import client, get_image
from clusterkit.images.tags import base_packages, base_tag, online_base, package_list, read_input
from clusterkit.progress import Progress, quiet


def missing_online_base(online: str) -> ImageNotFound:
    return ImageNotFound(
        f"base image {online!r} (BASE_IMAGE) is not on the engine: `docker pull {online}` "
        "first, or unset BASE_IMAGE/BASE_IMAGE_JRE to build the base from Debian packages"
    )


def build_base(jre: bool, *, base_image: str | None = None, progress: Progress = quiet) -> str:
    """Build (or find) ``clusterkit/base[-jre]:<hash>``; returns its ref.

    Without ``base_image`` (or $BASE_IMAGE / $BASE_IMAGE_JRE) it is made from
    Debian packages with mmdebstrap, so no registry is needed.
    """
    return ensure_base(base_tag(jre, base_image=base_image), jre, online_base(jre, base_image), progress)


def ensure_base(ref: str, jre: bool, online: str | None, progress: Progress = quiet) -> str:
    """Build base ``ref`` unless the engine has it; the node builder's entry, with its recipe's values."""
    engine = client()
    if get_image(engine, ref) is not None:
        return ref
    if online:
        _build_base_online(engine, ref, online, jre, progress)
    else:
        _build_base_mmdebstrap(ref, jre, progress)
    return ref


def _build_base_online(engine: Any, ref: str, online: str, jre: bool, progress: Progress) -> None:
    if get_image(engine, online) is None:
        raise missing_online_base(online)
    dockerfile = images_dir() / "Dockerfile.base-online"
    read_input(dockerfile)
    with (
        transcript.step(progress, "base", ref, f"building {ref} from {online}") as log,
        tempfile.TemporaryDirectory(prefix="clusterkit-base-") as ctx,
    ):
        shutil.copy(dockerfile, Path(ctx) / "Dockerfile")
        transcript.stream_build(
            engine,
            log,
            ref,
            path=ctx,
            tag=ref,
            buildargs={"BASE_IMAGE": online, "PACKAGES": " ".join(package_list(jre))},
            labels={labels.PROJECT: labels.PROJECT_VALUE, "clusterkit.base-from": online},
        )


def _build_base_mmdebstrap(ref: str, jre: bool, progress: Progress) -> None:
    script = images_dir() / "build-base.sh"
    read_input(script)
    if not shutil.which("mmdebstrap"):
        raise BuildError(
            "mmdebstrap is not installed: `apt-get install mmdebstrap`, or set BASE_IMAGE "
            "to a debian:bookworm-slim-like image you have pulled"
        )
    cmd = ["sh", str(script), ref] + [str(p) for p in base_packages(jre)]
    with transcript.step(progress, "base", ref, f"building {ref} from Debian packages (mmdebstrap)") as log:
        if transcript.run(cmd, log).returncode:
            raise log.error(f"building {ref} with mmdebstrap failed")
