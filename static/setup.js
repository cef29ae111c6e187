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

  function renderBandwidths() {
    const rates = rigModules().map((m) => (m.info || {}).sample_rates).filter((r) => r && r.length);
    const allowed = BANDWIDTHS.filter((bw) => rates.every((r) => r.includes(rateOf(bw))));
    const select = $("bandwidth");
    select.replaceChildren(el("option", { value: "" }, "highest all modules support"),
      ...allowed.map((bw) => el("option", { value: bw }, bw)));
    if (draft && draft.bandwidth && !allowed.includes(draft.bandwidth)) select.append(el("option", { value: draft.bandwidth }, draft.bandwidth));
    if (draft) select.value = draft.bandwidth || "";
  }

  function tedsText(t, detected) {
    if (!detected) return el("span", { class: "muted", title: "detection runs when the rig is armed" }, "not detected yet");
    if (!t) return el("span", { class: "muted" }, "none found");
    const type = t.type || {};
    const name = [type.prefix, type.number, type.model, type.variant].filter(Boolean).join("-");
    const unit = t.unit === "m/s^2" ? "m/s²" : t.unit;
    const sens = Number(t.sensitivity);
    const sensText = sens < 1 ? `${(sens * 1000).toPrecision(4)} mV/${unit}` : `${sens.toPrecision(4)} V/${unit}`;
    return el("span", {}, el("b", {}, name || "?"),
      el("div", { class: "small muted" }, `s/n ${t.serialNumber ?? "?"} · ${sensText}`,
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
        const enabled = el("input", { type: "checkbox", checked: row.enabled, "aria-label": `enable ${m.address} channel ${row.channel}` });
        enabled.addEventListener("change", () => { row.enabled = enabled.checked; setDirty(true); });
        body.append(el("tr", { dataset: { channel: row.channel } },
          el("td", {}, `Ch ${row.channel}`),
          el("td", {}, enabled),
          el("td", { class: "teds" }, tedsText(detected[row.channel - 1], !!result)),
          el("td", {}, optSelect(info.ranges || [], row.range, (v) => { row.range = v; }, "range")),
          el("td", {}, optSelect(info.filters || [], row.filter, (v) => { row.filter = v; }, "filter")),
          el("td", {}, triSelect(row.ccld, (v) => { row.ccld = v; }, "CCLD")),
          el("td", {}, triSelect(row.polvolt, (v) => { row.polvolt = v; }, "polarisation voltage")),
          el("td", {}, manualCell(row, m.address))));
      }
      box.append(el("section", { class: "card", dataset: { module: m.address } },
        el("h2", {}, m.address, " ", el("span", { class: "muted small" }, info.name || (m.reachable === false ? "unreachable" : "not probed yet"))),
        rows.length ? el("div", { class: "table-wrap" }, el("table", {},
          el("thead", {}, el("tr", {}, ["Channel", "On", "TEDS detected", "Range", "Filter", "CCLD", "Polarisation", "Manual transducer"].map((h) => el("th", h === "Manual transducer" ? { title: "sensitivity (V per unit), unit, serial number" } : {}, h)))),
          body)) : el("p", { class: "muted" }, "Channels appear once the module has answered.")));
    }
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

  $("bandwidth").addEventListener("change", () => { draft.bandwidth = $("bandwidth").value || null; setDirty(true); });
  $("multi-socket").addEventListener("change", () => { draft.multi_socket = $("multi-socket").checked; setDirty(true); });

  async function run(fn) {
    Dash.showError(errBox, null);
    try { await fn(); } catch (e) { Dash.showError(errBox, e); }
  }
  $("apply-btn").onclick = () => run(async () => {
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
