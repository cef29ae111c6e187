"""A short measurement of one channel of one module, in volts, for a calibration check.

The module must be Idle (no capture, no monitoring on it). It is opened on its own
(``singleModule``), its transducers are detected (TEDS, which also tells whether the input needs
CCLD or the 200 V polarisation), only the channel under test is enabled with a neutral
transducer (sensitivity 1, unit V: the stream carries the connector voltage), the stream is read
for ``settle_s`` + ``seconds``, and the module is returned to Idle whatever happens. Blocking
(plain sockets and HTTP): the web layer runs it with :func:`webapp.runtime.offload`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.calibration.measure import CalibrationError
from webapp.openapi.client import ModuleClient, ModuleError
from webapp.openapi.model import ModuleState, as_bool
from webapp.openapi.stream import SignalData, StreamDecoder

DEFAULT_SECONDS = 1.0
SETTLE_S = 0.25
"""Samples dropped at the start: CCLD and the input's high-pass settle."""
DETECT_TIMEOUT_S = 20.0
NEUTRAL_TRANSDUCER = {
    "requires200V": False,
    "requiresCcld": False,
    "sensitivity": 1.0,
    "serialNumber": 0,
    "type": {"model": "", "number": "None", "prefix": "", "variant": ""},
    "unit": "V",
}


@dataclass
class ChannelRecording:
    volts: np.ndarray
    sample_rate: int
    detected: dict[str, Any] | None
    """The TEDS transducer found on the channel (None: none with TEDS)."""
    module: str
    """The module's name (BK3160-100402)."""


def _key(obj: dict[str, Any], name: str) -> str:
    return next((k for k in obj if str(k).lower() == name.lower()), name)


def record_channel(
    address: str,
    channel: int,
    seconds: float = DEFAULT_SECONDS,
    *,
    ccld: bool | None = None,
    polarisation: bool | None = None,
    timeout: float = 10.0,
) -> ChannelRecording:
    """``seconds`` of ``channel``'s connector voltage; ``ccld``/``polarisation`` None: as the
    detection says."""
    if not 0.2 <= seconds <= 30.0:
        raise CalibrationError("the measurement must last 0.2 to 30 s")
    client = ModuleClient(address, timeout=timeout)
    info = client.info()
    if channel < 1 or channel > info.input_channels:
        raise CalibrationError(
            f"module {info.name} has input channels 1 to {info.input_channels}, not {channel}"
        )
    state = client.onchange().get("moduleState")
    if state != ModuleState.IDLE:
        raise CalibrationError(
            f"module {info.name} is {state}: a calibration check needs it idle "
            "(stop the capture or monitoring first)"
        )
    opened = False
    try:
        client.open(single_module=True, detect_transducers=False)
        opened = True
        client.create()
        client.detect_transducers()
        _wait_detection(client)
        found = client.transducers()
        detected = found[channel - 1] if channel - 1 < len(found) else None
        setup = client.default_setup()
        channels = setup[_key(setup, "channels")]
        for i, ch in enumerate(channels):
            number = int(ch.get(_key(ch, "channel"), i + 1))
            ch[_key(ch, "enabled")] = number == channel
            ch[_key(ch, "destinations")] = ["socket"]
            if number == channel:
                ch[_key(ch, "transducer")] = dict(NEUTRAL_TRANSDUCER)
                need_ccld = as_bool((detected or {}).get("requiresCcld", False))
                need_200v = as_bool((detected or {}).get("requires200V", False))
                ch[_key(ch, "ccld")] = need_ccld if ccld is None else bool(ccld)
                ch[_key(ch, "polvolt")] = need_200v if polarisation is None else bool(polarisation)
        client.put_setup(setup)
        port = client.destination_socket()
        sock = client.connect_stream(port, timeout=timeout)
        try:
            sock.settimeout(timeout)
            client.start_measurement()
            volts, rate = _read(sock, seconds, info.name)
        finally:
            with contextlib.suppress(ModuleError):
                client.stop_measurement()
            sock.close()
        client.finish()
        client.close()
        opened = False
        return ChannelRecording(volts, rate, detected, info.name)
    finally:
        if opened:
            _back_to_idle(client)


def _wait_detection(client: ModuleClient) -> None:
    deadline = time.monotonic() + DETECT_TIMEOUT_S
    status = client.onchange()
    while as_bool(status.get("transducerDetectionActive", False)):
        if time.monotonic() > deadline:
            raise CalibrationError("the module's transducer detection did not finish in 20 s")
        status = client.onchange(last=status.get("lastUpdateTag"))


def _read(sock: Any, seconds: float, module: str) -> tuple[np.ndarray, int]:
    decoder = StreamDecoder()
    parts: list[np.ndarray] = []
    have = 0
    need: int | None = None
    rate = 0
    while need is None or have < need:
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            raise CalibrationError(f"module {module} sent no data for the measurement") from None
        if not chunk:
            raise CalibrationError(f"module {module} ended the stream after {have} samples")
        for message in decoder.feed(chunk):
            if not isinstance(message, SignalData):
                continue
            for block in message.blocks:
                if need is None:
                    interp = decoder.interpretations.get(block.signal_id)
                    rate = int(interp.sample_rate or 0) if interp else 0
                    if rate <= 0:
                        raise CalibrationError(f"module {module}: the stream has no sample rate")
                    need = int(round((SETTLE_S + seconds) * rate))
                parts.append(decoder.physical(block))
                have += block.count
    volts = np.concatenate(parts)[: need or 0]
    return volts[int(round(SETTLE_S * rate)) :], rate


def _back_to_idle(client: ModuleClient) -> None:
    """Best effort after a failure: leave the module Idle for the next user."""
    for request in ("stop_measurement", "finish", "cancel", "close"):
        with contextlib.suppress(ModuleError, OSError):
            getattr(client, request)()
