// The capture page: integrity report, time plot (min/max envelope when zoomed out, every
// sample when zoomed in), spectrum of the window shown, data-quality timeline, exports.
// All data comes from /api/captures/<id>/analysis/...; times are seconds from the capture start.
"use strict";

(() => {
  const { el, api } = Dash;
  const $ = (id) => document.getElementById(id);
  const page = $("capture-page");
  const captureId = page.dataset.capture;
  const base = `/api/captures/${encodeURIComponent(captureId)}/analysis`;

  let info = null;          // channels endpoint
  let channel = null;       // key of the plotted channel
  let full = [0, 1];        // whole span in seconds
  let view = [0, 1];        // window shown
  let timeReq = 0, specReq = 0;
  let settingScale = false;

  const fmtS = (s) => (Math.abs(s) >= 100 ? s.toFixed(2) : Math.abs(s) >= 1 ? s.toFixed(4) : s.toFixed(6));
  const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());

  // --- plots ----------------------------------------------------------------------------------
  function plotSize(node, h) {
    return { width: Math.max(240, node.clientWidth), height: h };
  }

  const timePlot = new uPlot({
    ...plotSize($("time-plot"), 260),
    scales: { x: { time: false } },
    series: [
      { label: "t (s)", value: (u, v) => (v == null ? "–" : fmtS(v)) },
      { label: "min", stroke: "#0b63c5", width: 1 },
      { label: "max", stroke: "#0b63c5", width: 1 },
    ],
    bands: [{ series: [2, 1], fill: "rgba(11,99,197,0.25)" }],
    axes: [{ label: "time from capture start (s)" }, { label: "" }],
    legend: { show: false },
    cursor: {
      drag: { x: true, y: false },
      bind: { dblclick: () => () => { zoomTo(full[0], full[1]); return null; } },
    },
    hooks: {
      setScale: [(u, key) => {
        if (key !== "x" || settingScale) return;
        const { min, max } = u.scales.x;
        if (min == null || max == null) return;
        view = [min, max];
        scheduleFetch();
      }],
    },
  }, [[], [], []], $("time-plot"));

  // The spectrum of the window shown: the chosen channel, and up to three more overlaid (one
  // request each, same lines, window and averaging), with a cursor and its harmonics.
  const specPlot = new Dash.SpectrumPlot($("spec-plot"), { readout: $("spec-cursor"), height: 240,
    log: $("log-f").checked });
  let compare = [];  // keys of the overlaid channels

  new ResizeObserver(() => timePlot.setSize(plotSize($("time-plot"), 260))).observe($("time-plot"));

  // --- time window ----------------------------------------------------------------------------
  let fetchTimer = null;
  function scheduleFetch() {
    clearTimeout(fetchTimer);
    fetchTimer = setTimeout(() => {
      loadTime();
      loadSpectrum();
      loadBands();
      drawQualityWindow();
      if ($("exp-window").checked) updateExport();
    }, 120);
  }

  function zoomTo(a, b) {
    const span = full[1] - full[0];
    let w = Math.max(b - a, 1e-6);
    if (w > span) w = span;
    a = Math.min(Math.max(a, full[0]), full[1] - w);
    view = [a, a + w];
    scheduleFetch();
  }

  $("zoom-in").onclick = () => { const c = (view[0] + view[1]) / 2, w = (view[1] - view[0]) / 4; zoomTo(c - w, c + w); };
  $("zoom-out").onclick = () => { const c = (view[0] + view[1]) / 2, w = view[1] - view[0]; zoomTo(c - w, c + w); };
  $("pan-left").onclick = () => { const w = view[1] - view[0]; zoomTo(view[0] - w / 2, view[1] - w / 2); };
  $("pan-right").onclick = () => { const w = view[1] - view[0]; zoomTo(view[0] + w / 2, view[1] + w / 2); };
  $("zoom-full").onclick = () => zoomTo(full[0], full[1]);

  async function loadTime() {
    if (!channel) return;
    const id = ++timeReq;
    const points = Math.min(4000, Math.max(400, Math.round($("time-plot").clientWidth * 1.5)));
    const q = new URLSearchParams({ channel, start: view[0], end: view[1], points });
    let d;
    try { d = await api("GET", `${base}/data?${q}`); } catch (e) { Dash.showError($("plot-error"), e); return; }
    if (id !== timeReq) return;  // a newer window was asked for meanwhile
    Dash.showError($("plot-error"), null);
    const lo = d.mode === "samples" ? d.values : d.min;
    const hi = d.mode === "samples" ? d.values : d.max;
    settingScale = true;
    timePlot.setData([d.t, lo, hi], false);
    timePlot.setScale("x", { min: view[0], max: view[1] });
    settingScale = false;
    timePlot.axes[1].label = d.unit_label || d.unit || "";
    const res = d.mode === "samples" ? "every sample" : `min/max of ${num(d.bin)} samples per point`;
    $("window-info").textContent =
      `${fmtS(view[0])} – ${fmtS(view[1])} s · ${num(d.samples)} samples · ${res}`;
    page.dataset.timeMode = d.mode;
  }

  async function loadSpectrum() {
    if (!channel) return;
    const id = ++specReq;
    const keys = [channel, ...compare.filter((k) => k !== channel)];
    let all;
    try {
      all = await Promise.all(keys.map((key) => api("GET", `${base}/spectrum?${new URLSearchParams({
        channel: key, start: view[0], end: view[1], nfft: $("nfft").value,
        window: $("spec-window").value, average: $("spec-average").value })}`)));
    } catch (e) { $("spec-info").textContent = e.message; return; }
    if (id !== specReq) return;
    const d = all[0];
    const label = d.db_label || "dB";
    // Overlaid channels share the lines when they share the rate; a channel of another rate
    // (or unit) is left out and said so, rather than drawn against the wrong axis.
    const same = all.filter((x) => x.freq.length === d.freq.length && x.db_label === d.db_label);
    const odd = all.filter((x) => !same.includes(x)).map((x) => x.channel);
    specPlot.show(d.freq, same.map((x) => ({ label: x.channel, values: x.db })), label,
      (v) => (v == null ? "–" : v.toFixed(2)), label);
    $("spec-info").dataset.window = d.window || "";
    $("spec-info").dataset.average = d.average || "";
    const top = d.db.length ? Math.max(...d.db.slice(1)) : null;
    $("spec-info").dataset.peakDb = top == null ? "" : top.toFixed(2);
    $("spec-info").textContent = (d.segments
      ? `${num(d.segments)} ${d.average === "peak" ? "segments, peak hold" : "averages"} · ` +
        `${d.resolution_hz.toFixed(2)} Hz lines to ${(d.bandwidth_hz / 1000).toFixed(1)} kHz · peak ${peak(d)}`
      : "no complete segment in this window") +
      (odd.length ? ` · not overlaid (other rate or unit): ${odd.join(", ")}` : "");
  }

  function renderCompare() {
    const choices = (info ? info.channels : []).filter((c) => c.key !== channel)
      .map((c) => ({ key: c.key, label: `${c.key} · ${c.name}` }));
    Dash.renderCompareList($("spec-compare-list"), choices, compare, (keys) => {
      compare = keys;
      renderCompare();
      loadSpectrum();
    });
  }

  function peak(d) {
    let best = -1;
    for (let i = 1; i < d.db.length; i++) if (best < 0 || d.db[i] > d.db[best]) best = i;
    return best < 0 ? "–" : `${d.db[best].toFixed(2)} ${d.db_label || "dB"} at ${d.freq[best].toFixed(1)} Hz`;
  }

  // Octave bands of the window (IEC 61260-1 filters on the server), weighted here per viewer
  // with the A or C correction at each mid-band; the window's LAeq, LCeq and LZeq beside.
  let bandLabels = [];
  const bandPlot = new uPlot({
    ...plotSize($("band-plot"), 220), scales: { x: { time: false } },
    series: [{ label: "band" }, { label: "dB", stroke: "#0b63c5", fill: "rgba(11,99,197,0.35)",
      paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }],
    axes: [{ label: "mid-band frequency (Hz)", splits: () => Dash.bandTicks(bandLabels),
      values: (u, splits) => splits.map((i) => bandLabels[i] ?? "") },
      { label: "dB" }], legend: { show: false },
  }, [[], []], $("band-plot"));
  new ResizeObserver(() => bandPlot.setSize(plotSize($("band-plot"), 220))).observe($("band-plot"));
  let bandReq = 0, lastBands = null;
  async function loadBands() {
    if (!channel) return;
    const id = ++bandReq;
    const q = new URLSearchParams({ channel, start: view[0], end: view[1], fraction: $("band-fraction").value });
    let d;
    try { d = await api("GET", `${base}/bands?${q}`); } catch (e) { $("band-info").textContent = e.message; return; }
    if (id !== bandReq) return;
    lastBands = d;
    drawBands();
  }
  function drawBands() {
    const d = lastBands;
    if (!d) return;
    const w = $("band-weighting").value;
    const corr = w === "Z" ? null : d[`${w}_correction`];
    const values = d.Z.map((v, i) => (v == null ? null : corr ? v + corr[i] : v));
    bandLabels = d.labels;
    bandPlot.setData([d.labels.map((_, i) => i), values]);
    const ref = (d.db_label || "dB").replace(/^dB /, "");
    bandPlot.axes[1].label = `dB${w === "Z" ? "" : `(${w})`} ${ref}`;
    const fin = values.filter((v) => v != null);
    $("band-plot").dataset.peak = fin.length ? d.labels[values.indexOf(Math.max(...fin))] : "";
    $("band-plot").dataset.fraction = d.fraction;
    $("band-plot").dataset.weighting = w;
    const eq = ["A", "C", "Z"].map((x) => `L${x}eq ${d[`L${x}eq`] == null ? "–" : d[`L${x}eq`].toFixed(1)}`);
    $("band-info").textContent = `${eq.join(" · ")} ${d.db_label || "dB"}` +
      (d.note ? ` · ${d.note}` : "") + (d.lost_samples ? ` · ${num(d.lost_samples)} lost samples counted as silence` : "");
  }
  $("band-fraction").onchange = loadBands;
  $("band-weighting").onchange = drawBands;

  $("nfft").onchange = loadSpectrum;
  $("spec-window").onchange = loadSpectrum;
  $("spec-average").onchange = loadSpectrum;
  $("log-f").onchange = () => specPlot.setLog($("log-f").checked);

  // --- channels -------------------------------------------------------------------------------
  function selectChannel(key) {
    channel = key;
    compare = compare.filter((k) => k !== key);
    renderCompare();
    $("channel-select").value = key;
    for (const n of document.querySelectorAll(".q-label")) n.classList.toggle("selected", n.dataset.key === key);
    updateExport();
    scheduleFetch();
  }
  $("channel-select").onchange = () => selectChannel($("channel-select").value);

  async function loadChannels() {
    try { info = await api("GET", `${base}/channels`); } catch (e) { Dash.showError($("page-error"), e); return; }
    const sel = $("channel-select");
    sel.replaceChildren(...info.channels.map((c) => el("option", { value: c.key },
      `${c.key} · ${c.name}${c.dof ? " · " + c.dof : ""}${c.unit ? " [" + (c.unit_label || c.unit) + "]" : ""}`)));
    full = info.span;
    view = full.slice();
    if (info.channels.length) selectChannel(info.channels[0].key);
    $("cap-title").textContent = info.title || info.name;
    const t = info.test || {};
    const about = [t.object, t.operator && `by ${t.operator}`, (t.tags || []).join(", ")].filter(Boolean).join(" · ");
    $("cap-test").textContent = about + (t.notes ? ` — ${t.notes}` : "");
    $("cap-test").hidden = !about && !t.notes;
    loadQuality();
  }

  // --- quality timeline -----------------------------------------------------------------------
  let quality = null;
  function pct(t) { return ((t - quality.start_s) / Math.max(1e-12, quality.end_s - quality.start_s)) * 100; }

  async function loadQuality() {
    try { quality = await api("GET", `${base}/quality`); } catch (e) { Dash.showError($("page-error"), e); return; }
    const box = $("quality");
    box.replaceChildren();
    for (const c of quality.channels) {
      const bar = el("div", { class: "q-bar", dataset: { key: c.key } },
        el("span", { class: "present", style: `left:${pct(c.start_s)}%;width:${pct(c.end_s) - pct(c.start_s)}%` }));
      const marks = [
        ...c.intervals.map((iv) => ({ ...iv, cls: iv.flags.includes("invalid") ? "invalid" : iv.flags.includes("overload") ? "overload" : iv.flags.includes("overrun") ? "overrun" : "invalid", text: iv.flags.join(", ") })),
        ...c.gaps.map((g) => ({ ...g, cls: "gap", text: `${num(g.missing)} samples lost` })),
      ];
      for (const m of marks) {
        bar.append(el("span", {
          class: `mark ${m.cls}`, title: `${m.text}: ${fmtS(m.start_s)} – ${fmtS(m.end_s)} s`,
          style: `left:${pct(m.start_s)}%;width:${Math.max(0, pct(m.end_s) - pct(m.start_s))}%`,
          dataset: { kind: m.cls },
          onclick: () => {
            const w = Math.max(m.end_s - m.start_s, (full[1] - full[0]) / 1000);
            selectChannel(c.key);
            zoomTo(m.start_s - w, m.end_s + w);
          },
        }));
      }
      bar.append(el("span", { class: "shown" }));
      box.append(el("span", { class: "q-label", dataset: { key: c.key }, onclick: () => selectChannel(c.key) }, c.key), bar);
    }
    for (const n of document.querySelectorAll(".q-label")) n.classList.toggle("selected", n.dataset.key === channel);
    drawQualityWindow();
  }

  function drawQualityWindow() {
    if (!quality) return;
    for (const s of document.querySelectorAll(".q-bar .shown")) {
      s.style.left = `${pct(view[0])}%`;
      s.style.width = `${Math.max(0, pct(view[1]) - pct(view[0]))}%`;
    }
  }

  // --- report ---------------------------------------------------------------------------------
  // The report without checksums comes first (hashing a large capture takes a while), then
  // the full one with checksums and every channel's level (one more pass) replaces it.
  async function loadReport() {
    $("report-json").href = `${base}/report?levels=1`;
    try {
      const quick = await api("GET", `${base}/report?checksums=0`);
      renderReport(quick, true);
      renderReport(await api("GET", `${base}/report?levels=1`), false);
    } catch (e) {
      $("verdict").textContent = "report failed";
      $("verdict").className = "verdict errors";
      Dash.showError($("page-error"), e);
    }
  }

  // Level of a whole channel as the server states it (webapp/openapi/units.py): RMS and peak
  // in the unit as printed, dB re the ISO 1683 reference written out, peak in dBFS re the
  // range's full scale.
  const fmtEng = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toPrecision(4));
  const fmtDb = (v, digits) => (v === null || v === undefined ? "–" : v.toFixed(digits).replace("-", "−"));
  function levelCells(ch) {
    const lv = ch.level;
    if (!lv) return [el("td", { class: "num muted", colspan: 3 }, "…")];
    const unit = lv.unit_label || lv.unit || "";
    return [
      el("td", { class: "num", dataset: { eng: ch.key } }, `${fmtEng(lv.rms)} ${unit}`, el("br"), el("span", { class: "small muted" }, `peak ${fmtEng(lv.peak)} ${unit}`)),
      el("td", { class: "num", dataset: { level: ch.key }, title: lv.quantity ? `${lv.quantity} level, RMS, re ${lv.reference} (${lv.standard || "unit"})` : null },
        lv.db === null ? "–" : `${fmtDb(lv.db, 1)} ${lv.db_label}`),
      el("td", { class: "num", dataset: { dbfs: ch.key }, title: ch.range ? `0 dBFS = ${ch.range} (${fmtEng(lv.full_scale)} ${unit} peak)` : null },
        lv.dbfs === null ? "–" : `${fmtDb(lv.dbfs, 1)} dBFS`),
    ];
  }

  function renderReport(r, hashing) {
    const c = r.capture;
    const v = $("verdict");
    v.textContent = { ok: "all samples accounted for", warnings: "warnings", errors: "problems found" }[r.verdict] || r.verdict;
    if (hashing) v.textContent += " (checking checksums…)";
    v.className = `verdict ${r.verdict}`;
    if (!hashing) v.dataset.verdict = r.verdict;
    if (c.outcome) {
      const o = $("cap-outcome");
      o.hidden = false;
      o.textContent = c.outcome;
      o.className = `badge ${c.outcome}`;
    }
    $("cap-meta").replaceChildren(...[
      el("span", {}, `start ${c.start_time} UTC`),
      c.sample_rate ? el("span", {}, `${num(c.sample_rate)} S/s (${c.bandwidth})`) : null,
      c.recorded_s != null ? el("span", {}, `${Number(c.recorded_s).toFixed(3)} s recorded`) : null,
      c.streaming ? el("span", {}, c.streaming) : null,
      c.reason ? el("span", { class: "err" }, c.reason) : null,
    ].filter(Boolean));
    $("problems").replaceChildren(...r.problems.map((p) =>
      el("li", { class: p.severity }, el("b", {}, `${p.where}: `), p.message)));

    const s = r.sync;
    const sync = $("sync");
    sync.replaceChildren();
    if (s.common_start_ticks != null) {
      const spans = s.ptp_unlocked || [];
      sync.append(...[
        el("div", { class: spans.length || !s.on_grid ? "bad" : s.synchronous ? "good" : "", dataset: { synchronous: String(!!s.sample_synchronous) } },
          spans.length ? `NOT sample-synchronous from ${s.synchronous_until_s.toFixed(3)} s: a module lost its PTP lock while recording.`
            : s.synchronous ? "Sample-synchronous: every channel's first sample is at the same instant."
              : s.on_grid ? "Channels start at different samples of one common sample grid (trim aligns them)."
                : "First samples are NOT on one sample grid."),
        spans.length ? el("ul", { class: "small ptp-spans" }, spans.map((p) => el("li", { class: "error" },
          `Module ${p.module}${p.address ? ` (${p.address})` : ""} not locked onto PTP from ${p.from_s.toFixed(3)} s to `,
          p.to_s != null ? `${p.to_s.toFixed(3)} s` : "the end",
          ` (${Dash.fmtTime(p.from)} – ${p.to ? Dash.fmtTime(p.to) : "end"}, ptpStatus ${p.status || "?"})`))) : null,
        el("div", { class: "small" }, `Common span ${s.common_start_time} – ${s.common_end_time} UTC: `,
          `${s.common_duration_s.toFixed(6)} s = `,
          Object.entries(s.common_samples).map(([rate, n]) => `${num(n)} samples at ${num(rate)} S/s`).join(", "))]
        .filter(Boolean));  // (native append would print a null as "null")
    }
    const mb = $("modules-table").querySelector("tbody");
    mb.replaceChildren(...r.modules.map((m) => el("tr", {},
      el("td", {}, m.number), el("td", {}, `${m.name} ${m.type}`), el("td", {}, m.role || "–"),
      el("td", {}, m.address || "–"), el("td", {}, m.first_sample_time || "no samples"),
      el("td", { class: "num" }, num(m.samples_before_common_start)),
      el("td", { class: "small" }, m.files.join(", ")))));
    const cb = $("channels-table").querySelector("tbody");
    cb.replaceChildren(...r.channels.map((ch) => {
      const flags = Object.entries(ch.flagged_samples).filter(([k]) => k !== "overrun")
        .map(([k, n]) => `${k} ${num(n)}`);
      if (ch.overruns) flags.push(`overrun ×${ch.overruns}`);
      return el("tr", { dataset: { key: ch.key } },
        el("td", {}, el("a", { href: "#signals-card", onclick: () => selectChannel(ch.key) }, ch.key)),
        el("td", {}, ch.name), el("td", {}, ch.unit_label || ch.unit || "–"), el("td", { class: "num" }, num(ch.sample_rate)),
        el("td", { class: "num" }, num(ch.samples)),
        el("td", { class: `num ${ch.lost ? "bad" : ""}` }, num(ch.lost)),
        el("td", { class: "num" }, num(ch.past_common_end)),
        el("td", { class: flags.length ? "warn" : "" }, flags.join(", ") || "–"),
        el("td", { class: "small" }, ch.transducer_label || "–"),
        ...levelCells(ch));
    }));
    const fb = $("files-table").querySelector("tbody");
    fb.replaceChildren(...r.files.map((f) => el("tr", { dataset: { file: f.file } },
      el("td", {}, f.file), el("td", { class: "num" }, Dash.fmtBytes(f.bytes)),
      el("td", { class: "num" }, num(f.messages)),
      el("td", { class: f.checksum === "mismatch" ? "bad" : "" }, f.checksum),
      el("td", { class: f.truncated_bytes ? "bad" : "" }, f.truncated_bytes ? `${num(f.truncated_bytes)} bytes` : "–"))));
    $("faults-wrap").hidden = !r.faults.length;
    $("faults").replaceChildren(...r.faults.map((f) => el("li", { class: f.kind === "error" ? "error" : "warning" },
      `${f.time ? Dash.fmtTime(f.time) + " " : ""}${f.kind} ${f.module || ""}${f.channel ? " ch" + f.channel : ""}: ${f.detail}`)));
  }

  // --- export ---------------------------------------------------------------------------------
  function exportQuery() {
    const q = new URLSearchParams({ format: $("exp-format").value });
    if ($("exp-format").value === "wav") q.set("per", $("exp-per").value);
    if ($("exp-trim").checked) q.set("trim", "1");
    if ($("exp-channels").value === "shown" && channel) q.set("channels", channel);
    if ($("exp-window").checked) {
      q.set("start", view[0]);
      q.set("duration", view[1] - view[0]);
    }
    return q;
  }

  let estimateTimer = null;
  function updateExport() {
    $("exp-per-label").style.display = $("exp-format").value === "wav" ? "" : "none";
    const q = exportQuery();
    $("exp-link").href = `${base}/export?${q}`;
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(async () => {
      try {
        const e = await api("GET", `${base}/export/estimate?${q}`);
        $("exp-size").textContent = `about ${Dash.fmtBytes(e.bytes)}`;
        Dash.showError($("exp-error"), null);
        $("exp-link").classList.remove("disabled");
      } catch (err) {
        $("exp-size").textContent = "";
        Dash.showError($("exp-error"), err);
        $("exp-link").classList.add("disabled");
      }
    }, 200);
  }
  for (const id of ["exp-format", "exp-per", "exp-channels", "exp-trim", "exp-window"]) $(id).onchange = updateExport;
  // The estimate has already checked the selection, so the link is a plain download that the
  // browser streams to disk (exports can be gigabytes).
  // The server sets a cookie named after the click's token when the file goes out; the status
  // then says so, instead of "preparing" for ever.
  $("exp-link").addEventListener("click", (ev) => {
    const link = $("exp-link");
    if (link.classList.contains("disabled")) { ev.preventDefault(); return; }
    const token = Math.random().toString(36).slice(2, 12);
    const url = new URL(link.href, location.href);
    url.searchParams.set("token", token);
    link.href = url.pathname + url.search;
    const status = $("exp-size");
    status.textContent = "preparing the file… (the download starts when it is ready)";
    status.dataset.download = "preparing";
    const name = `lanxi_download_${token}`;
    const started = Date.now();
    const timer = setInterval(() => {
      if (document.cookie.split("; ").some((c) => c.startsWith(`${name}=`))) {
        clearInterval(timer);
        document.cookie = `${name}=; Max-Age=0; path=/`;
        status.textContent = "the file has arrived (see your browser's downloads)";
        status.dataset.download = "done";
      } else if (Date.now() - started > 600000) {
        clearInterval(timer);
        status.textContent = "";
        delete status.dataset.download;
      }
    }, 250);
  });

  loadChannels();
  loadReport();
})();
