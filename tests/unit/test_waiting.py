import pytest

from clusterkit.errors import ClusterUnavailable, StartupTimeout
from clusterkit.waiting import NotReady, wait_for


def test_returns_first_ready_value():
    calls = []

    def probe():
        calls.append(1)
        if len(calls) < 3:
            raise NotReady("warming up")
        return "ready"

    assert wait_for(probe, what="x", timeout=5, interval=0.01) == "ready"
    assert len(calls) == 3


def test_timeout_message_says_what_attempts_and_last_reason():
    with pytest.raises(StartupTimeout) as caught:
        wait_for(
            lambda: (_ for _ in ()).throw(NotReady("1 of 2 workers")),
            what="2 workers",
            timeout=0.5,
            interval=0.05,
            hint="Check the logs",
        )
    message = str(caught.value)  # how long it took is not asserted: only that it gave up, and why
    assert message.startswith("timed out after")
    assert "2 workers" in message and "attempts" in message and "1 of 2 workers" in message
    assert message.endswith("Check the logs")


def test_other_errors_propagate_at_once():
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, what="x", timeout=5)


def test_error_type_and_diagnostics():
    def probe():
        raise ConnectionRefusedError("refused")

    with pytest.raises(ClusterUnavailable, match=r"(?s)refused.*exited with 1"):
        wait_for(
            probe,
            what="x",
            timeout=0.2,
            interval=0.05,
            error=ClusterUnavailable,
            on_timeout=lambda: "node exited with 1",
        )
