"""Shared test helpers: free ports, an isolated run directory, the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def docker_unavailable(reason: str) -> NoReturn:
    """A test cannot have the engine it needs: skip it, or fail it when ``CLUSTERKIT_REQUIRE_DOCKER=1``.

    CI sets that variable so that a test needing Docker fails instead of passing
    as "skipped" on a runner whose engine went away or is in the wrong state.
    """
    if os.environ.get("CLUSTERKIT_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (CLUSTERKIT_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A private state directory, so tests never see the user's clusters."""
    path = tmp_path / "run"
    monkeypatch.setenv("CLUSTERKIT_RUN_DIR", str(path))
    return path


@pytest.fixture
def ports():
    """Two distinct free ports: scheduler and dashboard."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``clusterkit`` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clusterkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=env.get("CWD", ROOT) if env else ROOT,
    )


@pytest.fixture
def cli():
    return run_cli
