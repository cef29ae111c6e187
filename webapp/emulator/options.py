"""The emulator's timings and limits, and the firmware version every module reports."""

from __future__ import annotations

from dataclasses import dataclass

FIRMWARE = "2.10.0.501"


@dataclass
class EmulatorOptions:
    """Timings and limits; every one a parameter so tests run in seconds (PROTOCOL.md §11)."""

    ptp_lock_seconds: float = 5.0
    teds_seconds: float = 1.0
    settle_seconds: float = 0.5
    start_latency_seconds: float = 0.05
    """Delay from the trigger master's start request to T0 (then rounded up to the grid)."""
    buffer_seconds: float = 5.0
    """Send buffer per stream port; a reader further behind loses whole blocks (Overrun)."""
    stop_linger_seconds: float = 0.2
    """After the last module of a trigger group stopped: time for readers to drain before the
    stream connections are closed."""
    reboot_seconds: float = 3.0
    block_values: int = 4096
    max_connections: int = 10
    long_poll_seconds: float = 30.0
    request_log_size: int = 5000
    sd_card: bool = False
    calibration_shaker: bool = False
    """Channel 2's accelerometer sits on a handheld calibration shaker (10 m/s² RMS at
    159.2 Hz) instead of the vibrating structure."""
    serial: int | None = None
    """Serial number of the first module (index 0); module i reports ``serial + i``. None: a
    number derived from the type and the index (distinct within one rig)."""
    loopbacks: tuple[str, ...] | None = None
    """Generator output -> input wires ('1>1', '1>2:1000:0.02', see waveforms.Loopback) of
    every module with outputs; None: the default rig's (a 3160's output 1 to its input 1)."""

    def __post_init__(self) -> None:
        bv = self.block_values
        if bv < 4 or bv > 8192 or bv & (bv - 1):
            raise ValueError("block_values must be a power of two from 4 to 8192")
