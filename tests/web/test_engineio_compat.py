"""A binary push shared by a WebSocket viewer and a long-polling one (webapp/web/engineio_compat)."""

from __future__ import annotations

import base64
import importlib

import pytest
from engineio import packet, payload

from webapp.web import engineio_compat


def _shared_binary_packet_both_ways() -> tuple[object, str]:
    pkt = packet.Packet(packet.MESSAGE, b"\x00\x01binary values")
    raw = pkt.encode(b64=False)  # the WebSocket viewer's send comes first
    return raw, payload.Payload(packets=[pkt]).encode()  # then the polling viewer's payload


def test_the_library_alone_fails_the_polling_viewer():
    importlib.reload(packet)  # the library's own encode, without the fix
    try:
        with pytest.raises(TypeError):
            _shared_binary_packet_both_ways()
    finally:
        importlib.reload(packet)
        engineio_compat.install()


def test_with_the_fix_each_transport_gets_its_own_encoding():
    engineio_compat.install()
    engineio_compat.install()  # idempotent
    raw, polled = _shared_binary_packet_both_ways()
    assert raw == b"\x00\x01binary values"
    assert polled == "b" + base64.b64encode(b"\x00\x01binary values").decode()
    text = packet.Packet(packet.MESSAGE, "hello")
    assert text.encode() == "4hello" and text.encode(b64=True) == "4hello"
