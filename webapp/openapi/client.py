"""The Open API client for one LAN-XI module: every REST call, status checks, long polls.

Every request checks the HTTP status; anything but 2xx (and any transport failure) raises
:class:`ModuleError`, whose text names the module, the request and the module's own message, so
an error can be shown to a user as it is.

Choices where PROTOCOL.md leaves room:

* Module addresses: ``127.0.0.11``, ``host:port``, ``[fe80::1%eth0]``, ``[fe80::1%eth0]:8080``
  or a bare IPv6 address with an optional zone (``fe80::1%eth0``; a Windows-style ``%%`` is
  accepted). The zone index is kept for the stream socket and percent-encoded in URLs (RFC 6874).
* Every request uses a fresh connection (``Connection: close``): real modules answer HTTP/1.0 and
  close anyway, and a module allows only 10 concurrent connections, so nothing is held idle.
* 503 (more than 10 connections) is retried a few times; an ``onchange`` answer with an empty
  body (seen by HBK's MATLAB recorder) is asked again once.
* Error bodies are plain text (Q16); a JSON body's ``message``/``error`` member is used if present.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from webapp.openapi.model import ModuleInfo

DEFAULT_PORT = 80
LONG_POLL_CAP_S = 30.0
"""A module answers an ``onchange?last=`` long poll after at most 30 s (REF17 §5.3.9)."""

_RETRIES_ON_503 = 3
_MESSAGE_LIMIT = 300


class ModuleError(Exception):
    """A request to a module failed. ``str()`` names the module, the request and the message."""

    def __init__(self, module: str, request: str, status: int | None, message: str) -> None:
        self.module = module
        self.request = request
        self.status = status
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        what = f"HTTP {self.status}: {self.message}" if self.status else self.message
        return f"module {self.module}: {self.request} failed: {what}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.module, self.request, self.status, self.message))


@dataclass(frozen=True)
class ModuleAddress:
    """A parsed module address: ``host`` keeps an IPv6 zone index, ``url_host`` is URL-ready."""

    text: str
    host: str
    port: int
    ipv6: bool

    @property
    def url_host(self) -> str:
        if self.ipv6:
            return "[" + self.host.replace("%", "%25") + "]"
        return self.host

    @property
    def netloc(self) -> str:
        return self.url_host if self.port == DEFAULT_PORT else f"{self.url_host}:{self.port}"

    def resolve(self) -> None:
        """Raise ``OSError`` if the host does not resolve (the zone index is not looked up)."""
        socket.getaddrinfo(self.host.split("%")[0], self.port, type=socket.SOCK_STREAM)


def parse_address(address: str) -> ModuleAddress:
    """Parse a module address; raises ``ValueError`` with a reason for malformed input."""
    text = str(address).strip().replace("%%", "%")
    if not text:
        raise ValueError("empty module address")
    if any(c.isspace() for c in text) or "/" in text:
        raise ValueError(f"module address {address!r} contains a space or a slash")
    port = DEFAULT_PORT
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"module address {address!r} has no closing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected {rest!r} after ']' in {address!r}")
            port = _parse_port(rest[1:], address)
        _check_ipv6(host, address)
        return ModuleAddress(text, host, port, True)
    if text.count(":") >= 2:
        _check_ipv6(text, address)
        return ModuleAddress(text, text, port, True)
    host = text
    if ":" in text:
        host, port_text = text.rsplit(":", 1)
        port = _parse_port(port_text, address)
    if not host:
        raise ValueError(f"module address {address!r} has no host")
    return ModuleAddress(text, host, port, False)


def _parse_port(text: str, address: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"port must be 1–65535, not {text!r}")
    return int(text)


def _check_ipv6(host: str, address: str) -> None:
    bare, _, zone = host.partition("%")
    try:
        ipaddress.IPv6Address(bare)
    except ValueError:
        raise ValueError(f"{address!r} is not a valid IPv6 address") from None
    if "%" in host and not zone:
        raise ValueError(f"module address {address!r} has an empty zone index")


@dataclass(frozen=True)
class Answer:
    """A module's answer: status, reason phrase and body."""

    status: int
    reason: str
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _message_of(answer: Answer) -> str:
    text = answer.text.strip()
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("message", "error", "Message", "Error"):
                if isinstance(body.get(key), str):
                    text = body[key]
                    break
    text = " ".join(text.split())
    if not text:
        text = answer.reason or "no message"
    return text[:_MESSAGE_LIMIT]


