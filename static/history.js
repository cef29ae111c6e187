// The History page: past captures from their capture.json, outcome, files to download and a
// link to each capture's analysis page. Reloads when a capture ends (the "history" topic).
"use strict";

(() => {
  const { el, api, on } = Dash;
  const $ = (id) => document.getElementById(id);

  function details(c) {
    const rows = [
      ["Started (first sample)", c.start_time ? Dash.fmtTime(c.start_time) : "–"],
      ["Ended", Dash.fmtTime(c.ended)],
      ["Sample rate", c.sample_rate ? `${c.sample_rate.toLocaleString()} S/s (${c.bandwidth})` : "–"],
      ["Streaming", c.streaming || "–"],
      ["PTP", c.ptp ? `domain ${c.ptp.domain}, master ${c.ptp.master}` : "not synchronized"],
      ["Reported", `${c.errors} error${c.errors === 1 ? "" : "s"}, ${c.warnings} warning${c.warnings === 1 ? "" : "s"}, ${c.fault_reports} channel-fault report${c.fault_reports === 1 ? "" : "s"}`],
    ];
    const modules = el("table", { class: "inner" },
      el("thead", {}, el("tr", {}, ["#", "Module", "Address", "Role", "Firmware", "Data"].map((h) => el("th", {}, h)))),
      el("tbody", {}, c.modules.map((m) => el("tr", {},
        el("td", {}, m.number ?? ""), el("td", {}, m.name || (m.type ? `Type ${m.type}` : "–")),
        el("td", {}, m.address || ""), el("td", {}, m.role || ""), el("td", {}, m.firmware || ""),
        el("td", { class: "num" }, Dash.fmtBytes(m.bytes))))));
    return el("details", {}, el("summary", {}, "capture.json summary"),
      el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("div", { class: "table-wrap" }, modules));
  }

  function started(t) {
    if (!t) return "–";
    const d = new Date(t);
    return [el("div", { class: "nowrap" }, d.toLocaleDateString()),
      el("div", { class: "muted small nowrap" }, d.toLocaleTimeString())];
  }

  async function load() {
    Dash.showError($("history-error"), null);
    let data;
    try { data = await api("GET", "/api/captures"); } catch (e) { Dash.showError($("history-error"), e); return; }
    const body = $("history-table").querySelector("tbody");
    const open = new Set(Array.from(body.querySelectorAll("tr[data-capture] details[open]"))
      .map((d) => d.closest("tr").dataset.capture));
    body.replaceChildren();
    if (!data.captures.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No captures yet.")));
    }
    for (const c of data.captures) {
      const id = encodeURIComponent(c.id);
      const files = c.files.map((f) => el("a", { href: `/api/captures/${id}/files/${encodeURIComponent(f.file)}`,
        download: f.file, dataset: { file: f.file } }, f.file, el("span", { class: "muted small" }, ` (${Dash.fmtBytes(f.bytes)})`)));
      const info = details(c);
      if (open.has(c.id)) info.open = true;
      body.append(el("tr", { dataset: { capture: c.id, outcome: c.outcome } },
        el("td", {}, el("a", { href: `/captures/${id}` }, el("b", {}, c.name)),
          el("div", { class: "muted small" }, c.id),
          el("div", {}, el("a", { class: "small analyse", href: `/captures/${id}`, dataset: { analyse: c.id } }, "Analyse →"))),
        el("td", {}, started(c.created)),
        el("td", {}, el("span", { class: `badge ${c.outcome}` }, c.outcome),
          c.reason ? el("div", { class: "err small" }, c.reason) : null),
        el("td", { class: "num nowrap" }, c.recorded_s != null ? `${c.recorded_s.toFixed(2)} s` : "–",
          c.requested_duration_s ? el("div", { class: "muted small" }, `of ${c.requested_duration_s} s`) : null),
        el("td", { class: "num nowrap" }, Dash.fmtBytes(c.bytes),
          el("div", { class: "muted small" }, `${c.modules.length} module${c.modules.length === 1 ? "" : "s"}`),
          c.bandwidth ? el("div", { class: "muted small" }, c.bandwidth) : null),
        el("td", { class: "files" }, el("div", {}, files), info)));
    }
  }
  $("reload-btn").onclick = load;
  on("history", load);
})();
