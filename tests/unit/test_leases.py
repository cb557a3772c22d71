"""Lease arithmetic: the engine's timestamps, and a lease length a test may shorten but never stretch."""

from __future__ import annotations

import pytest

from clusterkit.runtimes import leases


def test_engine_time_reads_nanoseconds_and_offsets():
    assert leases.engine_time("2026-01-01T00:00:00.123456789Z") == pytest.approx(1767225600.123456)
    assert leases.engine_time("2026-01-01T01:00:00+01:00") == leases.engine_time("2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("given", "expected"), [(None, 60.0), ("10", 10.0), ("1", 3.0), ("900", 60.0), ("x", 60.0)]
)
def test_lease_length_is_bounded(monkeypatch, given, expected):
    if given is None:
        monkeypatch.delenv("CLUSTERKIT_LEASE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("CLUSTERKIT_LEASE_SECONDS", given)
    assert leases.ttl() == expected
