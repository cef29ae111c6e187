"""Stream decoder throughput, beside a straightforward per-sample pure-Python decode.

Builds a stream like one full-bandwidth Type 3050 module sends (6 signals × 131072 S/s, 4096-value
blocks, round-robin), then decodes it

* with the project's incremental decoder, fed in 64 KiB chunks as a socket would deliver them,
  every sample turned into an int32 array (the worst case: the live path decodes far less);
* with a per-sample pure-Python decoder (struct header parsing, one int per sample), the way a
  first attempt would, on a slice of the same bytes.

Both figures come from the same run on the same bytes, so the ratio is meaningful even on a
noisy machine. Usage: python bench/decoder_throughput.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import struct
import time

import numpy as np

from webapp.openapi.stream import (
    HEADER_SIZE,
    SignalData,
    SignalInterpretation,
    StreamDecoder,
    encode_interpretation,
    encode_signal_data,
    ticks_per_sample,
)

RATE = 131072
SIGNALS = 6
BLOCK = 4096


def make_stream(seconds: float) -> tuple[bytes, int]:
    rng = np.random.default_rng(1)
    t0 = int(time.time()) << 32
    parts = [
        encode_interpretation(t0, SignalInterpretation(s, 11.88502, sample_rate=RATE, unit="V"))
        for s in range(1, SIGNALS + 1)
    ]
    blocks = int(seconds * RATE / BLOCK)
    pool = [rng.integers(-(1 << 23), 1 << 23, BLOCK, dtype=np.int32) for _ in range(8)]
    step = ticks_per_sample(RATE) * BLOCK
    for b in range(blocks):
        for s in range(1, SIGNALS + 1):
            parts.append(encode_signal_data(t0 + b * step, s, pool[(b + s) % len(pool)]))
    return b"".join(parts), blocks * SIGNALS * BLOCK


def decode_numpy(data: bytes, chunk: int = 65536) -> int:
    decoder = StreamDecoder()
    samples = 0
    for pos in range(0, len(data), chunk):
        for message in decoder.feed(data[pos : pos + chunk]):
            if isinstance(message, SignalData):
                for block in message.blocks:
                    samples += len(block.values)
    return samples


def decode_pure_python(data: bytes) -> int:
    """One Python int per sample, as a first straightforward decoder does."""
    pos, samples, out = 0, 0, []
    while pos + HEADER_SIZE <= len(data):
        mtype = struct.unpack_from("<H", data, pos + 4)[0]
        length = struct.unpack_from("<I", data, pos + 24)[0]
        end = pos + HEADER_SIZE + length
        if end > len(data):
            break
        if mtype == 1:
            q = pos + HEADER_SIZE
            nsig = struct.unpack_from("<H", data, q)[0]
            q += 4
            for _ in range(nsig):
                _sid, nval = struct.unpack_from("<HH", data, q)
                q += 4
                values = []
                for i in range(nval):
                    b0, b1, b2 = data[q + 3 * i], data[q + 3 * i + 1], data[q + 3 * i + 2]
                    v = b0 | (b1 << 8) | (b2 << 16)
                    values.append(v - (1 << 24) if v & 0x800000 else v)
                out = values
                samples += nval
                q += 3 * nval
        pos = end
    del out
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="stream length to decode")
    parser.add_argument("--python-mb", type=float, default=4.0, help="MB for the pure-Python run")
    args = parser.parse_args()

    data, total = make_stream(args.seconds)
    mb = len(data) / 1e6

    start = time.perf_counter()
    assert decode_numpy(data) == total
    fast = time.perf_counter() - start

    cut = data[: int(args.python_mb * 1e6)]
    start = time.perf_counter()
    slow_samples = decode_pure_python(cut)
    slow = time.perf_counter() - start

    print(
        f"stream: {mb:.1f} MB, {total / 1e6:.1f} M samples ({args.seconds:g} s of a 3050 at 51.2 kHz)"
    )
    print(f"numpy decoder      : {mb / fast:8.1f} MB/s  {total / fast / 1e6:8.2f} M samples/s")
    print(
        f"pure-Python decoder: {len(cut) / 1e6 / slow:8.1f} MB/s  "
        f"{slow_samples / slow / 1e6:8.2f} M samples/s  (on the first {len(cut) / 1e6:.1f} MB)"
    )
    print(f"speed-up           : {(mb / fast) / (len(cut) / 1e6 / slow):8.1f}x")
    realtime = total / fast / (SIGNALS * RATE)
    print(f"real-time factor   : {realtime:8.1f} full-bandwidth 3050 modules per core")


if __name__ == "__main__":
    main()
