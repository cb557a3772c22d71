"""The soak run uses the fault suite's fixtures (real engine, current images, clean-up by label)."""

from tests.faults.conftest import docker_client, node_images

__all__ = ["docker_client", "node_images"]
