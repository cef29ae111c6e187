"""What the capture reader raises when it cannot read what it was given."""

from __future__ import annotations


class CaptureError(ValueError):
    """The input is not a capture the reader can open (nothing to read, bad capture.json)."""


class StreamingReadError(CaptureError):
    """A front-to-back read begun while the index was still running (``open(...,
    background=True)``) delivered windows that the complete index contradicts."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"{why}: windows already delivered would differ; open the capture without "
            "background indexing to read it"
        )
