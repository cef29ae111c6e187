"""Feeding a streamed generator output: samples to the module's TCP port (stream-format.md §13).

A generator output whose input 1 has ``signalType: "stream"`` takes its waveform from the
client: ``GET generator/output`` names a TCP port per such output, the client connects and
writes one 32-bit little-endian integer per output sample, no header, no framing. Values are
written as HBK's clients write them: full scale 1.0 → 8 372 224 (0.998 · 2^23), clipped there.
The module must hold at least :data:`PRIME_SAMPLES` before ``generator/start``.

:class:`OutputStreamer` sends a numpy array, or the blocks of a sound file, in small slices
(:data:`SLICE_SAMPLES`): each slice is converted and written on its own and the sender yields
between slices, so under eventlet a long waveform never holds the hub; the module's FIFO and
TCP flow control pace the sending to the output's sample rate.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from webapp import runtime

FULL_SCALE_COUNTS = 8372224
"""What HBK's clients write for full scale (C# OutputStreaming, Rattlesnake)."""
PRIME_SAMPLES = 3 * 6000
"""Samples a client sends before ``generator/start`` (REF17 §6.2, C# ``SAMPLES_TO_PRIME``)."""
SLICE_SAMPLES = 4096
BASE_RATE = 131072


class OutputStreamError(RuntimeError):
    """The waveform cannot be streamed (bad file, wrong rate, connection lost)."""


def output_rate(sampling_rate_exponent: int) -> int:
    """The output's sample rate for a ``samplingRate`` of 0 to 3 (PROTOCOL.md §5.7)."""
    return BASE_RATE >> sampling_rate_exponent


def rate_exponent(sample_rate: float) -> int:
    """The ``samplingRate`` that streams at ``sample_rate`` Hz, or OutputStreamError."""
    for n in range(4):
        if output_rate(n) == sample_rate:
            return n
    rates = ", ".join(f"{output_rate(n)}" for n in range(4))
    raise OutputStreamError(
        f"a generator output streams at {rates} Hz; the waveform is at {sample_rate:g} Hz"
    )


def to_words(values: np.ndarray) -> bytes:
    """Samples (full scale ±1, clipped) as the module's 32-bit little-endian words."""
    counts = np.rint(np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0) * FULL_SCALE_COUNTS)
    return counts.astype("<i4").tobytes()


def array_slices(values: np.ndarray, size: int = SLICE_SAMPLES) -> Iterator[np.ndarray]:
    values = np.asarray(values)
    for i in range(0, values.size, size):
        yield values[i : i + size]


class WaveformFile:
    """A sound file read for one output: one channel, in slices, at the file's own rate."""

    def __init__(self, path: str | Path, channel: int = 1) -> None:
        import soundfile

        self.path = Path(path)
        try:
            info = soundfile.info(str(self.path))
        except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError(RuntimeError)
            raise OutputStreamError(f"waveform file {self.path}: {exc}") from None
        if not 1 <= channel <= info.channels:
            raise OutputStreamError(
                f"waveform file {self.path} has {info.channels} channel(s), not channel {channel}"
            )
        self.channel = channel
        self.sample_rate = int(info.samplerate)
        self.frames = int(info.frames)
        self.sampling_rate_exponent = rate_exponent(info.samplerate)

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def slices(self, size: int = SLICE_SAMPLES) -> Iterator[np.ndarray]:
        import soundfile

        for block in soundfile.blocks(str(self.path), blocksize=size, dtype="float64"):
            yield block if block.ndim == 1 else block[:, self.channel - 1]


class OutputStreamer:
    """The connection to one streamed output's TCP port."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise OutputStreamError(
                f"generator stream {host}:{port}: cannot connect ({exc})"
            ) from None
        self.sent = 0
        self._stop = threading.Event()

    def send(self, values: np.ndarray) -> None:
        """Write one slice (blocks while the module's FIFO is full)."""
        try:
            self._sock.sendall(to_words(values))
        except OSError as exc:
            raise OutputStreamError(
                f"generator stream {self.host}:{self.port}: the module closed the connection "
                f"after {self.sent} samples ({exc})"
            ) from None
        self.sent += int(np.size(values))

    def feed(self, slices: Iterable[np.ndarray], until: int | None = None) -> bool:
        """Send slices until they end, ``until`` samples in all were sent, or :meth:`stop`;
        yields between slices. Returns True when the slices ran out."""
        for part in slices:
            if self._stop.is_set():
                return False
            self.send(part)
            runtime.sleep(0)
            if until is not None and self.sent >= until:
                return False
        return True

    def stop(self) -> None:
        """Ask a running :meth:`feed` to end after its current slice."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a sender blocked in sendall
        with contextlib.suppress(OSError):
            self._sock.close()
