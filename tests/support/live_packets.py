"""Socket.IO pushes as tests read them: each ``update`` packet (every changed topic and the new
log entries of one push) spread into one packet per topic and per log entry."""

from __future__ import annotations

from typing import Any


def unpacked(packets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flask-SocketIO test-client packets, an ``update`` replaced by a packet per changed topic
    (named as the topic) and per log entry (named as its level), in the order they were sent."""
    out: list[dict[str, Any]] = []
    for p in packets:
        if p["name"] != "update":
            out.append(p)
            continue
        body = p["args"][0]
        for topic, value in body["topics"].items():
            out.append({**p, "name": topic, "args": [value]})
        for entry in body.get("log", []):
            out.append({**p, "name": entry["level"], "args": [entry]})
    return out
