"""The Open API client: addresses, status checks, error texts, long polls (against a tiny
HTTP server on a free port of 127.0.0.1)."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webapp.openapi.client import ModuleClient, ModuleError, parse_address


@pytest.mark.parametrize(
    ("text", "host", "port", "netloc"),
    [
        ("127.0.2.11", "127.0.2.11", 80, "127.0.2.11"),
        ("127.0.2.11:8080", "127.0.2.11", 8080, "127.0.2.11:8080"),
        ("localhost:81", "localhost", 81, "localhost:81"),
        ("::1", "::1", 80, "[::1]"),
        ("[::1]", "::1", 80, "[::1]"),
        ("[::1]:8080", "::1", 8080, "[::1]:8080"),
        ("fe80::1%eth0", "fe80::1%eth0", 80, "[fe80::1%25eth0]"),
        ("[fe80::1%eth0]:81", "fe80::1%eth0", 81, "[fe80::1%25eth0]:81"),
        ("fe80::1%%eth0", "fe80::1%eth0", 80, "[fe80::1%25eth0]"),  # a Windows shell's %%
    ],
)
def test_addresses(text, host, port, netloc):
    a = parse_address(text)
    assert (a.host, a.port, a.netloc) == (host, port, netloc)
    assert ModuleClient(text).base_url == f"http://{netloc}/rest/rec"


@pytest.mark.parametrize(
    "text",
    ["", "a b", "[::1", "[::1]x", "1.2.3.4:0", "1.2.3.4:http", ":80", "fe80::zz", "[fe80::1%]"],
)
def test_bad_addresses(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_module_error_names_module_request_and_message():
    e = ModuleError("127.0.2.12", "PUT /rest/rec/open", 403, "open is not valid in RecorderOpened")
    assert str(e) == (
        "module 127.0.2.12: PUT /rest/rec/open failed: HTTP 403: open is not valid in RecorderOpened"
    )
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
    assert "unreachable" in str(ModuleError("m", "GET x", None, "unreachable (connection refused)"))


class Handler(BaseHTTPRequestHandler):
    """Answers from ``server.routes``: (method, path) -> (status, body) or a callable."""

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((method, self.path, body, dict(self.headers)))
        route = self.server.routes.get((method, self.path.split("?")[0]))
        if route is None:
            status, reply = 404, "no such resource"
        else:
            status, reply = route(self.path) if callable(route) else route
        data = (
            reply
            if isinstance(reply, bytes)
            else (json.dumps(reply) if not isinstance(reply, str) else reply).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer("GET")

    def do_PUT(self):
        self._answer("PUT")

    def do_POST(self):
        self._answer("POST")


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.routes = {}
    srv.seen = []
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def client_for(srv, timeout=2.0) -> ModuleClient:
    return ModuleClient(f"127.0.0.1:{srv.server_address[1]}", timeout=timeout)


def test_requests_and_bodies(server):
    info = {
        "module": {
            "type": {"number": "3050"},
            "serial": 100123,
            "version": {"firmware": "2.10.0.501"},
        },
        "numberOfInputChannels": 6,
        "supportedSampleRates": [131072, 65536],
        "moduleState": "Idle",
    }
    server.routes.update(
        {
            ("GET", "/rest/rec/module/info"): (200, info),
            ("PUT", "/rest/rec/syncmode"): (200, ""),
            ("PUT", "/rest/rec/open"): (200, ""),
            ("PUT", "/rest/rec/module/time"): (200, ""),
            ("POST", "/rest/rec/measurements"): (202, ""),
            ("GET", "/rest/rec/destination/socket"): (200, {"tcpPort": 1536}),
            ("GET", "/rest/rec/destination/sockets"): (200, {"tcpPorts": [1536, 1537]}),
            ("GET", "/rest/rec/channels/input/all/transducers"): (200, [None, {"serialNumber": 1}]),
        }
    )
    c = client_for(server)
    got = c.info()
    assert (got.type_number, got.serial, got.input_channels, got.supports_ptp) == (
        "3050",
        100123,
        6,
        True,
    )
    c.set_ptp(42, True, 1700000000000)
    c.open(single_module=False, detect_transducers=False)
    c.set_time(1700000000000)
    assert c.start_measurement() == 202
    assert c.destination_socket() == 1536 and c.destination_sockets() == [1536, 1537]
    assert c.transducers() == [None, {"serialNumber": 1}]
    bodies = {(m, p): b for m, p, b, _ in server.seen}
    assert json.loads(bodies[("PUT", "/rest/rec/syncmode")]) == {
        "synchronization": {
            "mode": "ptp",
            "domain": 42,
            "settime": 1700000000000,
            "difftime": 0,
            "preferredMaster": True,
        }
    }
    assert json.loads(bodies[("PUT", "/rest/rec/open")]) == {
        "singleModule": False,
        "performTransducerDetection": False,
    }
    assert bodies[("PUT", "/rest/rec/module/time")] == b"1700000000000"
    assert all(h.get("Connection") == "close" for *_, h in server.seen)


def test_error_status_raises_with_the_modules_message(server):
    server.routes[("PUT", "/rest/rec/create")] = (403, "create is not valid in state Idle\n")
    server.routes[("PUT", "/rest/rec/finish")] = (500, {"message": "DSP failure"})
    c = client_for(server)
    with pytest.raises(ModuleError) as err:
        c.create()
    e = err.value
    assert (e.module, e.request, e.status, e.message) == (
        c.address,
        "PUT /rest/rec/create",
        403,
        "create is not valid in state Idle",
    )
    with pytest.raises(ModuleError, match="HTTP 500: DSP failure"):
        c.finish()
    with pytest.raises(ModuleError, match="HTTP 404"):
        c.synchronize()


def test_an_answer_of_the_wrong_shape_names_module_and_request(server):
    server.routes[("GET", "/rest/rec/channels/input/default")] = (200, [1, 2])
    c = client_for(server)
    with pytest.raises(ModuleError) as err:
        c.default_setup()
    e = err.value
    assert (e.module, e.request) == (c.address, "GET /rest/rec/channels/input/default")
    assert "not an object" in str(e)


def test_503_is_retried(server):
    calls = []

    def busy(path):
        calls.append(path)
        return (503, "too many connections") if len(calls) < 3 else (200, "")

    server.routes[("PUT", "/rest/rec/close")] = busy
    client_for(server).close()
    assert len(calls) == 3


def test_unreachable_and_silent_modules(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModuleError, match="unreachable"):
        ModuleClient(f"127.0.0.1:{port}", timeout=1).info()
    # a module that accepts but never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        c = ModuleClient(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(ModuleError, match="no answer within 0.3 s"):
            c.info()
    server.routes[("GET", "/rest/rec/module/info")] = (200, "<html>")
    with pytest.raises(ModuleError, match="not JSON"):
        client_for(server).info()


def test_onchange_long_poll_waits_longer_than_the_request_timeout(server):
    def onchange(path):
        if "last=" in path:
            time.sleep(0.6)  # a long poll held by the module
        return 200, {"lastUpdateTag": 5, "moduleState": "Idle"}

    server.routes[("GET", "/rest/rec/onchange")] = onchange
    c = client_for(server, timeout=0.3)
    assert c.onchange()["lastUpdateTag"] == 5
    assert c.onchange(last=5)["moduleState"] == "Idle"
    assert server.seen[-1][1] == "/rest/rec/onchange?last=5"


def test_empty_onchange_answer_is_asked_again(server):
    answers = iter([(200, ""), (200, {"lastUpdateTag": 2})])
    server.routes[("GET", "/rest/rec/onchange")] = lambda path: next(answers)
    assert client_for(server).onchange(last=1) == {"lastUpdateTag": 2}


def test_connect_stream_failure_names_the_port(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModuleError, match=f"connect stream port {port}"):
        client_for(server).connect_stream(port)


def test_ipv6_loopback_requests_and_stream_socket():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    class Server6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        srv = Server6(("::1", 0), Handler)
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv.routes = {("GET", "/rest/rec/onchange"): (200, {"lastUpdateTag": 3})}
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        c = ModuleClient(f"[::1]:{port}")
        assert c.base_url == f"http://[::1]:{port}/rest/rec"
        assert c.onchange() == {"lastUpdateTag": 3}
        assert srv.seen[0][3]["Host"] == f"[::1]:{port}"
        with c.connect_stream(port) as s:
            assert s.family == socket.AF_INET6
    finally:
        srv.shutdown()
        srv.server_close()
