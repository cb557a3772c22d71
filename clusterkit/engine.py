"""The Docker engine, reached in one place so every caller fails the same clear way."""

from __future__ import annotations

from typing import Any

from clusterkit.errors import EngineUnavailable


def docker_client(timeout: int = 30) -> Any:
    """A pinged docker SDK client, or ``EngineUnavailable`` naming the cause and the fix.

    Image builds pass a long ``timeout``: one build step can run for minutes.
    """
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as e:  # docker raises DockerException and requests errors alike
        raise EngineUnavailable(
            f"the Docker engine does not answer ({type(e).__name__}: {e}); start it or set DOCKER_HOST, "
            "or use `--runtime local`"
        ) from e


def engine_available() -> bool:
    try:
        docker_client()
        return True
    except EngineUnavailable:
        return False
