// The History page: past captures from their capture.json, outcome, files to download and a
// link to each capture's analysis page. Reloads when a capture ends (the "history" topic).
"use strict";

(() => {
  const { el, api, on } = Dash;
  const $ = (id) => document.getElementById(id);

  async function load() {
    Dash.showError($("history-error"), null);
    let data;
    try { data = await api("GET", "/api/captures"); } catch (e) { Dash.showError($("history-error"), e); return; }
    const body = $("history-table").querySelector("tbody");
    body.replaceChildren();
    if (!data.captures.length) {
      body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No captures yet.")));
    }
    for (const c of data.captures) {
      const id = encodeURIComponent(c.id);
      const files = c.files.map((f) => el("a", { href: `/api/captures/${id}/files/${encodeURIComponent(f.file)}`,
        download: f.file, dataset: { file: f.file } }, f.file, el("span", { class: "muted small" }, ` (${Dash.fmtBytes(f.bytes)})`)));
      body.append(el("tr", { dataset: { capture: c.id, outcome: c.outcome } },
        el("td", {}, el("a", { href: `/captures/${id}` }, el("b", {}, c.name)), el("div", { class: "muted small" }, c.id)),
        el("td", {}, Dash.fmtTime(c.created)),
        el("td", {}, el("span", { class: `badge ${c.outcome}` }, c.outcome),
          c.reason ? el("div", { class: "err small" }, c.reason) : null),
        el("td", { class: "num" }, c.recorded_s != null ? `${c.recorded_s.toFixed(2)} s` : "–",
          c.requested_duration_s ? el("div", { class: "muted small" }, `of ${c.requested_duration_s} s`) : null),
        el("td", {}, c.modules.map((m) => el("div", { class: "small" }, `${m.number ?? ""} ${m.address || ""} ${m.role ? "(" + m.role + ")" : ""}`))),
        el("td", { class: "num" }, Dash.fmtBytes(c.bytes),
          c.bandwidth ? el("div", { class: "muted small" }, c.bandwidth) : null),
        el("td", { class: "files" }, files)));
    }
  }
  $("reload-btn").onclick = load;
  on("history", load);
})();
