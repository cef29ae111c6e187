"""The emulator's timings at test speed: PTP lock, TEDS detection and settling in fractions of
a second instead of seconds."""

from __future__ import annotations

FAST_EMULATOR = {
    "ptp_lock_seconds": 0.3,
    "teds_seconds": 0.1,
    "settle_seconds": 0.05,
    "reboot_seconds": 0.3,
    "long_poll_seconds": 5.0,
    "stop_linger_seconds": 0.1,
}
