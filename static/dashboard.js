// Shared by every dashboard page: the Socket.IO connection, the state it keeps, the JSON API
// helper (with the CSRF header), the login/control-lock bar and a few formatting helpers. Page
// scripts register renderers with Dash.on(topic, fn); a "state" snapshot calls every renderer,
// a topic event only its own.
"use strict";

const Dash = (() => {
  const body = document.body.dataset;
  const AUTH = { enabled: body.auth === "on", user: body.user || null, role: body.role || null };
  // Controls a session may not use are not shown (the server refuses them anyway): elements
  // marked data-needs="operator" (or "admin") hide for lower roles and share links.
  const RANK = { viewer: 1, operator: 2, admin: 3 };
  AUTH.can = (role) => !AUTH.enabled || (RANK[AUTH.role] || 0) >= RANK[role];
  document.addEventListener("DOMContentLoaded", () => {
    for (const node of document.querySelectorAll("[data-needs]")) {
      if (!AUTH.can(node.dataset.needs)) node.hidden = true;
    }
    const note = document.getElementById("viewer-note");
    if (note) note.hidden = AUTH.can("operator");
  });
  const renderers = {};
  const state = { log: [] };
  let connected = false;
  let everConnected = false;

  const PHASE_LABELS = {
    "idle": "Idle", "validating": "Validating", "ptp-sync": "PTP sync", "ptp-lock": "PTP lock",
    "opening": "Opening", "creating": "Creating", "detecting": "Detecting",
    "configuring": "Configuring", "settling": "Settling", "synchronizing": "Synchronizing",
    "starting-stream": "Starting stream", "armed": "Armed", "connecting": "Connecting",
    "monitoring": "Monitoring",
    "recording": "Recording", "stopping": "Stopping", "finishing": "Finishing",
    "closing": "Closing", "disarming": "Disarming", "completed": "Completed", "failed": "Failed",
  };

  function on(topic, fn) {
    (renderers[topic] = renderers[topic] || []).push(fn);
    if (state[topic] !== undefined) fn(state[topic], state);
  }

  function fire(topic) {
    for (const fn of renderers[topic] || []) {
      try { fn(state[topic], state); } catch (e) { console.error(topic, e); }
    }
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // The session ended (or never was): to the login page, back here afterwards.
  let leaving = false;
  function toLogin() {
    if (leaving) return;
    leaving = true;
    const next = encodeURIComponent(location.pathname + location.search).replace(/%2F/g, "/");
    location.assign("/login?next=" + next);
  }

  // JSON API call; resolves to the body, rejects with an Error carrying .field and .status.
  // A 401 (not logged in any more) goes to the login page.
  async function api(method, url, body) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, opts);
    } catch (e) {
      const err = new Error("the dashboard cannot be reached");
      err.status = 0;
      throw err;
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (res.status === 401 && AUTH.enabled) toLogin();
    if (!res.ok) {
      const err = new Error((data && data.error) || `${res.status} ${res.statusText}`);
      err.field = data && data.field;
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function setConn(ok) {
    const changed = connected !== ok;
    connected = ok;
    if (changed) fire("connection");
    const conn = document.getElementById("conn");
    const banner = document.getElementById("reconnect-banner");
    if (ok) {
      conn.textContent = "live";
      conn.className = "chip conn-ok";
      banner.hidden = true;
    } else {
      conn.textContent = everConnected ? "reconnecting…" : "connecting…";
      conn.className = "chip conn-wait";
      banner.hidden = !everConnected;
    }
  }

  const socket = io({ reconnectionDelay: 500, reconnectionDelayMax: 3000, timeout: 5000 });
  socket.on("connect", () => { everConnected = true; setConn(true); });
  socket.on("disconnect", (reason) => {
    setConn(false);
    // The server dropped this connection on purpose (the session ended: logout elsewhere,
    // a removed user, a revoked share link); Socket.IO does not reconnect by itself then.
    if (reason === "io server disconnect") {
      checkSession(true).then((ended) => { if (!ended) setTimeout(() => socket.connect(), 1000); });
    }
  });
  socket.on("connect_error", () => { setConn(false); checkSession(); });
  socket.io.on("reconnect_attempt", () => setConn(false));

  socket.on("state", (snap) => {
    for (const [k, v] of Object.entries(snap)) state[k] = v;
    state.log = snap.log || [];
    for (const topic of Object.keys(renderers)) fire(topic);
  });

  // One push: every topic that changed (its whole new value) and the new log entries.
  socket.on("update", (u) => {
    const topics = (u && u.topics) || {};
    for (const [topic, value] of Object.entries(topics)) state[topic] = value;
    const entries = (u && u.log) || [];
    if (entries.length) state.log = [...state.log, ...entries].slice(-100);
    for (const topic of Object.keys(topics)) fire(topic);
    if (entries.length) fire("log");
  });
  socket.on("waveform", (w) => { state.waveform = w; fire("waveform"); });
  socket.on("spectrum", (s) => { state.spectrum = s; fire("spectrum"); });
  socket.on("frf", (f) => { state.frf = f; fire("frf"); });

  // --- access control: refusals, session end, the control lock --------------------------------
  const authBanner = document.getElementById("auth-banner");
  let bannerTimer = null;
  function showAuthProblem(message) {
    authBanner.textContent = message;
    authBanner.hidden = false;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(() => { authBanner.hidden = true; }, 8000);
  }
  // A refused control event: the server says why (role, control lock, session over).
  socket.on("auth_error", (e) => {
    if (e && e.status === 401) { toLogin(); return; }
    showAuthProblem((e && e.error) || "not allowed");
  });

  // The Socket.IO handshake is refused once a session is over (logout elsewhere, removed
  // user, revoked share link): ask the server whether we are still anybody, at most every 5 s.
  let lastSessionCheck = 0;
  // Resolves true when the session is over (and the page is on its way to the login page).
  async function checkSession(force) {
    if (!AUTH.enabled || (!force && Date.now() - lastSessionCheck < 5000)) return false;
    lastSessionCheck = Date.now();
    try {
      const res = await fetch("/api/auth/session", { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!res.ok) return false;
      const info = await res.json();
      if (info.enabled && !info.user && !info.share) {
        const banner = document.getElementById("reconnect-banner");
        banner.textContent = "Your session has ended — taking you to the login page…";
        banner.hidden = false;
        setTimeout(toLogin, 1500);
        return true;
      }
    } catch (e) { /* the server is away: keep reconnecting */ }
    return false;
  }

  function renderControl(c) {
    const box = document.getElementById("control-box");
    if (!box || !c) return;
    box.hidden = !c.enabled;
    const holder = c.holder;
    const mine = holder && AUTH.user && holder.user === AUTH.user;
    const label = document.getElementById("control-holder");
    label.textContent = holder
      ? `control: ${mine ? "you" : holder.user} since ${new Date(holder.since * 1000).toLocaleTimeString()}`
      : "control: free";
    label.dataset.holder = holder ? holder.user : "";
    const asking = (c.requests || []).map((r) => r.user);
    if (asking.length) label.textContent += ` · asking: ${asking.join(", ")}`;
    const show = (id, visible) => { const b = document.getElementById(id); if (b) b.hidden = !visible; };
    show("control-request", !mine);
    show("control-take", !!holder && !mine);
    show("control-release", !!mine);
    const request = document.getElementById("control-request");
    if (request) request.textContent = holder ? "Request control" : "Take control";
    state.controlLock = c;
    fire("control-lock");
  }
  socket.on("control-lock", renderControl);
  function controlAction(id, path) {
    const button = document.getElementById(id);
    if (!button) return;
    button.addEventListener("click", async () => {
      try { renderControl(await api("POST", path, {})); } catch (e) { showAuthProblem(e.message); }
    });
  }
  if (AUTH.enabled) {
    controlAction("control-request", "/api/auth/control/request");
    controlAction("control-take", "/api/auth/control/take");
    controlAction("control-release", "/api/auth/control/release");
    socket.on("connect", () => api("GET", "/api/auth/control").then(renderControl).catch(() => {}));
  }

  // Common header: phase chip and viewer count.
  on("phase", (p) => {
    const chip = document.getElementById("phase-chip");
    chip.textContent = PHASE_LABELS[p.phase] || p.phase;
    chip.className = "chip phase-" + p.phase;
    chip.dataset.phase = p.phase;
  });
  on("viewers", (v) => {
    document.getElementById("viewers").textContent =
      `${v.count} viewer${v.count === 1 ? "" : "s"}`;
  });

  // --- formatting ---------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  }

  function fmtRate(bps) {
    return bps === null || bps === undefined ? "–" : fmtBytes(bps) + "/s";
  }

  function fmtDuration(s) {
    if (s === null || s === undefined || isNaN(s)) return "–";
    const sign = s < 0 ? "-" : "";
    s = Math.abs(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const ss = sec.toFixed(1).padStart(4, "0");
    return sign + (h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${String(m).padStart(2, "0")}:${ss}`);
  }

  function fmtSeconds(s) {
    return s >= 120 ? `${+(s / 60).toFixed(1)} min` : `${+s.toFixed(1)} s`;
  }

  // Band plots: one tick per band, or per octave (the bands with an octave's nominal
  // frequency, counted from 1 kHz) when one-third-octave labels would not fit.
  function bandTicks(labels) {
    const all = labels.map((_, i) => i);
    if (labels.length <= 16) return all;
    const ref = labels.indexOf("1k");
    return all.filter((i) => ((i - (ref < 0 ? 0 : ref)) % 3 + 3) % 3 === 0);
  }

  function fmtTime(t) {
    if (!t) return "–";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return d.toLocaleString();
  }

  // Shows an API failure next to the control that caused it.
  function showError(target, err) {
    if (!target) return;
    target.textContent = err ? err.message : "";  // the message names the field itself
    target.hidden = !err;
  }

  return {
    state, on, fire, api, socket, el, fmtBytes, fmtRate, fmtDuration, fmtSeconds, fmtTime, showError,
    bandTicks,
    PHASE_LABELS, AUTH, isConnected: () => connected,
  };
})();