class ModuleClient:
    """All Open API requests to one module. Thread-safe (one connection per request)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self._address = parse_address(address)
        self.address: str = self._address.text
        self.base_url: str = f"http://{self._address.netloc}/rest/rec"
        self.timeout = float(timeout)

    @property
    def host(self) -> str:
        """Host for the stream socket (IPv6 zone index kept, no brackets)."""
        return self._address.host

    @property
    def port(self) -> int:
        return self._address.port

    def __repr__(self) -> str:
        return f"ModuleClient({self.address!r})"

    def with_timeout(self, timeout: float) -> ModuleClient:
        """The same module with another timeout for connecting and for each answer (the
        teardown's short one: a module that does not answer must not hold up the others)."""
        return type(self)(self.address, timeout=timeout)

    # --- plumbing ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: str | None = None,
        read_timeout: float | None = None,
    ) -> Answer:
        """One request; returns the 2xx answer or raises :class:`ModuleError`.

        Plain ``http.client`` on a fresh connection: a module allows few connections, answers
        HTTP/1.0 and closes, and a status poll per module per second must stay cheap."""
        name = f"{method} /rest/rec/{path}"
        headers = {"Connection": "close"}
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            payload = data.encode()
            headers["Content-Type"] = "text/plain"
        wait = self.timeout if read_timeout is None else read_timeout
        for attempt in range(_RETRIES_ON_503 + 1):
            answer = self._exchange(name, method, f"/rest/rec/{path}", payload, headers, wait)
            if answer.status == 503 and attempt < _RETRIES_ON_503:
                time.sleep(0.2 * (attempt + 1))
                continue
            if not 200 <= answer.status < 300:
                raise ModuleError(self.address, name, answer.status, _message_of(answer))
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        name: str,
        method: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        wait: float,
    ) -> Answer:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except TimeoutError:
                raise ModuleError(
                    self.address,
                    name,
                    None,
                    f"unreachable (no connection within {self.timeout:g} s)",
                ) from None
            except OSError as exc:
                raise ModuleError(self.address, name, None, _connection_reason(exc)) from None
            assert conn.sock is not None
            conn.sock.settimeout(wait)
            try:
                conn.request(method, target, body=payload, headers=headers)
                response = conn.getresponse()
                content = response.read()
            except TimeoutError:
                raise ModuleError(
                    self.address, name, None, f"no answer within {wait:g} s"
                ) from None
            except http.client.RemoteDisconnected:
                raise ModuleError(
                    self.address, name, None, "the module closed the connection without answering"
                ) from None
            except http.client.HTTPException as exc:
                raise ModuleError(self.address, name, None, f"bad HTTP answer ({exc!r})") from None
            except OSError as exc:
                raise ModuleError(self.address, name, None, _connection_reason(exc)) from None
            return Answer(response.status, response.reason or "", content)
        finally:
            conn.close()

    def _get_json(self, path: str, read_timeout: float | None = None) -> Any:
        response = self.request("GET", path, read_timeout=read_timeout)
        try:
            return json.loads(response.content.lstrip(b"\xef\xbb\xbf") or b"null")
        except ValueError:
            raise ModuleError(
                self.address, f"GET /rest/rec/{path}", response.status, "answer is not JSON"
            ) from None

    def _get_object(self, path: str) -> dict[str, Any]:
        # Callers index into the answer: anything else would fail later with a bare
        # AttributeError that names neither the module nor the request.
        answer = self._get_json(path)
        if not isinstance(answer, dict):
            raise ModuleError(self.address, f"GET /rest/rec/{path}", 200, "answer is not an object")
        return answer

    def _put(self, path: str, body: Any = None) -> int:
        return self.request("PUT", path, body).status

    def _post(self, path: str, body: Any = None) -> int:
        return self.request("POST", path, body).status

    # --- module -----------------------------------------------------------------------------

    def info(self) -> ModuleInfo:
        raw = self._get_json("module/info")
        if not isinstance(raw, dict):
            raise ModuleError(
                self.address, "GET /rest/rec/module/info", 200, "answer is not an object"
            )
        return ModuleInfo.from_json(raw)

    def set_time(self, ms_since_epoch: int | None = None) -> None:
        """PUT module/time with a bare decimal body (ignored once the module clock is set)."""
        ms = int(time.time() * 1000) if ms_since_epoch is None else int(ms_since_epoch)
        self.request("PUT", "module/time", data=str(ms))

    def reboot(self) -> None:
        self._put("reboot")

    # --- status -----------------------------------------------------------------------------

    def onchange(self, last: int | None = None) -> dict[str, Any]:
        """The status object. With ``last`` equal to the module's current ``lastUpdateTag`` the
        module holds the answer until something changes (at most 30 s): a long poll."""
        path = "onchange" if last is None else f"onchange?last={int(last)}"
        read_timeout = self.timeout + (LONG_POLL_CAP_S if last is not None else 0.0)
        for attempt in range(2):
            status = self._get_json(path, read_timeout=read_timeout)
            if isinstance(status, dict) and status:
                return status
            if attempt == 0:
                path = "onchange"  # an empty answer: ask again without waiting
                read_timeout = self.timeout
        raise ModuleError(self.address, "GET /rest/rec/onchange", 200, "empty status answer")

    # --- synchronisation --------------------------------------------------------------------

    def get_syncmode(self) -> dict[str, Any]:
        return self._get_object("syncmode")

    def set_syncmode(self, synchronization: dict[str, Any]) -> None:
        self._put("syncmode", {"synchronization": synchronization})

    def set_ptp(self, domain: int, preferred_master: bool, settime_ms: int | None = None) -> None:
        """PTP sync parameters as HBK's multi-module tutorial sends them."""
        params: dict[str, Any] = {"mode": "ptp", "domain": int(domain)}
        if settime_ms is not None:
            params.update({"settime": int(settime_ms), "difftime": 0})
        params["preferredMaster"] = bool(preferred_master)
        self.set_syncmode(params)

    def set_standalone(self) -> None:
        self.set_syncmode({"mode": "stand-alone"})

    # --- recorder life cycle ----------------------------------------------------------------

    def open(self, single_module: bool = True, detect_transducers: bool = False) -> None:
        self._put(
            "open",
            {
                "singleModule": bool(single_module),
                "performTransducerDetection": bool(detect_transducers),
            },
        )

    def create(self) -> None:
        self._put("create")

    def cancel(self) -> None:
        self._put("cancel")

    def synchronize(self) -> None:
        self._put("synchronize")

    def start_streaming(self) -> None:
        self._put("startstreaming")

    def start_measurement(self) -> int:
        """POST measurements; a PTP slave may answer 202 (armed, waiting for the trigger)."""
        return self._post("measurements")

    def stop_measurement(self) -> None:
        self._put("measurements/stop")

    def finish(self) -> None:
        self._put("finish")

    def close(self) -> None:
        self._put("close")

    # --- channels ---------------------------------------------------------------------------

    def default_setup(self) -> dict[str, Any]:
        return self._get_object("channels/input/default")

    def get_setup(self) -> dict[str, Any]:
        return self._get_object("channels/input")

    def put_setup(self, setup: dict[str, Any]) -> None:
        self._put("channels/input", setup)

    def detect_transducers(self) -> None:
        self._post("channels/input/all/transducers/detect")

    def transducers(self) -> list[dict[str, Any] | None]:
        result = self._get_json("channels/input/all/transducers")
        if not isinstance(result, list):
            raise ModuleError(
                self.address,
                "GET /rest/rec/channels/input/all/transducers",
                200,
                "answer is not a list",
            )
        return result

    # --- generator (PROTOCOL.md §3.8, §5.7) ---------------------------------------------------

    def generator_default(self) -> dict[str, Any]:
        return self._get_object("generator/output/default")

    def generator_setup(self) -> dict[str, Any]:
        return self._get_object("generator/output")

    def generator_stream_ports(self) -> dict[int, int]:
        """Output number → TCP port of every output whose input 1 is a streamed waveform
        (read from GET generator/output after the PUT, as HBK's clients do)."""
        ports = {}
        for output in self.generator_setup().get("outputs", []):
            for item in output.get("inputs", []) if isinstance(output, dict) else []:
                streams = isinstance(item, dict) and item.get("signalType") == "stream"
                if streams and isinstance(item.get("port"), int):
                    ports[int(output["number"])] = item["port"]
        return ports

    def set_generator(self, outputs: list[dict[str, Any]]) -> None:
        """PUT generator/output: one object per output (number, gain, offset, inputs, …)."""
        self._put("generator/output", {"outputs": outputs})

    def prepare_generator(self, outputs: list[int]) -> None:
        self._put("generator/prepare", _output_list(outputs))

    def start_generator(self, outputs: list[int]) -> None:
        """Immediate on a single module; on a multi-module session at the next ``apply``."""
        self._put("generator/start", _output_list(outputs))

    def stop_generator(self, outputs: list[int]) -> None:
        self._put("generator/stop", _output_list(outputs))

    def apply(self) -> None:
        """PUT apply, to the trigger master only: starts every started generator in sync."""
        self._put("apply")

    # --- streaming --------------------------------------------------------------------------

    def destination_socket(self) -> int:
        answer = self._get_json("destination/socket")
        try:
            return int(answer["tcpPort"])
        except (TypeError, KeyError, ValueError):
            raise ModuleError(
                self.address, "GET /rest/rec/destination/socket", 200, f"no tcpPort in {answer!r}"
            ) from None

    def destination_sockets(self) -> list[int]:
        answer = self._get_json("destination/sockets")
        ports = answer.get("tcpPorts") if isinstance(answer, dict) else answer  # Q6: both shapes
        try:
            return [int(p) for p in ports]
        except (TypeError, ValueError):
            raise ModuleError(
                self.address, "GET /rest/rec/destination/sockets", 200, f"no tcpPorts in {answer!r}"
            ) from None

    def connect_stream(self, port: int, timeout: float | None = None) -> socket.socket:
        """A connected TCP stream socket to ``port`` on this module (IPv6 zone kept)."""
        try:
            sock = socket.create_connection(
                (self.host, int(port)), timeout=self.timeout if timeout is None else timeout
            )
        except OSError as exc:
            raise ModuleError(
                self.address, f"connect stream port {port}", None, exc.strerror or str(exc)
            ) from None
        sock.settimeout(None)
        return sock


def _output_list(outputs: list[int]) -> dict[str, Any]:
    return {"outputs": [{"number": int(n)} for n in outputs]}


def _connection_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(exc, ConnectionResetError):
        return "the module reset the connection"
    if isinstance(exc, socket.gaierror):
        return "unreachable (host name does not resolve)"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"unreachable ({reason[:_MESSAGE_LIMIT]})"
