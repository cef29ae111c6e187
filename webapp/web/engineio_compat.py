"""A fix for binary pushes to a mix of WebSocket and long-polling viewers.

python-socketio encodes an emit to several viewers once and hands the same Engine.IO packets
to each of them; python-engineio's ``Packet.encode`` caches its first encoding whatever its
``b64`` argument. A binary packet (a waveform's or a spectrum's values) first sent to a
WebSocket viewer is cached as raw bytes, and a viewer still on long polling (before its
upgrade, or behind a proxy without WebSocket) then gets those bytes where its payload needs
base64 text: the poll fails with ``TypeError: can only concatenate str (not "bytes") to str``
and answers 500. Here a binary packet keeps one encoding per ``b64`` value.
"""

from __future__ import annotations

from typing import Any

from engineio import packet

_MARK = "_encodes_per_b64"


def install() -> None:
    """Make ``engineio.packet.Packet.encode`` cache binary packets per ``b64`` (idempotent)."""
    original = packet.Packet.encode
    if getattr(original, _MARK, False):
        return

    def encode(self: Any, b64: bool = False) -> Any:
        if not self.binary:
            return original(self, b64)
        cache = self.__dict__.setdefault("_encoded", {})
        if b64 not in cache:
            self.encode_cache = None
            cache[b64] = original(self, b64)
        self.encode_cache = None  # never let the other transport's encoding leak through
        return cache[b64]

    setattr(encode, _MARK, True)
    packet.Packet.encode = encode  # type: ignore[method-assign]
