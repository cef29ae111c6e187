"""The Redis keys the engine and the web processes share (one dashboard per Redis database)."""

from __future__ import annotations

PREFIX = "lanxi:"
EVENTS = PREFIX + "events"
"""Stream: every change to the engine's live state, in order (see :mod:`journal`)."""
STATE = PREFIX + "state"
"""String: the engine's whole live state and the stream entry it includes (late joiners)."""
ENGINE = PREFIX + "engine"
"""String with expiry: the running engine's heartbeat (who, since when)."""
COMMANDS = PREFIX + "commands"
"""List: commands from web processes, taken by the engine."""
REPLY = PREFIX + "reply:"
"""List per command: the engine's acknowledgement, then its answer."""
WATCH = PREFIX + "watch:"
"""String per web process, with expiry: what its viewers watch, and how many they are."""
WATCH_CHANGED = PREFIX + "watch-changed"
"""Pub/sub channel: a web process's viewers chose something else."""
