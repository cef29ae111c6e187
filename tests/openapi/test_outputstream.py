"""The client side of streamed generator outputs (stream-format.md §13): the words it writes
and the slices it sends them in, against a plain socket standing in for the module."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from webapp.openapi.outputstream import (
    FULL_SCALE_COUNTS,
    SLICE_SAMPLES,
    OutputStreamer,
    OutputStreamError,
    array_slices,
    output_rate,
    rate_exponent,
    to_words,
)


def test_words_are_little_endian_int32_with_hbks_full_scale() -> None:
    words = to_words(np.array([1.0, -1.0, 0.5, 2.0, -3.0, 0.0]))
    values = np.frombuffer(words, dtype="<i4")
    assert values.tolist() == [8372224, -8372224, 4186112, 8372224, -8372224, 0]
    assert FULL_SCALE_COUNTS < 2**23
    assert [output_rate(n) for n in range(4)] == [131072, 65536, 32768, 16384]
    with pytest.raises(OutputStreamError):
        rate_exponent(48000)


def test_a_waveform_goes_out_in_slices_complete_and_in_order() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    reader = threading.Thread(target=accept)
    reader.start()
    wave = np.sin(np.arange(10 * SLICE_SAMPLES + 123) / 50.0) * 0.7
    streamer = OutputStreamer("127.0.0.1", server.getsockname()[1])
    assert streamer.feed(array_slices(wave), until=SLICE_SAMPLES) is False
    assert streamer.sent == SLICE_SAMPLES
    assert streamer.feed(array_slices(wave[SLICE_SAMPLES:])) is True
    streamer.close()
    reader.join(5)
    server.close()
    got = np.frombuffer(bytes(received), dtype="<i4")
    assert got.size == wave.size
    assert np.array_equal(got, np.rint(wave * FULL_SCALE_COUNTS).astype(np.int32))
    with pytest.raises(OutputStreamError, match="cannot connect"):
        OutputStreamer("127.0.0.1", 1, timeout=1)
