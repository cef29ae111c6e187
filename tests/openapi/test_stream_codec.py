"""The stream codec against the worked examples of stream-format.md §12 and round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from webapp.openapi import stream
from webapp.openapi.model import scale_factor
from webapp.openapi.stream import (
    DataQuality,
    Interpretation,
    SignalData,
    SignalInterpretation,
    StreamDecoder,
    StreamFormatError,
    Validity,
    decode_int24,
    encode_data_quality,
    encode_int24,
    encode_interpretation,
    encode_signal_data,
    ticks_per_sample,
)

# 2023-11-14 22:13:20.250 UTC in 2^-32 s ticks (stream-format.md §12)
T0 = 7_301_444_404_273_741_824

INTERPRETATION_HEX = """
42 4b 14 00 08 00 00 00 00 00 00 00 20 00 00 00
00 00 00 40 00 f1 53 65 58 00 00 00 01 00 01 00
00 00 02 00 03 00 00 00 01 00 02 00 00 00 08 00
a2 9c 68 57 21 c5 27 40 01 00 03 00 00 00 08 00
00 00 00 00 00 00 00 00 01 00 04 00 00 00 0c 00
11 00 00 00 01 00 00 00 00 00 00 00 01 00 06 00
00 00 02 00 00 00 00 00 01 00 05 00 00 00 03 00
01 00 56 00
"""

SIGNAL_DATA_HEX = """
42 4b 14 00 01 00 00 00 00 00 00 00 20 00 00 00
00 00 00 40 00 f1 53 65 11 00 00 00 01 00 00 00
01 00 03 00 a0 86 01 60 79 fe ff ff 7f
"""

DATA_QUALITY_HEX = """
42 4b 14 00 02 00 00 00 00 00 00 00 20 00 00 00
00 00 01 40 00 f1 53 65 08 00 00 00 01 00 01 00
02 00 04 00
"""

AUX_HEX = """
42 4b 14 00 0b 00 00 00 00 00 00 00 20 00 00 00
00 00 00 40 00 f1 53 65 1c 00 00 00 01 00 00 00
65 00 01 00 ca 15 70 00 00 00 03 00 e0 07 00 00
05 06 07 00 00 00 00 00
"""


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(" ".join(text.split()))


def example_interpretation() -> SignalInterpretation:
    return SignalInterpretation(
        1, scale_factor=scale_factor("10 Vpeak", 1), sample_rate=131072, unit="V"
    )


def test_worked_example_interpretation_bytes() -> None:
    assert encode_interpretation(T0, example_interpretation()) == hexbytes(INTERPRETATION_HEX)


def test_worked_example_signal_data_bytes() -> None:
    values = np.array([100_000, -100_000, 8_388_607])
    assert encode_signal_data(T0, 1, values) == hexbytes(SIGNAL_DATA_HEX)


def test_worked_example_data_quality_bytes() -> None:
    assert encode_data_quality(T0 + 65_536, [(1, Validity.CLIPPED)]) == hexbytes(DATA_QUALITY_HEX)


def test_worked_example_decodes() -> None:
    data = b"".join(
        hexbytes(h) for h in (INTERPRETATION_HEX, DATA_QUALITY_HEX, SIGNAL_DATA_HEX, AUX_HEX)
    )
    decoder = StreamDecoder()
    interp, quality, signal, aux = decoder.feed(data)
    assert isinstance(interp, Interpretation)
    (s,) = interp.signals
    assert (s.signal_id, s.data_type, s.scale_factor, s.offset) == (1, 3, 11.88502, 0.0)
    assert (s.sample_rate, s.vector_length, s.unit) == (131072, 0, "V")
    assert s.period is not None and (s.period.family.k, s.period.count) == (17, 1)
    assert isinstance(quality, DataQuality)
    assert quality.qualities == [(1, Validity.CLIPPED)]
    assert quality.time == T0 + 2 * ticks_per_sample(131072)
    assert isinstance(signal, SignalData)
    assert signal.time == T0
    assert signal.blocks[0].values.tolist() == [100_000, -100_000, 8_388_607]
    physical = decoder.physical(signal.blocks[0])
    assert physical[0] == pytest.approx(100_000 / 2**23 * 11.88502)  # 0.14168 V
    assert physical[2] == pytest.approx(11.885019, abs=1e-6)  # clipping
    assert aux.message_type == 11 and len(aux.content) == 28
    assert decoder.pending == 0 and decoder.finish() == 0


def test_time_arithmetic_of_the_worked_example() -> None:
    assert T0 == 0x6553F100_40000000
    assert ticks_per_sample(131072) == 32_768
    assert T0 + 4096 * ticks_per_sample(131072) == 0x6553F100_48000000
    assert stream.ticks_to_ns(T0) == 1_700_000_000_250_000_000
    assert stream.ticks_from_ns(1_700_000_000_250_000_000) == T0


@given(arrays(np.int32, st.integers(1, 2000), elements=st.integers(-(1 << 23), (1 << 23) - 1)))
def test_int24_round_trip(values: np.ndarray) -> None:
    assert np.array_equal(decode_int24(encode_int24(values)), values)


def test_int24_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_int24(np.array([1 << 23]))


units = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, (1 << 63) - 1),
    sid=st.integers(1, 0x7FFF),
    scale=st.floats(allow_nan=False, allow_infinity=False),
    rate_exp=st.integers(7, 19),
    unit=units,
    blocks=st.lists(
        arrays(np.int32, st.integers(1, 300), elements=st.integers(-(1 << 23), (1 << 23) - 1)),
        min_size=1,
        max_size=5,
    ),
    validity=st.integers(0, 0x1F),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_stream_round_trip_in_arbitrary_chunks(
    start: int,
    sid: int,
    scale: float,
    rate_exp: int,
    unit: str,
    blocks: list[np.ndarray],
    validity: int,
    cuts: list[int],
) -> None:
    rate = 1 << rate_exp
    interp = SignalInterpretation(sid, scale_factor=scale, sample_rate=rate, unit=unit)
    step = ticks_per_sample(rate)
    parts = [encode_interpretation(start, interp), encode_data_quality(start, [(sid, validity)])]
    t = start
    for block in blocks:
        parts.append(encode_signal_data(t % (1 << 64), sid, block))
        t += len(block) * step
    data = b"".join(parts)
    # Feed it cut at arbitrary places, as TCP would deliver it.
    positions = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    decoder = StreamDecoder()
    messages = []
    for a, b in zip(positions, positions[1:], strict=False):
        messages += decoder.feed(data[a:b])
    assert decoder.finish() == 0
    assert len(messages) == 2 + len(blocks)
    got = decoder.interpretations[sid]
    assert (got.scale_factor, got.sample_rate, got.unit, got.data_type) == (scale, rate, unit, 3)
    assert messages[1].qualities == [(sid, validity)]
    t = start
    for message, block in zip(messages[2:], blocks, strict=True):
        assert message.time == t % (1 << 64)
        assert message.blocks[0].signal_id == sid
        assert np.array_equal(message.blocks[0].values, block)
        t += len(block) * step


def test_descriptor_padding_is_zero_and_aligned() -> None:
    for unit in ("", "V", "Pa", "m/s", "m/s^2", "RPM"):
        message = encode_interpretation(T0, SignalInterpretation(3, sample_rate=65536, unit=unit))
        content = message[stream.HEADER_SIZE :]
        assert len(content) % 4 == 0
        decoded = StreamDecoder().feed(message)[0]
        assert decoded.signals[0].unit == unit


def test_truncated_final_message_is_reported_not_decoded() -> None:
    whole = encode_interpretation(T0, example_interpretation()) + encode_signal_data(
        T0, 1, np.arange(4096)
    )
    for cut in (len(whole) - 1, len(whole) - 4000, 116 + 5):
        decoder = StreamDecoder()
        messages = decoder.feed(whole[:cut])
        assert len(messages) == 1
        assert decoder.finish() == cut - 116


def test_read_messages_from_a_file_object() -> None:
    data = encode_interpretation(T0, example_interpretation()) + encode_signal_data(
        T0, 1, np.arange(10)
    )
    messages = list(stream.read_messages(io.BytesIO(data + data[:7]), chunk_size=33))
    assert [m.message_type for m in messages] == [8, 1]


def test_unknown_types_are_skipped_by_length() -> None:
    unknown = stream.encode_header(9, T0, 4) + b"\1\2\3\4"
    data = unknown + encode_signal_data(T0, 1, np.arange(4))
    messages = StreamDecoder().feed(data)
    assert [m.message_type for m in messages] == [9, 1]


def test_lost_framing_is_an_error() -> None:
    with pytest.raises(StreamFormatError):
        StreamDecoder().feed(b"XX" + b"\0" * 40)
