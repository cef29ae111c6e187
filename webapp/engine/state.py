"""The live picture of the dashboard: orchestrator events folded into one snapshot.

A browser that connects (or reconnects) mid-capture gets ``snapshot()`` at once; after that it
gets the topics that changed since it was last served. Each topic is a *latest-value slot*: a
fold replaces the slot and bumps a sequence number, so a slow viewer simply skips intermediate
values instead of queueing them, and the publisher (the orchestrator or a stream receiver)
never waits for anybody.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from webapp.capture import events as ev

# The snapshot's keys; a push names those that changed in its ``update`` event's ``topics``.
TOPICS = (
    "phase",
    "capture",
    "ptp",
    "module-status",
    "recording-time",
    "channel-fault",
    "data-quality",
    "transducers",
    "configured",
    "stream-stats",
    "levels",
    "rig",
    "setup",
    "viewers",
    "history",
    "emulator",
    "monitor",
    "sound-levels",
    "generator",
)

_LOG_LENGTH = 100
_NO_MONITOR: dict[str, Any] = {
    "active": False,
    "plan": None,
    "trigger": "off",
    "last_trigger": None,
}


class LiveState:
    """Thread-safe fold of events into topics with per-topic sequence numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._changed: dict[str, int] = {}
        self._data: dict[str, Any] = {
            "phase": {
                "phase": ev.Phase.IDLE.value,
                "previous": "",
                "detail": "",
                "since": time.time(),
                "timeline": [],
            },
            "capture": {"current": None, "last": None},
            "ptp": {},
            "module-status": {},
            "recording-time": {"elapsed_s": 0.0, "duration_s": None, "t": None},
            "channel-fault": {},
            "data-quality": {},
            "transducers": {},
            "configured": {},
            "stream-stats": {},
            "levels": {},
            "rig": {},
            "setup": {},
            "viewers": {"count": 0},
            "history": {"version": 0},
            "emulator": {"modules": []},
            "monitor": dict(_NO_MONITOR),
            "sound-levels": {},
            "generator": {},
        }
        self._log: deque[dict[str, Any]] = deque(maxlen=_LOG_LENGTH)
        self._log_seq = 0
        # The orchestrator sends a decimated block of every channel about five times a second;
        # each viewer chooses the channel it shows. Latest block per (module, channel), with
        # the sequence number it arrived at.
        self._waves: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}
        self._spectra: dict[tuple[str, int, str, int], tuple[int, dict[str, Any]]] = {}
        """Latest averaged spectrum per (module, channel, window, lines)."""
        self._frfs: dict[str, tuple[int, dict[str, Any]]] = {}
        """Latest cross spectra per live FRF (its key text, webapp/capture/livefrf.py)."""
        self.on_change: Callable[[], None] | None = None
        """Called (outside the lock, and must not block) after every change: the live hub's
        wake-up."""

    # --- writing ------------------------------------------------------------------------------

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _touch(self, topic: str) -> None:
        self._seq += 1
        self._changed[topic] = self._seq

    def set_topic(self, topic: str, value: Any) -> None:
        """Replace a topic owned by the web layer (rig, setup, viewers, emulator)."""
        with self._lock:
            self._data[topic] = value
            self._touch(topic)
        self._notify()

    def bump_history(self) -> None:
        with self._lock:
            self._data["history"] = {"version": self._data["history"]["version"] + 1}
            self._touch("history")
        self._notify()

    def add_log(self, level: str, message: str, *, t: float | None = None, **where: Any) -> None:
        with self._lock:
            self._append_log(level, message, time.time() if t is None else t, where)
        self._notify()

    def _append_log(self, level: str, message: str, t: float, where: dict[str, Any]) -> None:
        self._log_seq += 1
        entry = {"id": self._log_seq, "level": level, "message": message, "t": t}
        entry.update({k: v for k, v in where.items() if v is not None})
        self._log.append(entry)

    def restore(self, snapshot: dict[str, Any], renumber_log: bool = False) -> None:
        """Take another state's ``snapshot()`` as this one's (a web process mirroring the
        capture engine's state): every topic replaced and marked changed, the log replaced,
        the waveforms and spectra dropped until the next ones arrive. ``renumber_log``: the
        snapshot's log is numbered afresh (a restarted engine) and continues this one's."""
        with self._lock:
            for topic in TOPICS:
                if topic in snapshot:
                    self._data[topic] = snapshot[topic]
                    self._touch(topic)
            log = [dict(e) for e in snapshot.get("log") or []]
            last = max((int(e.get("id", 0)) for e in log), default=0)
            if renumber_log and last <= self._log_seq:
                # Continue this state's numbers, so a viewer that had the old entries still
                # gets the new ones.
                shift = self._log_seq - min(int(e.get("id", 0)) for e in log) + 1 if log else 0
                for e in log:
                    e["id"] = int(e.get("id", 0)) + shift
                last = max((e["id"] for e in log), default=self._log_seq)
            self._log = deque(log, maxlen=_LOG_LENGTH)
            self._log_seq = last
            self._waves = {}
            self._spectra = {}
        self._notify()

    def on_event(self, event: ev.Event) -> None:
        """EventBus subscriber: quick dictionary work under a lock, nothing that can block."""
        if isinstance(event, ev.Waveform):
            item = event.to_dict()
            with self._lock:
                self._seq += 1
                self._waves[(event.module, event.channel)] = (self._seq, item)
            self._notify()
            return
        if isinstance(event, ev.Spectrum):
            item = event.to_dict()
            key = (event.module, event.channel, event.window, event.lines)
            with self._lock:
                self._seq += 1
                self._spectra[key] = (self._seq, item)
            self._notify()
            return
        if isinstance(event, ev.CrossSpectra):
            item = event.to_dict()
            with self._lock:
                self._seq += 1
                self._frfs[event.key] = (self._seq, item)
            self._notify()
            return
        fold = _FOLDS.get(type(event))
        if fold is None:
            return
        with self._lock:
            fold(self, event)
        self._notify()

    def _fold_phase(self, e: ev.PhaseChanged) -> None:
        phase = self._data["phase"]
        timeline = phase["timeline"]
        if e.phase == ev.Phase.VALIDATING:
            timeline = []
        elif e.previous == ev.Phase.ARMED and e.phase != ev.Phase.DISARMING:
            # Another recording on the armed rig: keep the arming part, drop the last recording.
            armed_at = max(
                (i for i, t in enumerate(timeline) if t["phase"] == ev.Phase.ARMED), default=-1
            )
            timeline = timeline[: armed_at + 1]
        timeline = [*timeline, {"phase": e.phase, "t": e.t, "detail": e.detail}][-40:]
        self._data["phase"] = {
            "phase": e.phase,
            "previous": e.previous,
            "detail": e.detail,
            "since": e.t,
            "timeline": timeline,
        }
        self._touch("phase")
        if e.phase == ev.Phase.VALIDATING:
            # A new run: forget the previous run's per-module live values.
            for topic in (
                "ptp", "channel-fault", "data-quality", "stream-stats", "levels", "sound-levels"
            ):  # fmt: skip
                self._data[topic] = {}
                self._touch(topic)
            self._waves = {}
            self._spectra = {}
            self._frfs = {}
            self._data["monitor"] = dict(_NO_MONITOR)
            self._touch("monitor")
        if e.phase == ev.Phase.DISARMING and self._data["levels"]:
            # The overload latch holds until the next measurement or until the rig is disarmed.
            self._data["levels"] = {
                module: {
                    **entry,
                    "levels": [
                        {**lv, "overload": False, "overload_reason": None} for lv in entry["levels"]
                    ],
                }
                for module, entry in self._data["levels"].items()
            }
            self._touch("levels")
        prepared = self._data["capture"].get("prepared")
        if prepared and (
            e.phase in (ev.Phase.IDLE, ev.Phase.FAILED, ev.Phase.COMPLETED)
            or (e.phase == ev.Phase.ARMED and prepared.get("action") == "arm")
        ):
            self._data["capture"] = {
                k: v for k, v in self._data["capture"].items() if k != "prepared"
            }
            self._touch("capture")
        if e.phase in (ev.Phase.CONNECTING, ev.Phase.IDLE, ev.Phase.COMPLETED):
            # A new measurement, or the rig back to Idle: the lamps show what holds now (the
            # capture's own record keeps what happened before).
            for topic in ("channel-fault", "data-quality"):
                if self._data[topic]:
                    self._data[topic] = {}
                    self._touch(topic)
        if e.phase in (ev.Phase.IDLE, ev.Phase.COMPLETED) and self._data["ptp"]:
            # The rig is back to Idle: no module is locked or waiting any more.
            self._data["ptp"] = {}
            self._touch("ptp")
        if e.phase == ev.Phase.CONNECTING:
            self._waves = {}
            self._spectra = {}
            self._frfs = {}
            self._data["recording-time"] = {"elapsed_s": 0.0, "duration_s": None, "t": e.t}
            self._touch("recording-time")
            for topic in ("stream-stats", "levels", "sound-levels"):
                self._data[topic] = {}
                self._touch(topic)

    def _fold_module_status(self, e: ev.ModuleStatus) -> None:
        self._data["module-status"] = {
            **self._data["module-status"],
            e.module: {
                "module_state": e.module_state,
                "input_status": e.input_status,
                "ptp_status": e.ptp_status,
                "t": e.t,
            },
        }
        self._touch("module-status")

    def _fold_ptp(self, e: ev.PtpProgress) -> None:
        self._data["ptp"] = {
            **self._data["ptp"],
            e.module: {
                "status": e.status,
                "locked": e.locked,
                "elapsed_s": e.elapsed_s,
                "timeout_s": e.timeout_s,
                "expected_s": e.expected_s,
                "hint": e.hint,
                "t": e.t,
            },
        }
        self._touch("ptp")

    def _fold_configured(self, e: ev.ChannelsConfigured) -> None:
        """Kept after disarming: the values "auto" stood for at the last arming."""
        self._data["configured"] = {
            **self._data["configured"],
            e.module: {"bandwidth": e.bandwidth, "channels": list(e.channels), "t": e.t},
        }
        self._touch("configured")

    def _fold_transducers(self, e: ev.TransducersDetected) -> None:
        self._data["transducers"] = {
            **self._data["transducers"],
            e.module: {"transducers": list(e.transducers), "t": e.t},
        }
        self._touch("transducers")

    def _fold_recording(self, e: ev.RecordingTime) -> None:
        self._data["recording-time"] = {
            "elapsed_s": e.elapsed_s,
            "duration_s": e.duration_s,
            "t": e.t,
        }
        self._touch("recording-time")

    def _fold_fault(self, e: ev.ChannelFault) -> None:
        faults = dict(self._data["channel-fault"])
        module = dict(faults.get(e.module, {}))
        module[str(e.channel)] = {"anol": e.anol, "cmol": e.cmol, "cf": e.cf, "t": e.t}
        faults[e.module] = module
        self._data["channel-fault"] = faults
        self._touch("channel-fault")

    def _fold_quality(self, e: ev.DataQualityChanged) -> None:
        quality = dict(self._data["data-quality"])
        module = dict(quality.get(e.module, {}))
        module[str(e.channel)] = {
            "signal_id": e.signal_id,
            "validity": e.validity,
            "flags": list(e.flags),
            "stream_time_s": e.stream_time_s,
            "t": e.t,
        }
        quality[e.module] = module
        self._data["data-quality"] = quality
        self._touch("data-quality")

    def _fold_stats(self, e: ev.StreamStats) -> None:
        self._data["stream-stats"] = {
            **self._data["stream-stats"],
            e.module: {"bytes_received": e.bytes_received, "rate_bps": e.rate_bps, "t": e.t},
        }
        self._touch("stream-stats")

    def _fold_levels(self, e: ev.Levels) -> None:
        self._data["levels"] = {**self._data["levels"], e.module: {"levels": e.levels, "t": e.t}}
        self._touch("levels")

    def _fold_warning(self, e: ev.Warning) -> None:
        self._append_log("warning", e.message, e.t, {"module": e.module})

    def _fold_error(self, e: ev.Error) -> None:
        self._append_log("error", e.message, e.t, {"module": e.module, "request": e.request})

    def _fold_monitor(self, e: ev.MonitorStatus) -> None:
        last = self._data["monitor"].get("last_trigger")
        self._data["monitor"] = {**e.to_dict(), "last_trigger": last}
        self._touch("monitor")

    def _fold_sound(self, e: ev.SoundLevels) -> None:
        mine = dict(self._data["sound-levels"].get(e.module, {}))
        mine[str(e.channel)] = {**e.levels, "t": e.t}
        self._data["sound-levels"] = {**self._data["sound-levels"], e.module: mine}
        self._touch("sound-levels")

    def _fold_generator(self, e: ev.GeneratorChanged) -> None:
        """Kept after an output stops: what it ran last, and why it stopped."""
        mine = dict(self._data["generator"].get(e.module, {}))
        last = mine.get(str(e.number)) or {}
        mine[str(e.number)] = {
            "running": e.running,
            "how": e.how,
            "output": e.output if e.output is not None else last.get("output"),
            "since": e.t,
            "note": e.note,
        }
        self._data["generator"] = {**self._data["generator"], e.module: mine}
        self._touch("generator")
        if e.note:
            self._append_log("info", f"{e.module} output {e.number} {e.note}", e.t,
                             {"module": e.module})  # fmt: skip

    def _fold_trigger(self, e: ev.TriggerFired) -> None:
        self._data["monitor"] = {**self._data["monitor"], "last_trigger": e.to_dict()}
        self._touch("monitor")
        what = "manual trigger" if e.manual else (
            f"module {e.module} channel {e.channel} "
            f"{'rose' if e.slope == 'rising' else 'fell'} through {e.level:g} {e.unit}"
        )  # fmt: skip
        self._append_log("info", f"trigger {e.event}: {what} ({e.capture_id})", e.t, {})

    def _fold_prepared(self, e: ev.CapturePrepared) -> None:
        self._data["capture"] = {
            **self._data["capture"],
            "prepared": {
                "id": e.capture_id,
                "name": e.name,
                "duration_s": e.duration_s,
                "modules": list(e.modules),
                "action": e.action,
                "t": e.t,
            },
        }
        self._touch("capture")

    def _fold_started(self, e: ev.CaptureStarted) -> None:
        self._data["capture"] = {
            "current": {
                "id": e.capture_id,
                "name": e.name,
                "modules": list(e.modules),
                "duration_s": e.duration_s,
                "t": e.t,
            },
            "last": self._data["capture"]["last"],
        }
        self._touch("capture")

    def _fold_finished(self, e: ev.CaptureFinished) -> None:
        current = self._data["capture"]["current"] or {"id": e.capture_id}
        self._data["capture"] = {
            "current": None,
            "last": {**current, "outcome": e.outcome, "reason": e.reason, "ended": e.t},
        }
        self._touch("capture")
        reported = any(x["message"] == e.reason for x in list(self._log)[-5:])
        if e.outcome == ev.Outcome.FAILED and e.reason and not reported:
            # The failure itself was usually reported the moment it happened (an Error event).
            self._append_log("error", e.reason, e.t, {"capture": e.capture_id})
        self._data["history"] = {"version": self._data["history"]["version"] + 1}
        self._touch("history")

    # --- reading ------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def snapshot(self) -> dict[str, Any]:
        """Everything a page renders, as plain JSON values."""
        with self._lock:
            out = {topic: copy.deepcopy(self._data[topic]) for topic in TOPICS}
            out["log"] = list(self._log)
            out["seq"] = self._seq
        return out

    def get(self, topic: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._data[topic])

    def changes_since(
        self, seq: int, log_id: int, upto_log: int | None = None
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]], int]:
        """Topics changed after ``seq`` and log entries after ``log_id`` (up to ``upto_log``
        if given), with the new marks.

        Values are shared, not copied: every fold replaces a topic's value wholesale, so a value
        handed out here is never mutated afterwards.
        """
        with self._lock:
            changed = {t: self._data[t] for t, s in self._changed.items() if s > seq}
            last = self._log_seq if upto_log is None else upto_log
            entries = [e for e in self._log if log_id < e["id"] <= last]
            return self._seq, changed, entries, last

    def waveform_since(
        self, seq: int, key: tuple[str, int] | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        """The latest block of channel ``key`` (None: the default channel) if it arrived after
        ``seq``; returns the block's sequence number with it."""
        with self._lock:
            if key is None:
                key = self._default_wave_key()
            got = self._waves.get(key) if key is not None else None
        if got is None or got[0] <= seq:
            return seq, None
        return got

    def spectrum_since(
        self, seq: int, key: tuple[str, int] | None, window: str, lines: int
    ) -> tuple[int, dict[str, Any] | None]:
        """The latest spectrum of channel ``key`` (None: the default channel) in ``window``
        and ``lines``, if it arrived after ``seq``."""
        with self._lock:
            if key is None:
                key = self._default_target()
            got = self._spectra.get((*key, window, lines)) if key is not None else None
        if got is None or got[0] <= seq:
            return seq, None
        return got

    def frf_since(self, seq: int, key: str) -> tuple[int, dict[str, Any] | None]:
        """The latest cross spectra of live FRF ``key`` if they arrived after ``seq``."""
        with self._lock:
            got = self._frfs.get(key)
        if got is None or got[0] <= seq:
            return seq, None
        return got

    def default_wave_target(self) -> tuple[str, int] | None:
        """The channel a viewer who chose none sees: the master's first enabled channel (the
        master is the first module of the running capture, else the rig's master)."""
        with self._lock:
            return self._default_target()

    def _default_target(self) -> tuple[str, int] | None:
        found = self._default_channel()
        return None if found is None else found[0]

    def _default_channel(self) -> tuple[tuple[str, int], bool] | None:
        """The default target, and whether it is an enabled channel (one that will stream)."""
        current = self._data["capture"]["current"] or {}
        master = (current.get("modules") or [None])[0] or self._data["rig"].get("master")
        if not master:
            return None
        rows = ((self._data["setup"].get("setup") or {}).get("channels") or {}).get(master) or []
        if not rows:
            return ((master, 1), True)
        enabled = [r["channel"] for r in rows if isinstance(r, dict) and r.get("enabled", True)]
        return ((master, min(enabled)), True) if enabled else ((master, 1), False)

    def watch_version(self) -> tuple[int, ...]:
        """Changes when the default waveform target may have changed."""
        with self._lock:
            return tuple(self._changed.get(t, 0) for t in ("capture", "rig", "setup"))

    def _default_wave_key(self) -> tuple[str, int] | None:
        """The master's first channel (see ``default_wave_target``), even before its first
        block arrives; only when the master streams no channel (or no master is known), the
        first channel of the capture's or the rig's modules that has a waveform.

        Waiting for the master's channel matters with several web processes: their waveforms
        are the union of every process's viewers' choices, and a viewer who chose nothing must
        not be shown another process's viewer's channel meanwhile."""
        found = self._default_channel()
        if found is not None and found[1]:
            return found[0]
        if not self._waves:
            return None
        current = self._data["capture"]["current"] or {}
        rig = self._data["rig"].get("modules") or []
        order = list(current.get("modules") or []) + [m.get("address") for m in rig]
        for module in order:
            channels = sorted(c for m, c in self._waves if m == module)
            if channels:
                return (module, channels[0])
        return min(self._waves)

    @property
    def log_id(self) -> int:
        return self._log_seq


_FOLDS: dict[type, Any] = {
    ev.PhaseChanged: LiveState._fold_phase,
    ev.ModuleStatus: LiveState._fold_module_status,
    ev.PtpProgress: LiveState._fold_ptp,
    ev.TransducersDetected: LiveState._fold_transducers,
    ev.ChannelsConfigured: LiveState._fold_configured,
    ev.RecordingTime: LiveState._fold_recording,
    ev.ChannelFault: LiveState._fold_fault,
    ev.DataQualityChanged: LiveState._fold_quality,
    ev.StreamStats: LiveState._fold_stats,
    ev.Levels: LiveState._fold_levels,
    ev.Warning: LiveState._fold_warning,
    ev.Error: LiveState._fold_error,
    ev.CaptureStarted: LiveState._fold_started,
    ev.CaptureFinished: LiveState._fold_finished,
    ev.MonitorStatus: LiveState._fold_monitor,
    ev.TriggerFired: LiveState._fold_trigger,
    ev.SoundLevels: LiveState._fold_sound,
    ev.CapturePrepared: LiveState._fold_prepared,
    ev.GeneratorChanged: LiveState._fold_generator,
}
