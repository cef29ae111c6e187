// The Setup page: bandwidth, per-module channel tables with TEDS results, manual transducers,
// re-run detection, named setups.
"use strict";

(() => {
  const { el, api, on, state } = Dash;
  const $ = (id) => document.getElementById(id);
  const BANDWIDTHS = ["204.8 kHz", "102.4 kHz", "51.2 kHz", "25.6 kHz", "12.8 kHz", "6.4 kHz",
    "3.2 kHz", "1.6 kHz", "800 Hz", "400 Hz", "200 Hz", "100 Hz", "50 Hz"];
  const rateOf = (bw) => Math.round(parseFloat(bw) * (bw.includes("kHz") ? 1000 : 1) * 2.56);

  let draft = null;    // the setup being edited
  let dirty = false;
  const setDirty = (d) => { dirty = d; $("dirty-note").hidden = !d; };
  const errBox = $("setup-error");

  function rigModules() { return ((state.rig || {}).modules || []); }
  // The channel table and the test card (static/channel_table.js) edit this same draft.
  window.SetupPage = { draft: () => draft, setDirty, rigModules, onRender: [] };

  function renderBandwidths() {
    const rates = rigModules().map((m) => (m.info || {}).sample_rates).filter((r) => r && r.length);
    const allowed = BANDWIDTHS.filter((bw) => rates.every((r) => r.includes(rateOf(bw))));
    const select = $("bandwidth");
    const armedAt = Object.values(state.configured || {}).map((c) => c.bandwidth)[0];
    select.replaceChildren(el("option", { value: "" }, `highest all modules support${armedAt ? ` (= ${armedAt} when last armed)` : ""}`),
      ...allowed.map((bw) => el("option", { value: bw }, bw)));
    if (draft && draft.bandwidth && !allowed.includes(draft.bandwidth)) select.append(el("option", { value: draft.bandwidth }, draft.bandwidth));
    if (draft) select.value = draft.bandwidth || "";
  }

  function sensText(sensitivity, unitName) {
    const unit = unitName === "m/s^2" ? "m/s²" : unitName;
    const sens = Number(sensitivity);
    return sens < 1 ? `${(sens * 1000).toPrecision(4)} mV/${unit}` : `${sens.toPrecision(4)} V/${unit}`;
  }

  // What "auto" stood for when the rig was last armed (the module's default range and filter,
  // the detected transducer): shown under each control left on auto.
  function applied(address, channel) {
    const c = (state.configured || {})[address];
    return c ? (c.channels || []).find((x) => x.channel === channel) || null : null;
  }
  function withApplied(control, value, text) {
    if (value !== null && value !== undefined && value !== "") return control;
    if (text === null || text === undefined) return control;
    return el("div", {}, control, el("div", { class: "small muted applied", title: "what auto used when the rig was last armed" }, `= ${text}`));
  }
  const onOff = (v) => (v === null || v === undefined ? null : v ? "on" : "off");

  // The changes a setup makes to another, in the user's terms (for the confirmation on an
  // armed rig).
  function describeChanges(from, to) {
    const out = [];
    const show = (v) => (v === null || v === undefined ? "auto" : v === true ? "on" : v === false ? "off" : String(v));
    if ((from.bandwidth || null) !== (to.bandwidth || null)) out.push(`bandwidth ${from.bandwidth || "highest"} → ${to.bandwidth || "highest"}`);
    if (!!from.multi_socket !== !!to.multi_socket) out.push(`one stream socket per channel ${show(!!from.multi_socket)} → ${show(!!to.multi_socket)}`);
    const names = { enabled: "on", range: "range", filter: "filter", ccld: "CCLD", polvolt: "polarisation" };
    for (const [address, rows] of Object.entries(to.channels || {})) {
      const before = (from.channels || {})[address] || [];
      for (const row of rows) {
        const old = before.find((r) => r.channel === row.channel) || {};
        for (const [key, name] of Object.entries(names)) {
          if (JSON.stringify(old[key] ?? null) !== JSON.stringify(row[key] ?? null)) {
            out.push(`${address} Ch ${row.channel}: ${name} ${show(old[key])} → ${show(row[key])}`);
          }
        }
        const ts = (t) => (t ? sensText(t.sensitivity, t.unit) : "auto");
        if (ts(old.transducer) !== ts(row.transducer)) out.push(`${address} Ch ${row.channel}: transducer ${ts(old.transducer)} → ${ts(row.transducer)}`);
      }
    }
    return out;
  }

  function tedsText(t, detected) {
    if (!detected) return el("span", { class: "muted", title: "detection runs when the rig is armed" }, "not detected yet");
    if (!t) return el("span", { class: "muted" }, "none found");
    const type = t.type || {};
    const name = [type.prefix, type.number, type.model, type.variant].filter(Boolean).join("-");
    return el("span", {}, el("b", {}, name || "?"),
      el("div", { class: "small muted" }, `s/n ${t.serialNumber ?? "?"} · ${sensText(t.sensitivity, t.unit)}`,
        t.requiresCcld ? " · CCLD" : "", t.requires200V ? " · 200 V" : ""));
  }

  function triSelect(value, onChange, label) {
    const s = el("select", { "aria-label": label },
      el("option", { value: "auto" }, "auto"), el("option", { value: "on" }, "on"), el("option", { value: "off" }, "off"));
    s.value = value === null || value === undefined ? "auto" : value ? "on" : "off";
    s.addEventListener("change", () => { onChange(s.value === "auto" ? null : s.value === "on"); setDirty(true); });
    return s;
  }

  function optSelect(options, value, onChange, label) {
    const s = el("select", { "aria-label": label }, el("option", { value: "" }, "auto"),
      ...options.map((o) => el("option", { value: o }, o)));
    s.value = value || "";
    s.addEventListener("change", () => { onChange(s.value || null); setDirty(true); });
    return s;
  }

  function manualCell(row, address) {
    const t = row.transducer || {};
    const sens = el("input", { type: "number", step: "any", min: "0", placeholder: "V/unit", style: "width:6em",
      value: t.sensitivity ?? "", "aria-label": `manual sensitivity ${address} channel ${row.channel}` });
    const unit = el("input", { type: "text", placeholder: "unit", style: "width:4em", value: t.unit ?? "" });
    const serial = el("input", { type: "number", min: "0", step: "1", placeholder: "s/n", style: "width:5.5em", value: t.serial ?? "" });
    let type = t.type || "";
    const update = () => {
      setDirty(true);
      if (sens.value === "") { row.transducer = null; return; }
      row.transducer = { sensitivity: Number(sens.value), unit: unit.value || "V",
        serial: serial.value === "" ? 0 : Number(serial.value), type };
    };
    for (const i of [sens, unit, serial]) i.addEventListener("input", update);
    // The transducer database's picker (static/transducer_picker.js) fills the three fields.
    const pick = typeof TransducerPicker !== "undefined" && TransducerPicker.select(
      `transducer from the database ${address} channel ${row.channel}`, (e) => {
        sens.value = e.sensitivity; unit.value = e.unit; serial.value = e.serial; type = e.type;
        update();
      });
    return el("div", { class: "row nowrap" }, ...(pick ? [pick] : []), sens, unit, serial);
  }

  function renderTables() {
    const box = $("module-tables");
    box.replaceChildren();
    if (!draft) return;
    const modules = rigModules();
    if (!modules.length) {
      box.append(el("section", { class: "card" }, el("p", { class: "muted" }, "No modules: add them on the ",
        el("a", { href: "/rig" }, "Rig"), " page.")));
    }
    for (const m of modules) {
      const info = m.info || {};
      const rows = draft.channels[m.address] || [];
      const result = (state.transducers || {})[m.address];
      const detected = (result || {}).transducers || [];
      const body = el("tbody");
      for (const row of rows) {
        const got = applied(m.address, row.channel) || {};
        const enabled = el("input", { type: "checkbox", checked: row.enabled, "aria-label": `enable ${m.address} channel ${row.channel}` });
        enabled.addEventListener("change", () => { row.enabled = enabled.checked; setDirty(true); });
        body.append(el("tr", { dataset: { channel: row.channel } },
          el("td", {}, `Ch ${row.channel}`),
          el("td", {}, enabled),
          el("td", { class: "teds" }, tedsText(detected[row.channel - 1], !!result)),
          el("td", { dataset: { applied: "range" } }, withApplied(optSelect(info.ranges || [], row.range, (v) => { row.range = v; }, "range"), row.range, got.range)),
          el("td", { dataset: { applied: "filter" } }, withApplied(optSelect(info.filters || [], row.filter, (v) => { row.filter = v; }, "filter"), row.filter, got.filter)),
          el("td", {}, withApplied(triSelect(row.ccld, (v) => { row.ccld = v; }, "CCLD"), row.ccld, onOff(got.ccld))),
          el("td", {}, withApplied(triSelect(row.polvolt, (v) => { row.polvolt = v; }, "polarisation voltage"), row.polvolt, onOff(got.polvolt))),
          el("td", { dataset: { applied: "sensitivity" } }, withApplied(manualCell(row, m.address), row.transducer ? "manual" : null,
            got.sensitivity == null ? null : `${sensText(got.sensitivity, got.unit)}${got.transducer ? ` (${got.transducer})` : ""}`))));
      }
      box.append(el("section", { class: "card", dataset: { module: m.address } },
        el("h2", {}, m.address, " ", el("span", { class: "muted small" }, info.name || (m.reachable === false ? "unreachable" : "not probed yet"))),
        rows.length ? el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, ["Channel", "On", "TEDS detected", "Range", "Filter", "CCLD", "Polarisation", "Manual transducer"].map((h) => el("th", h === "Manual transducer" ? { title: "sensitivity (V per unit), unit, serial number" } : {}, h)))),
          body)) : el("p", { class: "muted" }, "Channels appear once the module has answered.")));
    }
    for (const fn of window.SetupPage.onRender) fn();
  }

  function takeServer() {
    const s = (state.setup || {}).setup;
    if (!s) return;
    draft = JSON.parse(JSON.stringify(s));
    $("multi-socket").checked = !!draft.multi_socket;
    renderBandwidths();
    renderTables();
    setDirty(false);
  }

  on("setup", (s) => {
    const named = $("named");
    const cur = named.value;
    named.replaceChildren(...(s.setups || []).map((n) => el("option", { value: n }, n)));
    if ((s.setups || []).includes(cur)) named.value = cur;
    if (!dirty) takeServer();
  });
  on("rig", () => { renderBandwidths(); if (!dirty) takeServer(); });
  on("transducers", () => { if (!dirty) renderTables(); });
  on("configured", () => { if (!dirty) renderTables(); renderBandwidths(); });

  $("bandwidth").addEventListener("change", () => { draft.bandwidth = $("bandwidth").value || null; setDirty(true); });
  $("multi-socket").addEventListener("change", () => { draft.multi_socket = $("multi-socket").checked; setDirty(true); });

  async function run(fn) {
    Dash.showError(errBox, null);
    try { await fn(); } catch (e) { Dash.showError(errBox, e); }
  }
  // On an armed rig the changes are listed first: the rig keeps the setup it was armed with
  // (Start refuses a setup that differs), so they take effect at the next arming.
  $("apply-btn").onclick = () => run(async () => {
    const phase = (state.phase || {}).phase || "idle";
    if (!["idle", "completed", "failed", "aborted"].includes(phase)) {
      const changes = describeChanges((state.setup || {}).setup || {}, draft);
      if (changes.length && !window.confirm("The rig is armed with its current setup. Applying saves " +
        "these changes; they take effect when the rig is armed again (disarm first):\n\n• " +
        changes.join("\n• ") + "\n\nApply?")) return;
    }
    await api("PUT", "/api/setup", draft);
    setDirty(false);
  });
  $("revert-btn").onclick = () => { setDirty(false); takeServer(); };
  // Detection needs the modules opened and set up: on an idle rig it arms the rig (PTP lock
  // included), which the user is asked about first; an armed rig keeps the detection it made.
  $("detect-btn").onclick = () => {
    const phase = (Dash.state.phase || {}).phase || "idle";
    if (phase === "armed" || phase === "monitoring" || phase === "recording") {
      Dash.showError($("setup-error"), new Error("the rig is armed with the detection it made; disarm to detect again"));
      return;
    }
    const ok = window.confirm("Re-running detection arms the rig: every module locks onto PTP, is " +
      "opened and detects its transducers, then stays armed until you disarm it. Go on?");
    if (ok) run(() => api("POST", "/api/setup/detect", {}));
  };
  $("save-btn").onclick = () => run(async () => {
    if (dirty) { await api("PUT", "/api/setup", draft); setDirty(false); }
    await api("POST", "/api/setups", { name: $("save-name").value.trim() });
    $("named").value = $("save-name").value.trim();
  });
  $("load-btn").onclick = () => run(async () => {
    setDirty(false);
    await api("POST", `/api/setups/${encodeURIComponent($("named").value)}/load`, {});
  });
  $("delete-btn").onclick = () => run(() => api("DELETE", `/api/setups/${encodeURIComponent($("named").value)}`));
})();
