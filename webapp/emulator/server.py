"""The HTTP side of an emulated module: its /rest/rec server and the emulator's own endpoints.

Built on the standard library's threading HTTP server, so it runs on real threads in tests and
on green threads once the entry point has monkey-patched with eventlet; every request (long
polls included) has its own thread and none blocks another. Like a real module it speaks
HTTP/1.0 and closes the connection after each answer, and answers 503 to more than
``max_connections`` requests in flight.

Endpoints outside /rest/rec, for tests and demos (docs/emulator.md):

* ``GET /emulator/faults`` — active and scheduled faults, fault event log;
  ``POST /emulator/faults`` ``{"kind": "overload", "arg": 2, "at": 3, "duration": 5}`` sets a
  fault (``"clear": true`` or ``"active": false`` clears it, or every fault without ``kind``;
  ``"channel"`` or ``"path"`` may stand for ``"arg"``);
  ``DELETE /emulator/faults`` clears all.
* ``GET /emulator/requests`` — the module's request log (method, path, status, body);
  ``DELETE /emulator/requests`` empties it.
* ``GET /emulator/info`` — type, serial, stream ports, rig, current measurement's T0.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from webapp.emulator.faults import FaultSpec, FaultSpecError, make_fault
from webapp.emulator.module import ModuleEmulator
from webapp.emulator.rest import Request, Response, handle, parse_query

log = logging.getLogger("webapp.emulator.http")

MAX_BODY = 4 * 1024 * 1024
UNREACHABLE_HOLD_SECONDS = 60.0


class ModuleHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, module: ModuleEmulator, host: str, port: int) -> None:
        self.module = module
        self.in_flight = 0
        self.in_flight_lock = threading.Lock()
        super().__init__((host, port), ModuleRequestHandler)
        self.address = f"{host}:{self.server_address[1]}"


class ModuleRequestHandler(BaseHTTPRequestHandler):
    server: ModuleHTTPServer
    protocol_version = "HTTP/1.0"
    server_version = "LAN-XI-emulator/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # One line per request is written by _answer; the stdlib's own lines are not needed.
        pass

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s: " + format, self.server.address, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _dispatch(self) -> None:
        self._received = time.time()  # the request log orders requests by arrival
        path, _, query = self.path.partition("?")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._answer(path, b"", Response(400, "bad or too large Content-Length"))
            return
        body = self.rfile.read(length) if length else b""
        if path.lower().startswith("/emulator/"):
            self._answer(path, body, self._control(path.lower().rstrip("/"), body), record=False)
            return
        module = self.server.module
        if not module.reachable():
            self._hold_unanswered(path)
            return
        with self.server.in_flight_lock:
            self.server.in_flight += 1
            busy = self.server.in_flight > module.options.max_connections
        try:
            if busy:
                response = Response(503, "too many concurrent connections")
            elif path.lower().rstrip("/") in ("", "/"):
                response = Response(200, None)
                self._answer_html(path)
                return
            else:
                request = Request(self.command, path, parse_query(query), body)
                try:
                    response = handle(module, request)
                except Exception as exc:  # a bug must not kill the module
                    log.exception("%s: %s %s failed", self.server.address, self.command, path)
                    response = Response(500, f"{self.command} {path}: {exc}")
            if not module.reachable():
                # The module went away while this request was in progress (reboot is answered
                # first on real modules; an "unreachable" fault is not).
                if request_is_reboot(path):
                    self._answer(path, body, response)
                else:
                    self._hold_unanswered(path)
                return
            self._answer(path, body, response)
        finally:
            with self.server.in_flight_lock:
                self.server.in_flight -= 1

    def _hold_unanswered(self, path: str) -> None:
        """An unreachable module answers nothing: keep the client waiting, then hang up."""
        module = self.server.module
        log.info(
            "%s %s %s (not answered: module unreachable)", self.server.address, self.command, path
        )
        module.log_request(
            {"time": time.time(), "method": self.command, "path": path, "status": None, "body": ""}
        )
        with module.cond:
            module.cond.wait_for(
                lambda: module.reachable() or module._stopped, UNREACHABLE_HOLD_SECONDS
            )
        self.close_connection = True

    def _answer_html(self, path: str) -> None:
        m = self.server.module
        html = (
            f"<!doctype html><title>{m.name}</title><h1>{m.name}</h1>"
            f"<p>Emulated LAN-XI module type {m.profile.number}, serial {m.serial}.</p>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(html)
        log.info("%s %s %s %d", self.server.address, self.command, path, 200)

    def _answer(self, path: str, body: bytes, response: Response, record: bool = True) -> None:
        data, content_type = response.encode()
        if record:
            # Logged before the answer goes out: a client that sends its next request as soon
            # as it has this answer finds this one in the log first, in order.
            self.server.module.log_request(
                {
                    "time": time.time(),
                    "received": getattr(self, "_received", None),
                    "method": self.command,
                    "path": path,
                    "query": self.path.partition("?")[2],
                    "status": response.status,
                    "body": body[:2000].decode("utf-8", errors="replace"),
                }
            )
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            pass  # the client went away; nothing to tell it
        log.info("%s %s %s %d", self.server.address, self.command, path, response.status)

    # --- /emulator/* -------------------------------------------------------------------------

    def _control(self, path: str, body: bytes) -> Response:
        module = self.server.module
        try:
            if path == "/emulator/faults":
                if self.command == "GET":
                    return Response(200, module.faults_snapshot())
                if self.command == "DELETE":
                    module.clear_fault(None)
                    return Response(200, module.faults_snapshot())
                if self.command in ("POST", "PUT"):
                    return self._set_fault(module, body)
            elif path == "/emulator/requests":
                if self.command == "GET":
                    return Response(200, list(module.requests))
                if self.command == "DELETE":
                    module.requests.clear()
                    return Response(200, [])
            elif path == "/emulator/info":
                if self.command == "GET":
                    info = module.snapshot()
                    info["address"] = self.server.address
                    return Response(200, info)
            else:
                return Response(404, f"{path}: no such emulator endpoint")
            return Response(405, f"{self.command} is not allowed on {path}")
        except (FaultSpecError, ValueError, TypeError) as exc:
            return Response(400, str(exc))

    def _set_fault(self, module: ModuleEmulator, body: bytes) -> Response:
        try:
            req = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Response(400, f"fault request is not JSON: {exc}")
        if not isinstance(req, dict):
            return Response(400, 'a fault request is an object: {"kind": ..., "arg": ...}')
        kind = req.get("kind")
        # "channel"/"path" name the argument too; "active": false clears like "clear": true.
        clear = bool(req.get("clear", False)) or req.get("active", True) is False
        arg_field = next((k for k in ("arg", "channel", "path") if req.get(k) is not None), "arg")
        arg = req.get(arg_field)
        if kind is None:
            if clear:
                module.clear_fault(None)
                return Response(200, module.faults_snapshot())
            return Response(400, "kind: a fault request needs 'kind' (or 'clear': true)")
        try:
            fault = make_fault(kind, arg)
            if clear:
                module.clear_fault(fault)
                return Response(200, module.faults_snapshot())
            spec = FaultSpec(0, fault, _seconds(req, "at"), _seconds(req, "duration"))
            module.schedule_fault(spec)
        except FaultSpecError as exc:
            # The message starts with the request's field at fault, as the client spelled it.
            field = arg_field if exc.field == "arg" else exc.field
            return Response(400, f"{field}: {exc}" if field else str(exc))
        return Response(200, module.faults_snapshot())


def _seconds(req: dict[str, Any], key: str) -> float | None:
    value = req.get(key)
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise FaultSpecError(f"must be a number of seconds from 0 (got {value!r})", key) from None
    if not seconds >= 0:
        raise FaultSpecError(f"must be a number of seconds from 0 (got {value!r})", key)
    return seconds


def request_is_reboot(path: str) -> bool:
    return path.lower().rstrip("/").endswith("/reboot")
