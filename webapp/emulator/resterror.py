"""What a request handler of the emulated module answers with instead of success, and the
case-insensitive key lookup every handler reads request bodies with."""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """An answer other than success: status code and a one-line plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_field(body: Any, key: str, default: Any = None) -> Any:
    """A key of a JSON object, matched case-insensitively (clients mis-case keys)."""
    if not isinstance(body, dict):
        return default
    if key in body:
        return body[key]
    low = key.lower()
    for k, v in body.items():
        if str(k).lower() == low:
            return v
    return default
