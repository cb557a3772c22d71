import pytest

from clusterkit.errors import InvalidValue, PortInUse
from clusterkit.net import ensure_port_free, parse_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("scheduler:8786", ("scheduler", 8786)),
        ("tcp://10.1.2.3:9000", ("10.1.2.3", 9000)),
        ("spark://master", ("master", 7077)),
        ("[::1]:7077", ("::1", 7077)),
        ("127.0.0.1", ("127.0.0.1", 7077)),
    ],
)
def test_parse(address, expected):
    assert parse_address(address, 7077) == expected


@pytest.mark.parametrize("address", ["", "tcp://", "host:port", "a b:1", "h:99999"])
def test_bad_addresses(address):
    with pytest.raises(InvalidValue):
        parse_address(address, 8786)


def test_wrong_scheme():
    with pytest.raises(InvalidValue, match="spark://"):
        parse_address("tcp://h:1", 7077, "spark")


def test_port_in_use_is_named():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use"):
            ensure_port_free("127.0.0.1", port, "scheduler")
