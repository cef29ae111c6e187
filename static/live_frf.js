// The live page's frequency response: H1 or H2 and coherence between a reference channel and up
// to three response channels (any modules: they are sample-synchronous) while the rig monitors
// or records. With "Compute" ticked this viewer asks for the FRF (select-frf); the server
// computes the auto and cross spectra of the channels only while some viewer shows them and
// sends the mean of each batch of segments ("frf" events). The averaging is this viewer's:
// linear over every segment since the last reset (or up to N), its count shown; H1 = Gxy/Gxx,
// H2 = Gyy/Gyx and γ² are formed here, and drawn by Dash.FrfPlot (static/frf_plot.js).
"use strict";

(() => {
  const { el, state, on, socket } = Dash;
  const $ = (id) => document.getElementById(id);
  if (!$("lfrf-card")) return;
  const plot = new Dash.FrfPlot({ mag: $("lfrf-mag"), phase: $("lfrf-phase"), readout: $("lfrf-cursor"),
    hint: "move the cursor over the plots; click to pin it on a line" });
  let extra = [];  // more response channels beyond the first ("address/channel")
  let acc = null;  // {key, lines, df, segments, gxx, gyy[], re[], im[], units}

  const keyOf = (address, channel) => `${address}/${channel}`;
  const split = (key) => { const cut = key.lastIndexOf("/"); return { module: key.slice(0, cut), channel: Number(key.slice(cut + 1)) }; };
  const label = (key) => key.replace(/\/(\d+)$/, " · Ch $1");

  function channels() {
    const out = [];
    const seen = new Set();
    const modules = [...(((state.capture || {}).current || {}).modules || []),
      ...(((state.rig || {}).modules || []).map((m) => m.address))];
    for (const address of modules) {
      if (seen.has(address)) continue;
      seen.add(address);
      const rows = (((state.setup || {}).setup || {}).channels || {})[address] || [];
      for (const r of rows) if (r.enabled) out.push(keyOf(address, r.channel));
    }
    return out;
  }

  function fill(select, keys, fallback) {
    const now = Array.from(select.options).map((o) => o.value).join("|");
    if (now === keys.join("|")) return;
    const keep = select.value;
    select.replaceChildren(...keys.map((k) => el("option", { value: k }, label(k))));
    select.value = keys.includes(keep) ? keep : (keys[fallback] || keys[0] || "");
  }

  function renderChoices() {
    const keys = channels();
    fill($("lfrf-reference"), keys, 0);
    fill($("lfrf-response"), keys, 1);
    const taken = [$("lfrf-reference").value, $("lfrf-response").value];
    extra = extra.filter((k) => keys.includes(k) && !taken.includes(k));
    Dash.renderCompareList($("lfrf-more-list"), keys.filter((k) => !taken.includes(k)).map((k) => ({ key: k, label: label(k) })),
      extra, (chosen) => { extra = chosen.slice(0, 2); renderChoices(); send(); });
  }

  function choice() {
    if (!$("lfrf-on").checked) return { reference: null };
    const responses = [$("lfrf-response").value, ...extra].filter((k) => k && k !== $("lfrf-reference").value);
    return { reference: split($("lfrf-reference").value), responses: responses.map(split), lines: Number($("lfrf-lines").value) };
  }

  function send() {
    $("lfrf-plots").hidden = !$("lfrf-on").checked;
    reset();
    socket.emit("select-frf", choice(), (ack) => {
      const err = $("lfrf-error");
      Dash.showError(err, ack && ack.ok === false ? new Error(ack.error) : null);
    });
  }

  function reset() {
    acc = null;
    plot.show([], []);
    $("lfrf-info").textContent = $("lfrf-on").checked ? "waiting for the measurement…" : "";
    $("lfrf-info").dataset.averages = "0";
  }

  on("frf", (f) => {
    if (!f || !$("lfrf-on").checked) return;
    const n = f.lines + 1, r = f.responses.length;
    if (!acc || acc.key !== f.key) {
      acc = { key: f.key, lines: f.lines, df: f.df, segments: 0, units: f.units, gxx: new Float64Array(n),
        responses: f.responses.map((x) => keyOf(x.module, x.channel)),
        gyy: [...Array(r)].map(() => new Float64Array(n)), re: [...Array(r)].map(() => new Float64Array(n)),
        im: [...Array(r)].map(() => new Float64Array(n)) };
    }
    const limit = Number($("lfrf-n").value) || 0;
    if (limit && acc.segments >= limit) { draw(); return; }
    const d = new Float32Array(f.data);
    const w = f.segments;
    for (let i = 0; i < n; i++) acc.gxx[i] += d[i] * w;
    for (let j = 0; j < r; j++) {
      const base = n * (1 + 3 * j);
      for (let i = 0; i < n; i++) {
        acc.gyy[j][i] += d[base + i] * w;
        acc.re[j][i] += d[base + n + i] * w;
        acc.im[j][i] += d[base + 2 * n + i] * w;
      }
    }
    acc.segments += w;
    draw();
  });

  function draw() {
    if (!acc) return;
    const est = $("lfrf-estimator").value;
    const freq = Array.from({ length: acc.lines + 1 }, (_, i) => i * acc.df);
    const rows = acc.gyy.map((_, j) => ({
      label: label(acc.responses[j]), estimator: est.toUpperCase(),
      unit: `${acc.units.responses[j] || ""}/${acc.units.reference || ""}`,
      ...Dash.frfFromSpectra(acc.gxx, acc.gyy[j], acc.re[j], acc.im[j], est),
    }));
    plot.show(freq, rows);
    // The peak of the first response among the lines coherent with the reference (γ² ≥ 0.9).
    const first = rows[0];
    let best = -1;
    for (let i = 1; i < first.db.length; i++) {
      if (first.db[i] == null || first.coherence[i] < 0.9) continue;
      if (best < 0 || first.db[i] > first.db[best]) best = i;
    }
    const limit = Number($("lfrf-n").value) || 0;
    const info = $("lfrf-info");
    info.dataset.averages = acc.segments;
    info.dataset.peakHz = best < 0 ? "" : freq[best];
    info.textContent = `${acc.segments}${limit ? ` of ${limit}` : ""} averages · ${acc.df.toFixed(2)} Hz lines · Hann, ½ overlap · ` +
      (best < 0 ? "no line with coherence ≥ 0.9" : `peak ${first.db[best].toFixed(2)} dB re 1 at ${freq[best].toFixed(1)} Hz (where γ² ≥ 0.9)`);
  }

  for (const id of ["lfrf-on", "lfrf-reference", "lfrf-response", "lfrf-lines"]) $(id).addEventListener("change", () => { renderChoices(); send(); });
  $("lfrf-estimator").addEventListener("change", draw);
  $("lfrf-reset").onclick = reset;
  socket.on("connect", () => { if ($("lfrf-on").checked) send(); });
  on("rig", renderChoices);
  on("setup", renderChoices);
  on("capture", renderChoices);
})();
