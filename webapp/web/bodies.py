"""What a request body must be before any handler reads it: one JSON object of plain values.

HTTP bodies (:func:`http_object`) and Socket.IO event data (:func:`check_object`) pass the same
checks, so a script cannot get past a rule by choosing the transport:

* a JSON object, not an array, string, number or form (a form POST must not start a capture
  with every default);
* finite numbers only (``NaN``, ``Infinity`` and ``1e999`` would be stored and make the state
  the dashboard serves invalid JSON);
* at most :data:`MAX_DEPTH` levels of nesting;
* at most :data:`MAX_BODY` bytes (Flask answers 413 above ``MAX_CONTENT_LENGTH``).

Errors name the field by its path (``setup.channels``) and never echo the body back.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BODY = 1_000_000
"""Largest request body in bytes, for every route including login (413 above it)."""
MAX_DEPTH = 16
"""Deepest nesting of objects and lists a request may carry (the setup needs 4)."""


class BodyError(ValueError):
    def __init__(self, field: str | None, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


def _refuse_constant(name: str) -> Any:
    raise BodyError(None, f"numbers must be finite, not {name}")


def _path(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def check_plain(value: Any, where: str = "", depth: int = 0) -> None:
    """Refuse non-finite numbers and deep nesting anywhere inside ``value``."""
    if depth > MAX_DEPTH:
        raise BodyError(where or None, f"the request is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise BodyError(where or None, f"{where or 'a number'} must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(item, _path(where, key), depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]" if where else f"[{i}]", depth + 1)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number" if isinstance(value, int | float) else type(value).__name__


def check_object(value: Any, none_is_empty: bool = True) -> dict[str, Any]:
    """``value`` (already parsed, e.g. Socket.IO data) if it is a plain JSON object."""
    if value is None and none_is_empty:
        return {}
    if not isinstance(value, dict):
        raise BodyError(None, f"the request must be a JSON object, not {_kind(value)}")
    check_plain(value)
    return value


def parse_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw`` (an empty body is ``{}``), or :class:`BodyError`."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyError(None, f"the request is nested more than {MAX_DEPTH} levels deep") from None
    except BodyError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: position only, no echo
        where = f" (at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise BodyError(None, f"the request body is not valid JSON{where}") from None
    return check_object(value, none_is_empty=False)


def http_object() -> dict[str, Any]:
    """The current Flask request's body as a checked JSON object."""
    from flask import request

    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BodyError(None, "the request body must be JSON (Content-Type: application/json)", 415)
    raw = request.get_data(cache=True)
    if raw.strip() and not request.is_json:
        raise BodyError(None, "the request body must be JSON (Content-Type: application/json)", 415)
    return parse_object(raw)


def register_errors(app: Any) -> None:
    """Short JSON answers for bodies refused before any handler ran (no echo of the body)."""
    from flask import jsonify

    @app.errorhandler(413)
    def _too_large(_: Any) -> Any:
        return jsonify(error=f"the request body is larger than {MAX_BODY} bytes"), 413

    @app.errorhandler(RecursionError)
    def _too_deep(_: Any) -> Any:  # a JSON parser elsewhere (e.g. login) met deep nesting
        return jsonify(error=f"the request is nested more than {MAX_DEPTH} levels deep"), 400
