"""The one rule for names that become file and folder names (captures, saved setups).

Used by the capture settings (HTTP, Socket.IO and the ``capture`` CLI all build those), the
saved setups and the download checks. A name is normalised to NFC and may hold Unicode letters
and digits (with their combining marks), space and ``._-``; it must be safe as a file name on
Windows too: no separators or control characters, no leading dot or dash (a hidden file, or a
file name that reads as an option), no trailing dot or space, no reserved device name (``CON``,
``nul.txt``, ``COM1``...).
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 100
_PUNCTUATION = frozenset(" ._-")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{i}" for i in (*range(10), "¹", "²", "³")]
    + [f"LPT{i}" for i in (*range(10), "¹", "²", "³")]
)


def _allowed(c: str) -> bool:
    if c in _PUNCTUATION:
        return True
    category = unicodedata.category(c)
    return category[0] in "LN" or category in ("Mn", "Mc")


def check_name(name: object, what: str = "the capture name", max_len: int = MAX_NAME) -> str:
    """``name`` normalised to NFC with white space runs made one space, or ValueError.

    The message names ``what`` and the offending characters (never more than a few of them).
    """
    if not isinstance(name, str):
        raise ValueError(f"{what} must be text")
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
    if not cleaned:
        raise ValueError(f"{what} is empty")
    if len(cleaned) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")
    bad = sorted({c for c in cleaned if not _allowed(c)})
    if bad:
        shown = " ".join(repr(c) for c in bad[:8])
        raise ValueError(f"{what} may hold letters, digits, space and . _ - only, not {shown}")
    if cleaned[0] in ".-":
        raise ValueError(f"{what} must not start with a dot or a dash")
    if cleaned.endswith("."):
        raise ValueError(f"{what} must not end with a dot")
    if cleaned.split(".")[0].rstrip().upper() in _WINDOWS_RESERVED:
        raise ValueError(f"{cleaned!r} is a reserved device name on Windows")
    return cleaned
