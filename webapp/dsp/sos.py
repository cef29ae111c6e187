"""IIR filters in second-order sections, applied block after block with their state carried
over: the one place the live path calls scipy's filter kernel.

``scipy.signal.sosfilt`` checks, converts and reshapes its arguments on every call: about
0.1 ms a call with scipy 1.17, more than filtering a 4096-sample block through four sections
takes, and the octave bank makes some sixty calls a block, most of them on a few samples.
:class:`SosFilter` checks its sections once and calls the compiled kernel that ``sosfilt``
ends in (``scipy.signal._sosfilt._sosfilt``, the same arithmetic) directly; where a scipy
release does not have it, it calls ``sosfilt``. tests/dsp/test_sos.py checks both against
``sosfilt`` block after block.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

try:
    from scipy.signal._sosfilt import _sosfilt as _kernel
except ImportError:  # pragma: no cover - an older or newer scipy layout
    _kernel = None


def _kernel_agrees() -> bool:
    """The private kernel, called as this module calls it, gives ``sosfilt``'s answer (a
    scipy release that changed its signature or meaning falls back to ``sosfilt``)."""
    if _kernel is None:
        return False
    sos = signal.butter(2, 0.2, output="sos")
    x = np.sin(np.arange(64.0))
    try:
        y = np.array(x, ndmin=2)
        _kernel(np.ascontiguousarray(sos), y, np.zeros((1, len(sos), 2)))
    except Exception:  # pragma: no cover - depends on the scipy release
        return False
    return bool(np.allclose(y[0], signal.sosfilt(sos, x), rtol=1e-12, atol=1e-12))


if not _kernel_agrees():  # pragma: no cover - depends on the scipy release
    _kernel = None


class SosFilter:
    """One filter (sections of ``scipy.signal`` form) on ``channels`` signals at once, each with
    its own state carried from block to block."""

    def __init__(self, sos: np.ndarray, channels: int = 1, kernel: bool = True) -> None:
        sos = np.array(sos, dtype=float, ndmin=2)
        if sos.ndim != 2 or sos.shape[1] != 6:
            raise ValueError("sections must have the shape (n, 6)")
        if not np.all(sos[:, 3] == 1.0):
            raise ValueError("each section's a0 must be 1")
        self.sos = np.ascontiguousarray(sos)
        self.channels = channels
        self.zi = np.zeros((channels, len(sos), 2))
        """Per signal and section: the state (scipy's kernel layout)."""
        self._kernel = _kernel if kernel else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The next block: shape (n,) for one signal, (channels, n) for several; a new array."""
        y = np.array(x, dtype=float, order="C", ndmin=2)  # a copy: the kernel works in place
        if y.shape[0] != self.channels:
            raise ValueError(f"{self.channels} signals expected, not {y.shape[0]}")
        if y.shape[1]:
            if self._kernel is not None:
                self._kernel(self.sos, y, self.zi)
            else:
                y, zf = signal.sosfilt(self.sos, y, axis=-1, zi=self.zi.transpose(1, 0, 2))
                self.zi = np.ascontiguousarray(zf.transpose(1, 0, 2))
        return y[0] if np.ndim(x) == 1 else y

    def reset(self) -> None:
        self.zi[:] = 0.0


def first_order(b0: float, a1: float) -> np.ndarray:
    """``y[n] = b0·x[n] − a1·y[n−1]`` as one section."""
    return np.array([[b0, 0.0, 0.0, 1.0, a1, 0.0]])
