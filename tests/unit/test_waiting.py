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


# -- the container probes say "not yet" with the same class ----------------------------------


class _Pages:
    """A tiny HTTP server answering fixed pages: ``{path: body}``."""

    def __init__(self, pages):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_text_probe_reads_the_nodes_own_page():
    from clusterkit.facts import DASK
    from clusterkit.probe import probe

    with _Pages({DASK.scheduler_ready.path: "ok"}) as healthy:
        assert probe("scheduler", DASK.name, healthy.address) == "ok: scheduler healthy"
        assert probe("worker", DASK.name, "x:1", "w1", healthy.address) == "ok: worker w1 healthy"
    with _Pages({DASK.scheduler_ready.path: "starting"}) as busy, pytest.raises(NotReady, match="starting"):
        probe("scheduler", DASK.name, busy.address)


def test_an_alive_json_probe_finds_the_worker_at_its_master():
    import json

    from clusterkit.facts import SPARK
    from clusterkit.probe import main, probe

    path = SPARK.scheduler_ready.path
    master = {"status": "ALIVE", "aliveworkers": 1, "workers": [{"id": "w-1", "state": "ALIVE"}]}
    with _Pages({path: json.dumps(master)}) as ui:
        assert probe("scheduler", SPARK.name, ui.address) == "ok: master ALIVE with 1 workers"
        me = {"id": "w-1", "masterwebuiurl": f"http://{ui.address}"}
        with _Pages({SPARK.worker_ready.path: json.dumps(me)}) as worker:
            assert probe("worker", SPARK.name, ui.address, None, worker.address) == "ok: worker w-1 ALIVE"
            assert main(["worker", "--backend", SPARK.name, "--worker-ui", worker.address]) == 0
    with _Pages({path: json.dumps({"status": "STANDBY"})}) as ui, pytest.raises(NotReady, match="STANDBY"):
        probe("scheduler", SPARK.name, ui.address)


def test_a_probe_that_gets_no_answer_is_not_ready_and_exits_1(capsys):
    from clusterkit import probe
    from clusterkit.facts import BACKENDS

    assert probe.NotReady is NotReady, "one 'not ready' class for the waits and the probes"
    for backend in BACKENDS:
        assert probe.main(["scheduler", "--backend", backend, "--ui", "127.0.0.1:9"]) == 1
    assert "not ready:" in capsys.readouterr().err
    with pytest.raises(NotReady, match="unknown backend"):
        probe.probe("scheduler", "ray", "127.0.0.1:9")
