// The live capture page: controls, phase timeline, PTP lock, recording time, per-module
// fault lamps, level meters and data rates, waveform and spectrum of a chosen channel, the
// error log and the fault-injection panel for emulated modules.
"use strict";

(() => {
  const { el, api, state, on, socket } = Dash;
  const $ = (id) => document.getElementById(id);

  const SEQUENCE = ["validating", "ptp-sync", "ptp-lock", "opening", "creating", "detecting",
    "configuring", "settling", "synchronizing", "starting-stream", "armed", "connecting",
    "monitoring", "recording", "stopping", "finishing", "closing"];
  const BUSY = new Set(SEQUENCE.filter((p) => p !== "armed").concat(["disarming"]));
  const FAULT_NAMES = { anol: "analog overload", cmol: "common-mode overload", cf: "cable fault" };

  // --- controls ------------------------------------------------------------------------------
  const controlError = $("control-error");
  const untilBox = $("cap-until");
  // Until this viewer types into the form, it shows the capture that is running (started by
  // anybody), so every viewer sees its name and duration.
  let formEdited = false;
  for (const id of ["cap-name", "cap-duration", "cap-until"]) {
    $(id).addEventListener("input", () => { formEdited = true; });
  }
  untilBox.addEventListener("change", () => { $("cap-duration").disabled = untilBox.checked; });

  function captureBody() {
    const body = { name: $("cap-name").value.trim() };
    body.duration_s = untilBox.checked ? null : Number($("cap-duration").value);
    const generators = Dash.generatorsForRecording && Dash.generatorsForRecording();
    if (generators) body.generators = generators;  // the generator panel's "with the recording"
    return body;
  }

  async function act(button, fn) {
    Dash.showError(controlError, null);
    button.disabled = true;
    try { await fn(); } catch (e) { Dash.showError(controlError, e); } finally { renderButtons(); }
  }
  $("btn-arm").onclick = (e) => act(e.target, () => api("POST", "/api/capture/arm", captureBody()));
  $("btn-start").onclick = (e) => act(e.target, () => api("POST", "/api/capture/start", captureBody()));
  $("btn-stop").onclick = (e) => act(e.target, () => api("POST", "/api/capture/stop", {}));
  $("btn-disarm").onclick = (e) => act(e.target, () => api("POST", "/api/capture/disarm", {}));

  // --- monitor and record ----------------------------------------------------------------------
  // The plan is checked by the server (the same rules as the terminal's capture --trigger).
  const recMode = $("rec-mode");
  function renderModeFields() {
    const mode = recMode.value;
    for (const n of document.querySelectorAll(".rec-trigger")) n.hidden = mode !== "trigger";
    for (const n of document.querySelectorAll(".rec-segments")) n.hidden = mode !== "segments";
  }
  recMode.addEventListener("change", renderModeFields);
  renderModeFields();
  function recordBody() {
    const mode = recMode.value;
    const body = { name: $("cap-name").value.trim(), mode,
      duration_s: untilBox.checked ? null : Number($("cap-duration").value) };
    if (mode === "trigger") {
      body.trigger = { module: Number($("trg-module").value), channel: Number($("trg-channel").value),
        slope: $("trg-slope").value, level: Number($("trg-level").value) };
      body.pre_trigger_s = Number($("trg-pre").value);
      body.events = untilBox.checked ? null : Number($("trg-events").value);
      body.hold_off_s = Number($("trg-holdoff").value);
      if (body.duration_s === null) body.duration_s = Number($("cap-duration").value);
    }
    if (mode === "segments") body.segment_s = Number($("seg-length").value);
    return body;
  }
  $("btn-monitor").onclick = (e) => act(e.target, () => api("POST", "/api/capture/monitor", {}));
  $("btn-record").onclick = (e) => act(e.target, () => api("POST", "/api/capture/record", recordBody()));
  $("btn-stop-recording").onclick = (e) => act(e.target, () => api("POST", "/api/capture/stop-recording", {}));
  $("btn-trigger").onclick = (e) => act(e.target, () => api("POST", "/api/capture/trigger", {}));

  function describePlan(p) {
    if (!p) return "";
    if (p.mode === "trigger" && p.trigger) {
      const t = p.trigger;
      const events = p.events == null ? "until stopped" : `${p.events} event${p.events === 1 ? "" : "s"}`;
      return `“${p.name}”: module ${t.module} channel ${t.channel} ${t.slope} through ${t.level}` +
        ` ${monitorUnit()}, ${p.pre_trigger_s} s before to ${p.duration_s} s after, ${events}`;
    }
    const total = p.duration_s == null ? "until stopped" : `${p.duration_s} s`;
    if (p.mode === "segments") return `“${p.name}”: segments of ${p.segment_s} s, ${total}`;
    return `“${p.name}”: ${total}`;
  }
  function monitorUnit() {
    const m = state.monitor || {};
    return (m.last_trigger && m.last_trigger.unit) || "";
  }
  const TRIGGER_TEXT = { off: "off", armed: "armed", holding: "fired: recording", done: "done" };
  function renderMonitor() {
    const m = state.monitor || {};
    const active = !!m.active;
    $("mon-state").textContent = active ? "running" : "off";
    $("mon-ring").textContent = active
      ? `${(m.ring_s || 0).toFixed(1)} of ${(m.ring_retention_s || 0).toFixed(1)} s (${Dash.fmtBytes(m.ring_bytes || 0)})`
      : "–";
    $("mon-trigger").textContent = active ? (TRIGGER_TEXT[m.trigger] || m.trigger || "off") : "–";
    $("mon-count").textContent = active ? `${m.events || 0} / ${m.segments || 0}` : "–";
    $("mon-disk").textContent = m.disk_s != null ? `${Math.round(m.disk_s)} s` : "–";
    const last = m.last_trigger;
    const plan = describePlan(m.plan);
    $("mon-plan").textContent = (plan ? `Recording plan ${plan}. ` : "") + (last
      ? `Last trigger: event ${last.event} at ${new Date(last.time_ticks / 4294967296 * 1000).toLocaleTimeString()}` +
        (last.manual ? " (manual)" : "") : "");
    renderButtons();
  }
  on("monitor", renderMonitor);
  // The trigger level is in the chosen channel's unit (after its transducer's sensitivity):
  // say which, from the channel's live level.
  function renderTriggerUnit() {
    const address = moduleList()[Number($("trg-module").value) - 1];
    const levels = (((state.levels || {})[address] || {}).levels || []);
    const level = levels.find((l) => l.channel === Number($("trg-channel").value));
    $("trg-unit").textContent = level ? (level.unit_label || level.unit || "") : "(channel unit)";
  }
  for (const id of ["trg-module", "trg-channel"]) $(id).addEventListener("input", renderTriggerUnit);
  on("levels", renderTriggerUnit);

  function renderButtons() {
    const phase = (state.phase || {}).phase || "idle";
    const armed = phase === "armed";
    const busy = BUSY.has(phase);
    if (!Dash.isConnected()) {  // what the buttons would do is unknown until reconnected
      for (const id of ["btn-arm", "btn-start", "btn-stop", "btn-disarm", "btn-monitor",
        "btn-record", "btn-stop-recording", "btn-trigger"]) $(id).disabled = true;
      return;
    }
    const mon = state.monitor || {};
    const monitoring = phase === "monitoring" && !!mon.active;
    $("btn-arm").disabled = busy || armed;
    $("btn-start").disabled = busy && !monitoring;
    $("btn-stop").disabled = !busy;
    $("btn-disarm").disabled = !(armed || monitoring);
    $("btn-monitor").disabled = busy;
    $("btn-record").disabled = !monitoring || !!mon.plan;
    $("btn-stop-recording").disabled = !monitoring || !mon.plan;
    $("btn-trigger").disabled = !monitoring || !mon.plan || mon.plan.mode !== "trigger";
  }

  // --- phase timeline ------------------------------------------------------------------------
  on("phase", (p) => {
    const seen = new Set((p.timeline || []).map((t) => t.phase));
    const list = $("timeline");
    list.replaceChildren();
    for (const phase of SEQUENCE) {
      let cls = seen.has(phase) ? "done" : "";
      if (phase === p.phase) cls = "current";
      list.append(el("li", { class: cls, dataset: { phase } }, Dash.PHASE_LABELS[phase]));
    }
    if (p.phase === "failed" || p.phase === "completed" || p.phase === "idle") {
      list.append(el("li", { class: p.phase === "failed" ? "failed" : (seen.size ? "current" : ""),
        dataset: { phase: p.phase } }, Dash.PHASE_LABELS[p.phase]));
    }
    $("phase-detail").textContent = p.detail || "";
    renderButtons();
    scheduleModules();
  });

  // --- PTP lock progress -----------------------------------------------------------------------
  // The fill follows the module's own lock sequence (Unlocked, Settling, Locking, Locked); the
  // thin mark and the text beside the bar give the time waited against the phase's timeout.
  // The server reports each module once a second and on every change; in between, the waited
  // time runs on here from the arrival of the module's last report, so it never stands still
  // while the rig waits (and stops with the wait: locked, or the phase has moved on).
  const PTP_STAGE = { Unknown: 0, Unlocked: 0.04, Settling: 1 / 3, Locking: 2 / 3, Locked: 1 };
  const ptpArrived = {};  // module -> { t: the report's server time, at: performance.now() }
  const ptpShown = {};  // module -> { run: this wait's start (server time), value: shown last }
  function notePtpArrivals() {
    const now = performance.now();
    for (const [module, p] of Object.entries(state.ptp || {})) {
      const got = ptpArrived[module];
      if (!got || got.t !== p.t) ptpArrived[module] = { t: p.t, at: now };
    }
  }
  function ptpWaiting(p) {
    return !p.locked && ((state.phase || {}).phase === "ptp-lock");
  }
  function ptpWaited(module, p) {
    let more = 0;
    if (ptpWaiting(p)) {
      const got = ptpArrived[module];
      more = got ? (performance.now() - got.at) / 1000 : 0;
    } else if (!p.locked) {
      // The wait ended without a lock (failed, stopped): up to when the phase moved on.
      const timeline = (state.phase || {}).timeline || [];
      const i = timeline.map((t) => t.phase).lastIndexOf("ptp-lock");
      if (i >= 0 && i + 1 < timeline.length) more = Math.max(0, timeline[i + 1].t - p.t);
    }
    // Never backwards: a report can arrive a little later than the count here ran.
    const run = ((state.phase || {}).timeline || []).find((t) => t.phase === "ptp-lock");
    const before = ptpShown[module];
    let value = Math.min(p.elapsed_s + more, Math.max(p.timeout_s, p.elapsed_s));
    if (before && run && before.run === run.t) value = Math.max(value, before.value);
    ptpShown[module] = { run: run ? run.t : null, value };
    return value;
  }
  function ptpElapsedText(module, p) {
    if (p.locked) return `locked after ${p.elapsed_s.toFixed(1)} s`;
    const expected = p.expected_s ? `usually ${Dash.fmtSeconds(p.expected_s)} or less, ` : "";
    return `${ptpWaited(module, p).toFixed(1)} s (${expected}timeout ${Dash.fmtSeconds(p.timeout_s)})`;
  }
  function renderPtp() {
    notePtpArrivals();
    const ptp = state.ptp;
    const box = $("ptp");
    box.replaceChildren();
    const entries = Object.entries(ptp || {});
    if (!entries.length) {
      box.append(el("p", { class: "muted small" }, "Not waiting for PTP lock."));
      return;
    }
    for (const [module, p] of entries) {
      // Lock lost after it was reached (seen in the module's status): say so, in red.
      const now = (state["module-status"] || {})[module];
      if (p.locked && now && now.ptp_status && now.ptp_status !== "Locked" && now.t > p.t) {
        box.append(el("div", { class: "row", dataset: { module } },
          el("div", { class: "bar lost", style: "flex:1", dataset: { ptpModule: module, locked: "0", status: now.ptp_status } },
            el("span", { style: "width:100%" }),
            el("em", {}, `${module}: lock lost — ${now.ptp_status} since ${new Date(now.t * 1000).toLocaleTimeString()}`))));
        continue;
      }
      const stage = p.locked ? 1 : (PTP_STAGE[p.status] ?? 0);
      const waited = ptpMark(module, p);
      box.append(el("div", { class: "row ptp-row", dataset: { module } },
        el("div", { class: "bar" + (p.locked ? " locked" : ""), style: "flex:1",
          title: `waited ${p.elapsed_s.toFixed(1)} s of the ${p.timeout_s} s timeout`,
          dataset: { ptpModule: module, locked: p.locked ? "1" : "0", status: p.status } },
          el("span", { style: `width:${(stage * 100).toFixed(1)}%` }),
          p.locked ? null : el("i", { style: `left:${(waited * 100).toFixed(2)}%` }),
          el("em", {}, `${module}: ${p.status}`)),
        el("span", { class: "ptp-elapsed small", dataset: { ptpElapsed: module } },
          ptpElapsedText(module, p))));
      if (!p.locked && p.hint) box.append(el("p", { class: "warn small", dataset: { ptpHint: module } }, p.hint));
    }
  }
  // The mark runs against the usual lock time (1-2 minutes), then against the timeout.
  function ptpMark(module, p) {
    const waited = ptpWaited(module, p);
    const expected = p.expected_s || p.timeout_s;
    if (waited <= expected) return Math.min(1, waited / Math.max(expected, 0.001));
    return Math.min(1, waited / Math.max(p.timeout_s, 0.001));
  }
  // Between reports: only the waited time and its mark move.
  setInterval(() => {
    for (const [module, p] of Object.entries(state.ptp || {})) {
      if (!ptpWaiting(p)) continue;
      const text = document.querySelector(`[data-ptp-elapsed="${CSS.escape(module)}"]`);
      if (text) text.textContent = ptpElapsedText(module, p);
      const mark = document.querySelector(`[data-ptp-module="${CSS.escape(module)}"] > i`);
      if (mark) {
        const waited = ptpMark(module, p);
        mark.style.left = `${(waited * 100).toFixed(2)}%`;
      }
    }
  }, 200);
  on("ptp", renderPtp);
  on("module-status", renderPtp);
  on("phase", renderPtp);  // the waited time stops running when the phase moves on

  // --- recording time and current capture ---------------------------------------------------
  on("recording-time", (r) => {
    const text = r.duration_s ? `${Dash.fmtDuration(r.elapsed_s)} / ${Dash.fmtDuration(r.duration_s)}`
      : Dash.fmtDuration(r.elapsed_s);
    const node = $("rec-time");
    node.textContent = text;
    node.dataset.elapsed = r.elapsed_s;
  });
  on("capture", (c) => {
    const shown = c.current || c.prepared;
    if (shown && !formEdited) {
      $("cap-name").value = shown.name;
      untilBox.checked = shown.duration_s === null;
      $("cap-duration").disabled = untilBox.checked;
      if (shown.duration_s !== null) $("cap-duration").value = shown.duration_s;
    }
    const box = $("cap-current");
    box.replaceChildren();
    if (c.current) {
      box.append(el("b", {}, c.current.name), " ", el("span", { class: "muted small" }, c.current.id));
    } else if (c.prepared) {  // pressed Start or Arm: every viewer sees what is coming
      const p = c.prepared;
      const what = p.action === "arm" ? "arming for" : "preparing";
      const length = p.duration_s == null ? "until stopped" : `${p.duration_s} s`;
      box.append(el("span", { dataset: { prepared: p.name } }, `${what} `, el("b", {}, p.name),
        ` (${length}, ${p.modules.length} module${p.modules.length === 1 ? "" : "s"})`));
    } else if (c.last) {
      box.append("last: ", el("a", { href: `/captures/${encodeURIComponent(c.last.id)}` }, c.last.name || c.last.id),
        " ", el("span", { class: `badge ${c.last.outcome}` }, c.last.outcome));
      if (c.last.reason) box.append(el("div", { class: "err small" }, c.last.reason));
    } else {
      box.append(el("span", { class: "muted" }, "none yet"));
    }
  });

  // --- modules: lamps, meters, rates ---------------------------------------------------------
  function moduleList() {
    const seen = new Set();
    const out = [];
    const add = (a) => { if (a && !seen.has(a)) { seen.add(a); out.push(a); } };
    const cap = (state.capture || {}).current;
    if (cap) cap.modules.forEach(add);
    ((state.rig || {}).modules || []).forEach((m) => add(m.address));
    Object.keys(state.levels || {}).forEach(add);
    Object.keys(state["channel-fault"] || {}).forEach(add);
    return out;
  }

  function channelsOf(address) {
    const rows = (((state.setup || {}).setup || {}).channels || {})[address];
    if (rows && rows.length) return rows.map((r) => ({ channel: r.channel, enabled: r.enabled }));
    const lv = ((state.levels || {})[address] || {}).levels || [];
    return lv.map((l) => ({ channel: l.channel, enabled: true }));
  }

  // Colour of a connector LED: red = fault now, magenta = fault earlier, yellow = set up but
  // not yet delivering clean data, green = measuring fine, off = not in use.
  function lamp(address, ch) {
    const f = ((state["channel-fault"] || {})[address] || {})[ch.channel];
    const q = ((state["data-quality"] || {})[address] || {})[ch.channel];
    const lv = ((state.levels || {})[address] || {}).levels || [];
    const phase = (state.phase || {}).phase || "idle";
    if (!ch.enabled) return { color: "off", text: "disabled" };
    if (f) {
      const now = Object.keys(FAULT_NAMES).filter((k) => f[k] && f[k] !== "none" && f[k] !== "prev");
      const prev = Object.keys(FAULT_NAMES).filter((k) => f[k] === "prev");
      if (now.length) return { color: "red", text: now.map((k) => FAULT_NAMES[k]).join(", ") };
      if (prev.length) return { color: "magenta", text: "earlier: " + prev.map((k) => FAULT_NAMES[k]).join(", ") };
    }
    if (q && q.flags && q.flags.length) return { color: "yellow", text: q.flags.join(", ") };
    if (lv.some((l) => l.channel === ch.channel)) {
      // Green means measuring fine now: levels of an ended measurement light nothing.
      return levelsStale(address) ? { color: "off", text: "" } : { color: "green", text: "" };
    }
    if (BUSY.has(phase) || phase === "armed") return { color: "yellow", text: "" };
    return { color: "off", text: "" };
  }

  // Meters and readouts. Every figure comes from the server (webapp/openapi/units.py): dB re
  // the unit's ISO 1683 reference written out (db_label, e.g. "dB re 20 µPa"), the unit as
  // printed (unit_label, "m/s²"), dBFS re the range's full scale (0 dBFS = the range's peak;
  // the converter clips at clip_dbfs, +1.5 dB). The bar is the block's peak in dBFS between
  // METER_FLOOR and the clip level; the headroom marker stands at 0 dBFS, the peak-hold mark
  // at the highest peak since the measurement started; OVL is the overload latch (clipped
  // samples or the module's overload report), held until the next measurement or disarming.
  // dB values are null for a silent channel (a cable fault delivers zeros).
  const METER_FLOOR = -60;
  const unitOf = (level) => level.unit_label || level.unit || "";
  const fmtEng = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toPrecision(4));
  const fmtDb = (v) => (v === null || v === undefined ? "−∞" : v.toFixed(1).replace("-", "−"));
  const fmtFs = (v) => (v === null || v === undefined ? "−∞" : (v > 0 ? "+" : "") + fmtDb(v));

  function meter(level, stale, key) {
    const clip = level && level.clip_dbfs != null ? level.clip_dbfs : 1.5;
    const pos = (db) => Math.max(0, Math.min(100, ((db - METER_FLOOR) / (clip - METER_FLOOR)) * 100));
    const over = !!(level && level.overload);
    const cls = "meter" + (stale && level ? " stale" : "") + (over ? " overloaded" : "");
    const marks = [el("b", { class: "fs", style: `left:${pos(0).toFixed(1)}%`, title: "0 dBFS: the range's full scale" }),
      el("span", { class: "headroom", style: `left:${pos(0).toFixed(1)}%` })];
    const ovl = el("span", { class: "ovl" + (over ? " on" : ""), title: over ? `overload: ${level.overload_reason}` : "no overload since the measurement started",
      dataset: { overload: key, on: over ? "1" : "0" } }, "OVL");
    if (!level || level.dbfs === null || level.dbfs === undefined) {
      return el("div", { class: "meter-row" }, el("div", { class: cls, dataset: { meter: key } }, marks), ovl);
    }
    const unit = unitOf(level);
    const zone = level.dbfs > 0 ? " over" : level.dbfs > -6 ? " high" : "";
    const bar = el("span", { class: "bar" + zone, style: `width:${pos(level.dbfs).toFixed(1)}%` });
    const hold = level.peak_hold_dbfs == null ? null : el("i", { class: "hold", style: `left:${pos(level.peak_hold_dbfs).toFixed(1)}%` });
    return el("div", { class: "meter-row" },
      el("div", { class: cls, dataset: { meter: key, dbfs: level.dbfs, hold: level.peak_hold_dbfs ?? "" },
        title: `peak ${fmtFs(level.dbfs)} dBFS (held ${fmtFs(level.peak_hold_dbfs)} dBFS); 0 dBFS = ${fmtEng(level.full_scale)} ${unit} peak` },
        bar, ...marks, hold),
      ovl);
  }

  function levelText(level) {
    if (!level) return "–";
    return `${fmtDb(level.db)} ${level.db_label || "dB"}`;
  }

  function engText(level) {
    if (!level) return "";
    const unit = unitOf(level);
    const fs = level.dbfs === null || level.dbfs === undefined ? "" : ` · ${fmtFs(level.dbfs)} dBFS`;
    return `${fmtEng(level.rms)} ${unit} RMS · ${fmtEng(level.peak)} ${unit} peak${fs}`;
  }

  // The levels of a capture that has ended stay on screen, dimmed: fresh are only levels
  // measured since the rig went live (armed, connecting, monitoring, recording), while it still is. New
  // levels of the next run show undimmed as they arrive.
  const LIVE_PHASES = new Set(["armed", "connecting", "monitoring", "recording"]);
  function liveSince() {
    const p = state.phase || {};
    if (!LIVE_PHASES.has(p.phase)) return null;
    const timeline = p.timeline || [];
    let since = p.since || 0;
    for (let i = timeline.length - 1; i >= 0 && LIVE_PHASES.has(timeline[i].phase); i--) {
      since = timeline[i].t;
    }
    return since;
  }
  function levelsStale(address) {
    const entry = (state.levels || {})[address];
    const since = liveSince();
    return !!entry && (since === null || entry.t < since);
  }

  // A module that was locked and no longer is, while the rig is armed or recording.
  function ptpLost(address, ms) {
    const p = (state.ptp || {})[address];
    const phase = (state.phase || {}).phase || "idle";
    return !!(p && p.locked && ms.ptp_status !== "Locked" && (BUSY.has(phase) || phase === "armed") && phase !== "stopping");
  }

  function moduleErrors(address) {
    return (state.log || []).filter((e) => e.module === address).slice(-3);
  }

  // A module streams while its statistics keep arriving (once a second) and the rig is live;
  // otherwise its rate reads 0. Arrival times are this browser's, not the server's clock.
  const statsSeen = {};
  on("stream-stats", (all) => {
    const now = performance.now();
    for (const [address, st] of Object.entries(all || {})) {
      const seen = statsSeen[address];
      if (!seen || seen.t !== st.t) statsSeen[address] = { t: st.t, at: now };
    }
  });
  function streaming(address) {
    const seen = statsSeen[address];
    return liveSince() !== null && !!seen && performance.now() - seen.at < 2500;
  }
  setInterval(() => {
    for (const address of Object.keys(statsSeen)) {
      const node = document.querySelector(`[data-rate="${CSS.escape(address)}"]`);
      if (node && node.dataset.streaming !== (streaming(address) ? "1" : "0")) { scheduleModules(); break; }
    }
  }, 500);

  // "Ch 2" and the name the setup's channel table gives it, its point in the tooltip.
  function channelName(address, n) {
    const rows = (((state.setup || {}).setup || {}).channels || {})[address] || [];
    const row = rows.find((r) => r.channel === n) || {};
    const dof = row.point ? (row.direction ? `${row.point}:${row.direction}` : row.point) : (row.direction || "");
    return el("span", { class: "ch-name", title: [row.name, dof, row.group].filter(Boolean).join(" · ") || null,
      dataset: { channelName: `${address}/${n}` } }, `Ch ${n}`,
      row.name ? el("span", { class: "small muted" }, ` ${row.name}`) : null);
  }

  function renderModules() {
    const box = $("modules");
    const rigModules = Object.fromEntries(((state.rig || {}).modules || []).map((m) => [m.address, m]));
    const cards = [];
    for (const address of moduleList()) {
      const rm = rigModules[address] || {};
      const info = rm.info || {};
      const ms = (state["module-status"] || {})[address];
      const stats = (state["stream-stats"] || {})[address];
      const levels = Object.fromEntries((((state.levels || {})[address] || {}).levels || []).map((l) => [l.channel, l]));
      const stale = levelsStale(address);
      const rows = [];
      for (const ch of channelsOf(address)) {
        const L = lamp(address, ch);
        const level = levels[ch.channel];
        rows.push(
          el("span", { class: `lamp ${L.color}`, title: L.text || L.color,
            dataset: { lamp: `${address}/${ch.channel}`, color: L.color } }),
          channelName(address, ch.channel),
          el("div", {}, meter(level, stale, `${address}/${ch.channel}`),
            L.text ? el("div", { class: "fault-name" + (L.color === "magenta" ? " prev" : "") }, L.text) : null),
          el("div", { class: "readout" },
            el("span", { class: "db" + (stale && level ? " stale" : ""),
              title: stale && level ? "last level measured; the capture has ended" : level && level.quantity ? `${level.quantity} level, RMS` : null,
              dataset: { level: `${address}/${ch.channel}`, stale: stale && level ? "1" : "0" } },
              levelText(level)),
            level ? el("span", { class: "eng" + (stale ? " stale" : ""), dataset: { eng: `${address}/${ch.channel}` } }, engText(level)) : null));
      }
      const errs = moduleErrors(address);
      const unreachable = rm.reachable === false;
      cards.push(el("section", { class: "card module-card", dataset: { module: address, reachable: String(rm.reachable) } },
        el("div", { class: "head" },
          el("b", {}, address),
          unreachable ? el("span", { class: "badge failed", dataset: { unreachable: address } }, "unreachable") : null,
          el("span", { class: "muted" }, [info.name, rm.role].filter(Boolean).join(" · ")),
          ms ? el("span", { class: "small muted" }, `${ms.module_state} · ${ms.input_status} · PTP ${ms.ptp_status}`) : null,
          ms && ptpLost(address, ms) ? el("span", { class: "badge failed", dataset: { ptpLost: address } }, `PTP ${ms.ptp_status}`) : null),
        unreachable ? el("div", { class: "err small", dataset: { unreachableReason: address } },
          `Cannot be reached: ${rm.error || "no answer"} — `,
          rm.last_seen ? `last seen ${Dash.fmtTime(rm.last_seen)}` : "never seen since the dashboard started",
          rm.checked ? ` (checked ${Dash.fmtTime(rm.checked)})` : "") : null,
        el("div", { class: "channels" }, rows),
        el("div", { class: "stats" },
          el("span", { dataset: { bytes: address } }, "received ", Dash.fmtBytes(stats ? stats.bytes_received : null)),
          el("span", { dataset: { rate: address, streaming: streaming(address) ? "1" : "0" },
            class: stats && !streaming(address) ? "stale" : "" },
            "rate ", Dash.fmtRate(stats ? (streaming(address) ? stats.rate_bps : 0) : null))),
        errs.map((e) => el("div", { class: e.level === "error" ? "err small" : "warn small" }, e.message))));
    }
    if (!cards.length) {
      cards.push(el("section", { class: "card" }, el("p", { class: "muted" },
        "No modules yet: add them on the ", el("a", { href: "/rig" }, "Rig"), " page.")));
    }
    box.replaceChildren(...cards);
    renderWaveSelect();
    renderCompare();
  }
  // Several topics arrive per tick: draw the cards once per frame at most.
  var drawPending = false;
  function scheduleModules() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; renderModules(); });
  }
  for (const t of ["rig", "setup", "levels", "channel-fault", "data-quality", "stream-stats",
    "module-status", "capture", "log"]) on(t, scheduleModules);

  // --- log -----------------------------------------------------------------------------------
  on("log", (log) => {
    const list = $("log");
    list.replaceChildren();
    const entries = (log || []).slice().reverse();
    if (!entries.length) list.append(el("li", { class: "muted" }, "Nothing reported."));
    for (const e of entries) {
      list.append(el("li", { class: e.level },
        el("span", { class: "muted" }, new Date(e.t * 1000).toLocaleTimeString(), " "),
        e.module && !e.message.includes(e.module) ? el("b", {}, e.module, ": ") : null, e.message,
        e.request ? el("span", { class: "muted" }, ` (${e.request})`) : null));
    }
  });

  // --- waveform and spectrum ------------------------------------------------------------------
  // Each viewer chooses its own channel (the server sends this browser only that one); the
  // choice is sent again after a reconnection, since the server forgets it with the socket.
  const waveSelect = $("wave-select");
  let waveChoice = "";
  function renderWaveSelect() {
    const options = [];
    for (const address of moduleList()) {
      for (const ch of channelsOf(address)) {
        if (ch.enabled) options.push(`${address}/${ch.channel}`);
      }
    }
    const current = Array.from(waveSelect.options).map((o) => o.value).slice(1);
    if (current.join("|") !== options.join("|")) {
      waveSelect.replaceChildren(el("option", { value: "" }, "master's first channel"),
        ...options.map((o) => el("option", { value: o }, o.replace(/\/(\d+)$/, " · Ch $1"))));
      waveSelect.value = options.includes(waveChoice) ? waveChoice : "";
    }
  }
  function sendWaveChoice() {
    if (!waveChoice) { socket.emit("select-waveform", { module: null, channel: null }); return; }
    const cut = waveChoice.lastIndexOf("/");
    socket.emit("select-waveform", { module: waveChoice.slice(0, cut), channel: Number(waveChoice.slice(cut + 1)) });
  }
  waveSelect.addEventListener("change", () => { waveChoice = waveSelect.value; sendWaveChoice(); });
  socket.on("connect", () => { if (waveChoice) sendWaveChoice(); });

  function plotSize(node) {
    return { width: Math.max(200, node.clientWidth), height: 200 };
  }
  const wavePlot = new uPlot({
    ...plotSize($("wave-plot")), scales: { x: { time: false } },
    series: [{ label: "t (ms)" }, { label: "value", stroke: "#0b63c5", width: 1 }],
    axes: [{ label: "time (ms)" }, { label: "" }], legend: { show: false },
  }, [[], []], $("wave-plot"));
  // The live spectrum is computed on the server from every sample of the shown channel (and of
  // up to three overlaid ones) in this viewer's window and lines (webapp/dsp/spectrum.py);
  // averaging over time and the amplitude (dB, RMS, PSD) are this viewer's. Logarithmic
  // frequency axis in decades, ending at the measurement bandwidth; line 0 (DC) is left out.
  const specPlot = new Dash.SpectrumPlot($("spec-plot"), { readout: $("spec-cursor"), height: 200 });
  new ResizeObserver(() => wavePlot.setSize(plotSize($("wave-plot")))).observe($("wave-plot"));

  // --- sound level meter and bands of the shown channel ---------------------------------------
  // The server runs a sound level meter on every sample of each channel a viewer shows
  // (webapp/dsp): weighted and time-weighted levels, Leq, LAFmax and peaks since the recording
  // started, and Z-weighted band levels with the A and C corrections at each mid-band, which
  // this viewer applies for the weighting it picks.
  function shownChannel() {
    if (waveChoice) return waveChoice;
    const first = moduleList()[0];
    const ch = first ? channelsOf(first).find((c) => c.enabled) : null;
    return ch ? `${first}/${ch.channel}` : "";
  }
  const SOUND_ROWS = [["LAF", "A-weighted, Fast", "now"], ["LAS", "A-weighted, Slow", "now"],
    ["LCF", "C-weighted, Fast", "now"], ["LZF", "Z-weighted, Fast", "now"],
    ["LAeq", "A-weighted equivalent", "since"], ["LAFmax", "A-weighted Fast maximum", "since"],
    ["LCpeak", "C-weighted peak", "since"]];
  const OTHER_ROWS = [["LZF", "Fast", "now"], ["LZeq", "equivalent", "since"], ["LZpeak", "peak", "since"]];
  let bandLabels = [];
  const bandPlot = new uPlot({
    ...plotSize($("band-plot")), scales: { x: { time: false } },
    series: [{ label: "band" }, { label: "dB", stroke: "#0b63c5", fill: "rgba(11,99,197,0.35)",
      paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
    axes: [{ label: "mid-band frequency (Hz)", splits: () => Dash.bandTicks(bandLabels),
      values: (u, splits) => splits.map((i) => bandLabels[i] ?? "") },
      { label: "dB" }], legend: { show: false },
  }, [[], []], $("band-plot"));
  new ResizeObserver(() => bandPlot.setSize(plotSize($("band-plot")))).observe($("band-plot"));
  for (const id of ["band-fraction", "band-weighting"]) $(id).addEventListener("change", renderSound);
  function renderSound() {
    const key = shownChannel();
    const cut = key.lastIndexOf("/");
    const all = state["sound-levels"] || {};
    const levels = key ? ((all[key.slice(0, cut)] || {})[key.slice(cut + 1)]) : null;
    $("sound-channel").textContent = key ? key.replace(/\/(\d+)$/, " · Ch $1") : "";
    $("sound-empty").hidden = !!levels;
    $("sound-body").hidden = !levels;
    if (!levels) return;
    const rows = levels.unit === "Pa" ? SOUND_ROWS : OTHER_ROWS;
    $("sound-table").replaceChildren(...rows.map(([k, what, when]) => el("tr", { dataset: { sound: k } },
      el("th", {}, k),
      el("td", { class: "num" }, levels[k] == null ? "–" : levels[k].toFixed(1)),
      el("td", { class: "muted small" }, when === "since" ? `${what}, since ${new Date(levels.since * 1000).toLocaleTimeString()}` : what))));
    $("sound-ref").textContent = `dB ${levels.reference.replace(/^dB /, "")} · ${levels.duration_s.toFixed(1)} s measured`;
    const bands = (levels.bands || {})[$("band-fraction").value];
    if (!bands) { bandPlot.setData([[], []]); return; }
    const w = $("band-weighting").value;
    const corr = w === "Z" ? null : bands[`${w}_correction`];
    const values = bands.Z.map((v, i) => (v == null ? null : corr ? v + corr[i] : v));
    bandLabels = bands.labels;
    bandPlot.setData([bands.labels.map((_, i) => i), values]);
    bandPlot.axes[1].label = `dB${w === "Z" ? "" : `(${w})`} ${levels.reference.replace(/^dB /, "")}`;
    $("band-plot").dataset.bands = bands.labels.length;
    $("band-plot").dataset.peak = bands.labels[values.indexOf(Math.max(...values.filter((v) => v != null)))];
  }
  on("sound-levels", renderSound);
  waveSelect.addEventListener("change", renderSound);

  let waveCount = 0;
  let plotUnit = null;
  function labelPlots(w) {
    if (w.unit === plotUnit) return;
    plotUnit = w.unit;
    // uPlot draws axis labels from its options; set them and redraw.
    wavePlot.axes[1].label = w.unit_label || w.unit || "";
    wavePlot.redraw(false, true);
  }
  // --- live spectrum ---------------------------------------------------------------------------
  let compare = [];  // "address/channel" keys overlaid on the shown channel's spectrum
  const specs = new Map();  // key → { ms: Float64Array, frames, queue, s } — this viewer's averages
  const keyOf = (module, channel) => `${module}/${channel}`;
  const refOf = (key) => { const cut = key.lastIndexOf("/"); return { module: key.slice(0, cut), channel: Number(key.slice(cut + 1)) }; };
  function sendSpectrumChoice() {
    socket.emit("select-spectrum", { window: $("spec-window").value, lines: Number($("spec-lines").value),
      compare: compare.filter((k) => k !== shownChannel()).map(refOf) });
    specs.clear();
  }
  for (const id of ["spec-window", "spec-lines"]) $(id).addEventListener("change", sendSpectrumChoice);
  for (const id of ["spec-avg", "spec-n"]) $(id).addEventListener("change", () => specs.clear());
  $("spec-amp").addEventListener("change", () => renderSpectrum());
  $("spec-reset").onclick = () => specs.clear();
  socket.on("connect", sendSpectrumChoice);
  waveSelect.addEventListener("change", () => {
    compare = compare.filter((k) => k !== waveChoice);
    specs.clear(); specPlot.clearCursor(); renderCompare(); sendSpectrumChoice();
  });
  function renderCompare() {
    const shown = shownChannel();
    const keys = [];
    for (const address of moduleList()) for (const ch of channelsOf(address)) if (ch.enabled) keys.push(keyOf(address, ch.channel));
    compare = compare.filter((k) => keys.includes(k));
    const choices = keys.filter((k) => k !== shown).map((k) => ({ key: k, label: k.replace(/\/(\d+)$/, " · Ch $1") }));
    Dash.renderCompareList($("spec-compare-list"), choices, compare, (chosen) => {
      compare = chosen;
      renderCompare(); sendSpectrumChoice();
    });
  }
  on("spectrum", () => {
    const s = state.spectrum;
    if (!s) return;
    const key = keyOf(s.module, s.channel);
    const ms = Float64Array.from(new Float32Array(s.ms));
    const mode = $("spec-avg").value;
    const n = Math.max(1, Number($("spec-n").value) || 1);
    let spec = specs.get(key);
    if (!spec || spec.s.window !== s.window || spec.s.lines !== s.lines || mode === "none") {
      spec = { ms, frames: s.frames, queue: [{ ms, frames: s.frames }], s };
      specs.set(key, spec);
    } else if (mode === "linear") {  // the latest N frames, each frame counted once
      spec.queue.push({ ms, frames: s.frames });
      let total = spec.queue.reduce((a, q) => a + q.frames, 0);
      while (spec.queue.length > 1 && total - spec.queue[0].frames >= n) total -= spec.queue.shift().frames;
      const out = new Float64Array(ms.length);
      for (const q of spec.queue) for (let i = 0; i < out.length; i++) out[i] += q.ms[i] * q.frames;
      for (let i = 0; i < out.length; i++) out[i] /= total;
      spec.ms = out; spec.frames = total;
    } else if (mode === "exponential") {  // time constant of N frames
      const a = Math.min(1, s.frames / n);
      for (let i = 0; i < ms.length; i++) spec.ms[i] += (ms[i] - spec.ms[i]) * a;
      spec.frames += s.frames;
    } else {  // peak hold
      for (let i = 0; i < ms.length; i++) spec.ms[i] = Math.max(spec.ms[i], ms[i]);
      spec.frames += s.frames;
    }
    spec.s = s;
    renderSpectrum();
  });
  function amplitude(ms, s) {
    const amp = $("spec-amp").value;
    const ref = s.reference_value || 1;
    if (amp === "rms") return Math.sqrt(ms);
    const v = amp === "psd" ? ms / s.enbw_hz : ms;
    return ms > 0 ? 10 * Math.log10(v / (ref * ref)) : null;
  }
  function ampLabel(s) {
    const amp = $("spec-amp").value;
    const ref = (s.db_label || "dB").replace(/^dB re /, "");
    if (amp === "rms") return `RMS (${s.unit_label || s.unit || ""})`;
    if (amp === "psd") return `dB re (${ref})²/Hz`;
    return s.db_label || "dB";
  }
  function renderSpectrum() {
    const spec = specs.get(shownChannel());
    if (!spec) return;
    const s = spec.s;
    const f = new Float64Array(spec.ms.length - 1);
    for (let i = 1; i < spec.ms.length; i++) f[i - 1] = i * s.df;
    // Overlays in the same lines and unit only: another rate or unit would need another axis.
    const shown = [[shownChannel(), spec], ...compare.filter((k) => k !== shownChannel())
      .map((k) => [k, specs.get(k)]).filter(([, o]) => o && o.ms.length === spec.ms.length &&
        o.s.df === s.df && o.s.db_label === s.db_label)];
    const traces = shown.map(([k, o]) => ({ label: k.replace(/\/(\d+)$/, " · Ch $1"),
      values: Array.from(o.ms.subarray(1), (v) => amplitude(v, o.s)) }));
    const fmtV = (v) => (v == null ? "–" : $("spec-amp").value === "rms" ? v.toPrecision(4) : v.toFixed(2));
    specPlot.show(f, traces, ampLabel(s), fmtV, ampLabel(s));
    let best = 1;
    for (let i = 1; i < spec.ms.length; i++) if (spec.ms[i] > spec.ms[best]) best = i;
    const names = { hann: "Hann", flattop: "flat top", uniform: "uniform" };
    const info = $("spec-info");
    info.textContent = `peak ${fmtV(amplitude(spec.ms[best], s))} ${ampLabel(s)} at ${(best * s.df).toFixed(1)} Hz · ` +
      `${names[s.window]}, ${s.lines} lines of ${s.df.toFixed(2)} Hz to ${(s.lines * s.df).toFixed(0)} Hz · ${spec.frames} frames`;
    info.dataset.peakDb = (10 * Math.log10(spec.ms[best] / ((s.reference_value || 1) ** 2))).toFixed(2);
    info.dataset.peakHz = (best * s.df).toFixed(1);
    info.dataset.window = s.window;
  }

  on("waveform", (w) => {
    if (!w) return;
    if ($("plots").hidden) {
      $("plots").hidden = false;
      $("wave-empty").hidden = true;
    }
    labelPlots(w);
    const values = new Float32Array(w.values);
    const x = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) x[i] = (i / w.sample_rate) * 1000;
    wavePlot.setData([x, values]);
    waveCount += 1;
    const info = $("wave-info");
    info.textContent = `${w.module} Ch ${w.channel}: ${values.length} points at ${w.sample_rate} S/s, ${w.unit_label || w.unit || ""}`;
    info.dataset.count = waveCount;
  });

  // --- fault injection --------------------------------------------------------------------------
  const fi = { module: $("fi-module"), kind: $("fi-kind"), channel: $("fi-channel") };
  function fillSelect(select, values) {
    const current = select.value;
    const have = Array.from(select.options).map((o) => o.value).join("|");
    if (have === values.map((v) => v[0]).join("|")) return;
    select.replaceChildren(...values.map(([v, label]) => el("option", { value: v }, label)));
    if (values.some((v) => String(v[0]) === current)) select.value = current;
  }
  function renderFaultChannels() {
    const rigModule = ((state.rig || {}).modules || []).find((m) => m.address === fi.module.value);
    const count = ((rigModule || {}).info || {}).input_channels || 0;
    const kind = ((state.emulator || {}).kinds || []).find((k) => k.kind === fi.kind.value);
    const values = kind && kind.channel
      ? Array.from({ length: count }, (_, i) => [String(i + 1), `Ch ${i + 1}`]) : [["", "–"]];
    fillSelect(fi.channel, values);
    fi.channel.disabled = !(kind && kind.channel);
  }
  on("emulator", (em) => {
    const panel = $("faults-panel");
    panel.hidden = !(em && em.available && em.modules.length);
    if (panel.hidden) return;
    fillSelect(fi.module, em.modules.map((m) => [m, m]));
    fillSelect(fi.kind, em.kinds.map((k) => [k.kind, k.label]));
    renderFaultChannels();
    const list = $("fi-list");
    const label = Object.fromEntries(em.kinds.map((k) => [k.kind, k.label]));
    list.replaceChildren(...em.injected.slice().reverse().map((f) => el("li", { class: f.active ? "error" : "" },
      `${new Date(f.t * 1000).toLocaleTimeString()} ${f.module}: ${label[f.fault] || f.fault}`,
      f.channel ? ` on Ch ${f.channel}` : "",
      el("span", { class: "muted" }, f.active ? (f.until ? ` — until ${new Date(f.until * 1000).toLocaleTimeString()}` : " — until cleared") : " — over"))));
  });
  on("rig", renderFaultChannels);
  fi.module.addEventListener("change", renderFaultChannels);
  fi.kind.addEventListener("change", renderFaultChannels);
  $("fi-inject").onclick = async () => {
    Dash.showError($("fi-error"), null);
    const body = { module: fi.module.value, fault: fi.kind.value };
    if (!fi.channel.disabled) body.channel = Number(fi.channel.value);
    const d = $("fi-duration").value;
    if (d) body.duration_s = Number(d);
    try { await api("POST", "/api/emulator/faults", body); } catch (e) { Dash.showError($("fi-error"), e); }
  };
  function renderClearLabel() {  // says which module the button clears
    $("fi-clear").textContent = fi.module.value ? `Clear faults of ${fi.module.value}` : "Clear faults of this module";
  }
  fi.module.addEventListener("change", renderClearLabel);
  on("emulator", renderClearLabel);
  $("fi-clear").onclick = async () => {
    Dash.showError($("fi-error"), null);
    try { await api("DELETE", "/api/emulator/faults", { module: fi.module.value }); } catch (e) { Dash.showError($("fi-error"), e); }
  };
  $("fi-clear-all").onclick = async () => {
    Dash.showError($("fi-error"), null);
    try { await api("DELETE", "/api/emulator/faults", {}); } catch (e) { Dash.showError($("fi-error"), e); }
  };

  Dash.on("connection", renderButtons);
  renderButtons();
})();
