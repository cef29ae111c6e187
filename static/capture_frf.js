// The capture page's FRF: H1 or H2 and coherence of a response channel against a reference
// channel (any modules of the capture), over the whole capture, from
// /api/captures/<id>/analysis/frf; magnitude (dB re 1) with coherence, phase, a shared cursor
// whose readout gives frequency, magnitude, phase and coherence; UFF 58 download of the same.
"use strict";

(() => {
  const { el, api } = Dash;
  const $ = (id) => document.getElementById(id);
  const page = $("capture-page");
  const base = `/api/captures/${encodeURIComponent(page.dataset.capture)}/analysis`;
  let last = null;

  const size = (node, h) => ({ width: Math.max(240, node.clientWidth), height: h });
  const sync = uPlot.sync("frf");
  const cursor = { sync: { key: sync.key }, drag: { x: true, y: false } };
  const magPlot = new uPlot({
    ...size($("frf-mag"), 240),
    scales: { x: { time: false, distr: 3, range: (u, a, b) => [a, b] }, coh: { range: [0, 1.05] } },
    series: [{ label: "f (Hz)" }, { label: "|H| dB", stroke: "#0b63c5", width: 1 },
      { label: "γ²", stroke: "#7f8c8d", width: 1, scale: "coh" }],
    axes: [{ label: "frequency (Hz)" }, { label: "dB re 1" },
      { scale: "coh", side: 1, label: "coherence", grid: { show: false } }],
    legend: { show: false },
    cursor,
    hooks: { setCursor: [(u) => readout(u.cursor.idx)] },
  }, [[], [], []], $("frf-mag"));
  const phasePlot = new uPlot({
    ...size($("frf-phase"), 180),
    scales: { x: { time: false, distr: 3, range: (u, a, b) => [a, b] }, y: { range: [-180, 180] } },
    series: [{ label: "f (Hz)" }, { label: "phase °", stroke: "#c0392b", width: 1 }],
    axes: [{ label: "frequency (Hz)" }, { label: "phase (°)" }],
    legend: { show: false },
    cursor,
  }, [[], []], $("frf-phase"));
  new ResizeObserver(() => {
    magPlot.setSize(size($("frf-mag"), 240));
    phasePlot.setSize(size($("frf-phase"), 180));
  }).observe($("frf-mag"));

  function readout(i) {
    const node = $("frf-cursor");
    if (!last || i == null || i < 0) return;
    const row = last.frf[0], est = $("frf-estimator").value;
    const j = i + 1;  // the plots leave out the 0 Hz line (log frequency)
    const db = row[`${est}_db`][j], ph = row[`${est}_phase_deg`][j], coh = row.coherence[j];
    node.dataset.freq = last.freq[j];
    node.textContent = `${last.freq[j].toFixed(2)} Hz · |${est.toUpperCase()}| ` +
      `${db == null ? "–" : db.toFixed(2)} dB re 1 ${row.unit} · phase ` +
      `${ph == null ? "–" : ph.toFixed(1)}° · γ² ${coh.toFixed(4)}`;
  }

  function draw() {
    if (!last) return;
    const row = last.frf[0], est = $("frf-estimator").value;
    const f = last.freq.slice(1);
    magPlot.setData([f, row[`${est}_db`].slice(1), row.coherence.slice(1)]);
    phasePlot.setData([f, row[`${est}_phase_deg`].slice(1)]);
    // The peak among the lines the response is coherent with the reference (γ² ≥ 0.9): where
    // it is not (outside the excitation's band), |H| is noise over noise.
    let best = -1;
    const db = row[`${est}_db`];
    for (let i = 1; i < db.length; i++) {
      if (db[i] == null || row.coherence[i] < 0.9) continue;
      if (best < 0 || db[i] > db[best]) best = i;
    }
    const lines = `${last.averages} averages · ${(last.freq[1]).toFixed(2)} Hz lines · `;
    $("frf-info").dataset.peakHz = best < 0 ? "" : last.freq[best];
    $("frf-info").textContent = best < 0 ? `${lines}no line with coherence ≥ 0.9`
      : `${lines}peak ${db[best].toFixed(2)} dB re 1 at ${last.freq[best].toFixed(1)} Hz (where γ² ≥ 0.9)`;
  }

  async function compute() {
    const q = new URLSearchParams({ reference: $("frf-reference").value,
      response: $("frf-response").value, nfft: $("frf-nfft").value });
    $("frf-error").hidden = true;
    $("frf-info").textContent = "computing…";
    try { last = await api("GET", `${base}/frf?${q}`); } catch (e) {
      last = null;
      $("frf-info").textContent = "";
      $("frf-error").textContent = e.message;
      $("frf-error").hidden = false;
      return;
    }
    $("frf-uff").href = `${base}/frf.uff?${q}`;
    $("frf-uff").hidden = false;
    draw();
  }

  async function channels() {
    let info;
    try { info = await api("GET", `${base}/channels`); } catch (e) { return; }
    const options = () => info.channels.map((c) => el("option", { value: c.key },
      `${c.key} · ${c.name}${c.unit ? " [" + (c.unit_label || c.unit) + "]" : ""}`));
    $("frf-reference").replaceChildren(...options());
    $("frf-response").replaceChildren(...options());
    if (info.channels.length > 1) $("frf-response").value = info.channels[1].key;
    page.dataset.frfReady = "1";
  }

  $("frf-compute").onclick = compute;
  $("frf-estimator").onchange = draw;
  channels();
})();
