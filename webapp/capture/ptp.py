"""What to tell a user who waits for PTP lock: how long it usually takes and, when the wait
looks wrong, the likely reason.

HBK's multi-module tutorial: locking "varies a bit but is generally on the order of 1-2
minutes" (the first lock after power-up can take several); the capture's timeout (10 min by
default) is only the limit. A module still ``Unlocked`` after :data:`NO_MASTER_AFTER_S` has not
seen a master at all, which is a network or domain matter, not patience.
"""

from __future__ import annotations

from collections.abc import Mapping

EXPECTED_LOCK_S = 120.0
NO_MASTER_AFTER_S = 20.0
LOCKED, UNLOCKED = "Locked", "Unlocked"


def lock_hint(
    module: str,
    number: int,
    statuses: Mapping[str, str],
    master: str,
    domain: int | None,
    waited_s: float,
) -> str:
    """A sentence for ``module`` (number ``number``) after ``waited_s`` of waiting, or ""."""
    status = statuses.get(module, "")
    where = f"domain {domain}" if domain is not None else "its domain"
    if status == LOCKED:
        return ""
    if status in (UNLOCKED, "", "Unknown") and waited_s >= NO_MASTER_AFTER_S:
        if all(s in (UNLOCKED, "", "Unknown") for s in statuses.values()):
            return (
                f"no PTP master seen in {where} after {waited_s:.0f} s: is the master (module 1, "
                f"{master}) on this network and in {where}?"
            )
        if module == master:
            return f"the master has not locked after {waited_s:.0f} s"
        return (
            f"module {number} sees no PTP master in {where} after {waited_s:.0f} s while others "
            f"do: is it on the master's network segment (PTP is not routed) and in {where}?"
        )
    if waited_s >= EXPECTED_LOCK_S:
        return (
            f"still {status.lower()} after {waited_s:.0f} s, longer than the usual 1-2 minutes: a "
            "switch without PTP support, or heavy traffic, slows locking"
        )
    return ""
