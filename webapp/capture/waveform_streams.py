"""Waveform files streamed through generator outputs during a recording (stream-format.md §13).

A generator output of the capture settings whose input 1 is ``{"signalType": "stream",
"file": PATH, "channel": C}`` plays channel C (default 1) of the sound file PATH: the module gets
the input without ``file``/``channel`` and with the ``samplingRate`` that matches the file's
rate (131072, 65536, 32768 or 16384 Hz). After ``generator/output`` the client reads the
output's TCP port, connects and primes it, and the rest of the file follows in the background
(``generator/start`` goes out meanwhile), in small slices, paced by the module's FIFO. The file ends → the output
plays out and then silence; the recording's end stops the feeding.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from webapp import runtime
from webapp.capture.settings import SettingsError
from webapp.openapi.outputstream import (
    PRIME_SAMPLES,
    OutputStreamer,
    OutputStreamError,
    WaveformFile,
)

CLIENT_KEYS = ("file", "channel")
"""Keys of a streamed input that the dashboard reads and the module never sees."""


@dataclass
class Feeding:
    module: str
    output: int
    streamer: OutputStreamer
    slices: Any
    thread: Any = None


def _stream_input(output: dict[str, Any]) -> dict[str, Any] | None:
    for item in output.get("inputs", []) or []:
        if isinstance(item, dict) and item.get("signalType") == "stream" and "file" in item:
            return item
    return None


def waveform_file(output: dict[str, Any], where: str) -> WaveformFile | None:
    """The file a streamed output plays (checked: readable, a rate the output has)."""
    item = _stream_input(output)
    if item is None:
        return None
    channel = item.get("channel", 1)
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise SettingsError(where, f"output {output.get('number')}: channel must be a number")
    try:
        return WaveformFile(str(item["file"]), channel)
    except OutputStreamError as exc:
        raise SettingsError(where, f"output {output.get('number')}: {exc}") from None


def module_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs as the module gets them: file keys out, the file's samplingRate in."""
    sent = []
    for output in outputs:
        item = _stream_input(output)
        if item is None:
            sent.append(dict(output))
            continue
        wave = waveform_file(output, "generators")
        assert wave is not None
        inputs = []
        for i in output.get("inputs", []):
            if i is item:
                i = {k: v for k, v in i.items() if k not in CLIENT_KEYS}
                i["samplingRate"] = wave.sampling_rate_exponent
            inputs.append(i)
        sent.append({**output, "inputs": inputs})
    return sent


def prime_streams(m: Any, outputs: list[dict[str, Any]]) -> list[Feeding]:
    """After generator/output: connect to each streamed output's port and prime it."""
    files = {int(o["number"]): waveform_file(o, "generators") for o in outputs}
    files = {n: f for n, f in files.items() if f is not None}
    if not files:
        return []
    ports = m.client.generator_stream_ports()
    host = m.client.host
    feeds = []
    for n, wave in sorted(files.items()):
        if n not in ports:
            raise OutputStreamError(
                f"module {m.number} ({m.address}): generator output {n} reports no stream port"
            )
        streamer = OutputStreamer(host, ports[n])
        slices = wave.slices()
        streamer.feed(slices, until=PRIME_SAMPLES)
        feeds.append(Feeding(m.address, n, streamer, slices))
    start_feeding(feeds)
    return feeds


def start_feeding(feeds: list[Feeding]) -> None:
    """Once primed, the rest of every file in the background, already while generator/start
    is on its way (as HBK's C# example does): the module's buffer then never runs dry."""
    for feed in feeds:
        feed.thread = runtime.spawn(_feed, feed, name=f"waveform-{feed.module}-{feed.output}")


def _feed(feed: Feeding) -> None:
    with contextlib.suppress(OutputStreamError):  # closed by the module (stop): nothing to do
        feed.streamer.feed(feed.slices)


def stop_feeding(feeds: list[Feeding]) -> None:
    for feed in feeds:
        feed.streamer.close()
    for feed in feeds:
        if feed.thread is not None:
            feed.thread.join(2.0)
    feeds.clear()
