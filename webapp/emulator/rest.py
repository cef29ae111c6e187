"""The /rest/rec routes of an emulated module and the client quirks they accept.

Paths are case-insensitive; JSON bodies may start with a BOM, carry trailing characters after
the first complete value (HBK's C# examples send extra closing braces) or be form-encoded
(MATLAB's ``webwrite``); ``module/time`` takes bare digits whatever the content type; an empty
body means defaults (PROTOCOL.md §2.3). Answers: JSON for GETs, empty bodies for PUT/POST,
plain-text one-line messages for errors (Q16).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from webapp.emulator.generator import generator_request
from webapp.emulator.module import ModuleEmulator, wake_all
from webapp.emulator.resterror import RestError
from webapp.emulator.waveforms import WaveformError


@dataclass
class Request:
    method: str
    path: str  # as received, without the query string
    query: dict[str, list[str]]
    body: bytes


@dataclass
class Response:
    status: int = 200
    payload: Any = None  # dict/list -> JSON, str -> text/plain, None -> empty

    def encode(self) -> tuple[bytes, str]:
        if self.payload is None:
            return b"", "text/plain"
        if isinstance(self.payload, str):
            return (self.payload + "\n").encode("utf-8"), "text/plain; charset=utf-8"
        return json.dumps(self.payload).encode("utf-8"), "application/json"


def _body_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RestError(400, "the request body is not UTF-8 text") from None
    return text.lstrip("\ufeff").strip()


def _form_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_body(raw: bytes) -> Any:
    """The request body as a value: None if empty; the first JSON value; or form fields."""
    text = _body_text(raw)
    if not text:
        return None
    try:
        value, _end = json.JSONDecoder().raw_decode(text)
        return value
    except json.JSONDecodeError as exc:
        if re.fullmatch(r"[^=&{}\[\]\"]+=[^&]*(&[^=&]+=[^&]*)*", text):
            return {k: _form_value(v) for k, v in parse_qsl(text, keep_blank_values=True)}
        raise RestError(
            400, f"the request body is not valid JSON: {exc.msg} at {exc.pos}"
        ) from None


def parse_time_body(raw: bytes) -> int:
    """module/time: milliseconds since 1970 as bare digits, a JSON number/string or a form."""
    text = _body_text(raw).strip('"').strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    value: Any = None
    with contextlib.suppress(RestError):
        value = parse_body(raw)
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise RestError(400, "module/time: the body must be milliseconds since 1970 as digits")


def _object_or_none(value: Any, what: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise RestError(400, f"{what}: the body must be a JSON object")


Handler = Callable[[ModuleEmulator, Request], Response]


def _ok(_payload: Any = None) -> Response:
    return Response(200, _payload)


def _module_info(m: ModuleEmulator, r: Request) -> Response:
    with m.cond:
        return _ok(m.module_info())


def _module_time(m: ModuleEmulator, r: Request) -> Response:
    m.set_time(parse_time_body(r.body))
    return _ok()


def _get_syncmode(m: ModuleEmulator, r: Request) -> Response:
    with m.cond:
        return _ok(m.sync_settings())


def _put_syncmode(m: ModuleEmulator, r: Request) -> Response:
    wake_all(m.put_syncmode(parse_body(r.body)))
    return _ok()


def _open(m: ModuleEmulator, r: Request) -> Response:
    m.open(_object_or_none(parse_body(r.body), "open"))
    return _ok()


def _simple(action: Callable[[ModuleEmulator], Any]) -> Handler:
    def handler(m: ModuleEmulator, r: Request) -> Response:
        action(m)
        return _ok()

    return handler


def _default_setup(m: ModuleEmulator, r: Request) -> Response:
    with m.cond:
        return _ok(m.default_setup())


def _get_setup(m: ModuleEmulator, r: Request) -> Response:
    return _ok(m.get_setup())


def _put_setup(m: ModuleEmulator, r: Request) -> Response:
    body = parse_body(r.body)
    if body is None:
        raise RestError(400, "channels/input: the body must be a channel setup")
    m.put_setup(body)
    return _ok()


def _transducers(m: ModuleEmulator, r: Request) -> Response:
    return _ok(m.transducers())


def _onchange(m: ModuleEmulator, r: Request) -> Response:
    last = None
    values = r.query.get("last")
    if values:
        try:
            last = int(values[0])
        except ValueError:
            raise RestError(400, f"onchange: last={values[0]!r} is not an integer") from None
    return _ok(m.wait_status(last))


def _socket(m: ModuleEmulator, r: Request) -> Response:
    return _ok(m.destination_ports(multi=False))


def _sockets(m: ModuleEmulator, r: Request) -> Response:
    return _ok(m.destination_ports(multi=True))


def _reboot(m: ModuleEmulator, r: Request) -> Response:
    wake_all(m.reboot())
    return _ok()


def _generator(action: str) -> Handler:
    def handler(m: ModuleEmulator, r: Request) -> Response:
        try:
            return _ok(generator_request(m, action, parse_body(r.body)))
        except WaveformError as exc:
            raise RestError(400, f"{r.method} {r.path}: {exc}") from None

    return handler


def _gps(m: ModuleEmulator, r: Request) -> Response:
    return _ok({"gps": {"quality": "bad"}})


ROUTES: dict[str, dict[str, Handler]] = {
    "module/info": {"GET": _module_info, "PUT": _module_info},
    "module/time": {"PUT": _module_time},
    "syncmode": {"GET": _get_syncmode, "PUT": _put_syncmode},
    "open": {"PUT": _open},
    "close": {"PUT": _simple(ModuleEmulator.close)},
    "create": {"PUT": _simple(ModuleEmulator.create)},
    "cancel": {"PUT": _simple(ModuleEmulator.cancel)},
    "finish": {"PUT": _simple(ModuleEmulator.finish)},
    "reboot": {"PUT": _reboot, "POST": _reboot},
    "channels/input/default": {"GET": _default_setup},
    "channels/input": {"GET": _get_setup, "PUT": _put_setup},
    "channels/all/disable": {"PUT": _simple(ModuleEmulator.disable_all)},
    "channels/input/all/transducers": {"GET": _transducers},
    "channels/input/all/transducers/detect": {"POST": _simple(ModuleEmulator.detect)},
    "onchange": {"GET": _onchange},
    "destination/socket": {"GET": _socket},
    "destination/sockets": {"GET": _sockets},
    "measurements": {"POST": _simple(ModuleEmulator.start_measurement)},
    "measurements/start": {
        "POST": _simple(ModuleEmulator.start_measurement),
        "PUT": _simple(ModuleEmulator.start_measurement),
    },
    "measurements/stop": {"PUT": _simple(ModuleEmulator.stop_measurement)},
    "synchronize": {"PUT": _simple(ModuleEmulator.synchronize)},
    "startstreaming": {"PUT": _simple(ModuleEmulator.start_streaming)},
    "gps": {"GET": _gps},
    "generator/output": {"GET": _generator("get"), "PUT": _generator("output")},
    "generator/output/default": {"GET": _generator("default")},
    "generator/prepare": {"PUT": _generator("prepare")},
    "generator/start": {"PUT": _generator("start")},
    "generator/stop": {"PUT": _generator("stop")},
    "apply": {"PUT": _generator("apply")},
}

PREFIX = "/rest/rec/"


def route_key(path: str) -> str | None:
    """'/REST/rec/Open/' -> 'open'; None outside /rest/rec."""
    low = re.sub(r"/+", "/", path.lower())
    if not low.startswith(PREFIX):
        return None
    return low[len(PREFIX) :].strip("/")


def handle(module: ModuleEmulator, request: Request) -> Response:
    """Answer one /rest/rec request (the server has checked reachability and limits)."""
    key = route_key(request.path)
    methods = ROUTES.get(key or "")
    if methods is None:
        return Response(404, f"{request.path}: no such resource")
    handler = methods.get(request.method)
    if handler is None:
        allowed = ", ".join(sorted(methods))
        return Response(
            405, f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
        )
    if module.fault_http_500(key or ""):
        return Response(500, f"{request.method} {request.path}: internal error (injected fault)")
    try:
        return handler(module, request)
    except RestError as exc:
        return Response(exc.status, exc.message)


def parse_query(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True)
