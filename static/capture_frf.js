// The capture page's FRF: H1 or H2 and coherence of a response channel against a reference
// channel (any modules of the capture), over the whole capture, from
// /api/captures/<id>/analysis/frf, drawn by Dash.FrfPlot (static/frf_plot.js: magnitude in dB
// re 1 with coherence, phase, a cursor whose readout gives frequency, magnitude, phase and
// coherence); UFF 58 download of the same.
"use strict";

(() => {
  const { el, api } = Dash;
  const $ = (id) => document.getElementById(id);
  const page = $("capture-page");
  const base = `/api/captures/${encodeURIComponent(page.dataset.capture)}/analysis`;
  let last = null;

  const plot = new Dash.FrfPlot({ mag: $("frf-mag"), phase: $("frf-phase"), readout: $("frf-cursor"), syncKey: "frf" });

  function draw() {
    if (!last) return;
    const row = last.frf[0], est = $("frf-estimator").value;
    plot.show(last.freq, [{ label: row.channel, unit: row.unit, estimator: est.toUpperCase(),
      db: row[`${est}_db`], phase: row[`${est}_phase_deg`], coherence: row.coherence }]);
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
