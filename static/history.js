// The History page: past captures from their capture.json, outcome and quality badges, files
// to download and a link to each capture's analysis page. Reloads when a capture ends (the "history" topic).
"use strict";

(() => {
  const { el, api, on } = Dash;
  const manage = window.HistoryManage;
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

  // Quality at a glance, from the capture's quality summary (capture.json, or computed from
  // its files by the server): one badge per kind of trouble, "clean" when there is none.
  function qualityBadges(q) {
    const badge = (cls, kind, text, title) =>
      el("span", { class: `badge ${cls}`, dataset: { quality: kind }, title: title || text }, text);
    if (!q) return el("div", { class: "quality" }, badge("q-unknown", "pending", "quality: still recording"));
    if (q.error) return el("div", { class: "quality" }, badge("q-unknown", "unreadable", "quality unknown", q.error));
    const out = [];
    const keys = (o) => Object.keys(o || {});
    for (const span of q.ptp_unlocked || []) {
      const end = span.to_s != null ? `${span.to_s.toFixed(3)} s` : "end";
      out.push(badge("q-bad", "ptp", `PTP lost: module ${span.module} ${span.from_s.toFixed(3)}–${end}`,
        `module ${span.module} not locked onto PTP: not sample-synchronous from ${span.from_s.toFixed(3)} s`));
    }
    if (!q.sample_synchronous && !(q.ptp_unlocked || []).length) out.push(badge("q-bad", "sync", "not sample-synchronous"));
    if (q.lost_samples) out.push(badge("q-bad", "lost", `${q.lost_samples.toLocaleString()} samples lost`, keys(q.lost).join(", ")));
    if (keys(q.overload).length) out.push(badge("q-warn", "overload", `overload ${keys(q.overload).join(", ")}`));
    if (keys(q.invalid).length) out.push(badge("q-warn", "invalid", `invalid data ${keys(q.invalid).join(", ")}`));
    if (q.interrupted) out.push(badge("q-bad", "interrupted", "interrupted"));
    if (!out.length) out.push(badge(q.verdict === "errors" ? "q-bad" : q.verdict === "warnings" ? "q-warn" : "q-ok",
      "verdict", q.verdict === "ok" ? "clean" : q.verdict));
    return el("div", { class: "quality", dataset: { verdict: q.verdict || "" } }, out);
  }

  function started(t) {
    if (!t) return "–";
    const d = new Date(t);
    return [el("div", { class: "nowrap" }, d.toLocaleDateString()),
      el("div", { class: "muted small nowrap" }, d.toLocaleTimeString())];
  }

  let onlySession = null;
  function windowText(w) {
    if (!w) return "";
    if (w.kind === "segment" && w.segment) return `segment ${w.segment.index}`;
    if (w.kind === "trigger" && w.trigger) {
      const t = w.trigger;
      if (t.manual) return `event ${t.event}: manual trigger`;
      return `event ${t.event}: module ${t.module} ch ${t.channel} ${t.slope === "falling" ? "<" : ">"} ${t.level} ${t.unit || ""}`;
    }
    return "recorded while monitoring";
  }

  async function load() {
    Dash.showError($("history-error"), null);
    let data;
    try { data = await api("GET", "/api/captures" + manage.query()); } catch (e) { Dash.showError($("history-error"), e); return; }
    manage.knownTags(data.captures);
    const body = $("history-table").querySelector("tbody");
    const open = new Set(Array.from(body.querySelectorAll("tr[data-capture] details[open]"))
      .map((d) => d.closest("tr").dataset.capture));
    body.replaceChildren();
    if (!data.captures.length) {
      body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, manage.query() ? "No capture matches." : "No captures yet.")));
    }
    // Captures cut from one monitoring session (trigger events, segments) are grouped under a
    // heading row; "only this session" filters the list to them.
    const groups = {};
    for (const c of data.captures) {
      const m = c.window && c.window.measurement;
      if (m) (groups[m] = groups[m] || []).push(c);
    }
    const shown = new Set();
    for (const c of data.captures) {
      const measurement = c.window && c.window.measurement;
      if (onlySession && measurement !== onlySession) continue;
      if (measurement && !shown.has(measurement)) {
        shown.add(measurement);
        const members = groups[measurement];
        const count = (kind, one, many) => {
          const n = members.filter((x) => x.window.kind === kind).length;
          return n ? `${n} ${n === 1 ? one : many}` : null;
        };
        const what = [count("manual", "recording by hand", "recordings by hand"),
          count("trigger", "trigger event", "trigger events"),
          count("segment", "segment", "segments")].filter(Boolean).join(", ");
        const filter = el("button", { class: "small-link", dataset: { session: measurement } },
          onlySession ? "show all captures" : "only this session");
        filter.onclick = () => { onlySession = onlySession ? null : measurement; load(); };
        body.append(el("tr", { class: "group", dataset: { group: measurement } },
          el("td", { colspan: 6 }, el("b", {}, `Monitoring session ${measurement}`),
            el("span", { class: "muted small" }, ` · ${what} · ` +
              Dash.fmtBytes(members.reduce((n, x) => n + (x.bytes || 0), 0)) + " "), filter)));
      }
      const id = encodeURIComponent(c.id);
      const files = c.files.map((f) => el("a", { href: `/api/captures/${id}/files/${encodeURIComponent(f.file)}`,
        download: f.file, dataset: { file: f.file } }, f.file, el("span", { class: "muted small" }, ` (${Dash.fmtBytes(f.bytes)})`)));
      const info = details(c);
      if (open.has(c.id)) info.open = true;
      // The title History shows (a rename), the recorded name when it differs, the test.
      const first = el("td", {}, el("a", { href: `/captures/${id}` }, el("b", { dataset: { title: c.id } }, c.title || c.name)),
        c.title && c.title !== c.name ? el("div", { class: "small" }, `recorded as ${c.name}`) : null,
        el("div", { class: "muted small" }, c.id), manage.description(c),
        el("div", {}, el("a", { class: "small analyse", href: `/captures/${id}`, dataset: { analyse: c.id } }, "Analyse →")));
      const tools = manage.controls(c, first);
      if (tools) first.append(tools);
      body.append(el("tr", { class: measurement ? "in-group" : "",
        dataset: { capture: c.id, outcome: c.outcome, measurement: measurement || "" } },
        first,
        el("td", {}, started(c.created)),
        el("td", {}, el("span", { class: `badge ${c.outcome}` }, c.outcome),
          qualityBadges(c.quality),
          windowText(c.window) ? el("div", { class: "small", dataset: { window: c.window.kind } }, windowText(c.window)) : null,
          c.reason ? el("div", { class: "err small" }, c.reason) : null),
        el("td", { class: "num nowrap" }, c.recorded_s != null ? `${c.recorded_s.toFixed(2)} s` : "–",
          c.requested_duration_s ? el("div", { class: "muted small" }, `of ${c.requested_duration_s} s`) : null),
        el("td", { class: "num nowrap" }, Dash.fmtBytes(c.bytes),
          el("div", { class: "muted small" }, `${c.modules.length} module${c.modules.length === 1 ? "" : "s"}`),
          c.bandwidth ? el("div", { class: "muted small" }, c.bandwidth) : null),
        el("td", { class: "files" }, el("div", {}, files), info)));
    }
  }
  manage.onReload(load);
  $("reload-btn").onclick = load;
  on("history", load);
})();
