"""The line between the engine and a receiver worker (:mod:`webapp.capture.workers`): a 4-byte
big-endian length, then a pickled tuple whose first item names the message. Only the engine
and its own workers speak it. Standard library only."""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!I")


def send_message(sock: socket.socket, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    parts = bytearray()
    while len(parts) < n:
        chunk = sock.recv(n - len(parts))
        if not chunk:
            return None
        parts += chunk
    return bytes(parts)


def read_message(sock: socket.socket) -> tuple[Any, ...] | None:
    """The next message, or None when the other end closed the line."""
    head = _read_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    body = _read_exactly(sock, _LENGTH.unpack(head)[0])
    if body is None:
        return None
    message = pickle.loads(body)
    assert isinstance(message, tuple)
    return message
