// One FRF plot for the capture page and the live page: magnitude (dB re 1) with the coherence
// on its right-hand axis, phase below, one trace per response, a logarithmic frequency axis.
// The cursor follows the mouse over either plot (the readout gives frequency, magnitude, phase
// and coherence of every response); a click pins it, on the highest magnitude within 4 px of
// the click (a resonance reads on its peak line), and the readout then keeps reading that line
// as new data arrive (the live FRF).
"use strict";

(() => {
  const SNAP_PX = 4;
  const COLORS = Dash.PLOT_COLORS;

  class FrfPlot {
    // nodes: {mag, phase, readout}; hint: the readout's text while no cursor is set.
    constructor({ mag, phase, readout, hint = "move the cursor over the plots; click to pin it", syncKey }) {
      this.nodes = { mag, phase, readout };
      this.hint = hint;
      this.freq = [];
      this.rows = [];
      this.hover = null;
      this.pinnedHz = null;
      this.sync = uPlot.sync(syncKey || `frf-${Math.random().toString(36).slice(2)}`);
      this._build(1);
      new ResizeObserver(() => this._resize()).observe(mag);
      this._readout();
    }
    _size(node, h) { return { width: Math.max(240, node.clientWidth), height: h }; }
    _resize() {
      this.magPlot.setSize(this._size(this.nodes.mag, 240));
      this.phasePlot.setSize(this._size(this.nodes.phase, 170));
    }
    _build(count) {
      if (this.magPlot) { this.magPlot.destroy(); this.phasePlot.destroy(); }
      const cursor = { sync: { key: this.sync.key }, drag: { x: true, y: false } };
      const x = { time: false, distr: 3, range: (u, a, b) => [a, b] };
      const magSeries = [{ label: "f (Hz)" }];
      const phaseSeries = [{ label: "f (Hz)" }];
      for (let i = 0; i < count; i++) {
        const stroke = COLORS[(i + 1) % COLORS.length];
        magSeries.push({ label: `|H| ${i + 1}`, stroke, width: 1 });
        phaseSeries.push({ label: `phase ${i + 1}`, stroke, width: 1 });
      }
      for (let i = 0; i < count; i++) {
        magSeries.push({ label: `γ² ${i + 1}`, stroke: "#7f8c8d", width: 1, dash: i ? [4, 3] : undefined, scale: "coh" });
      }
      const hooks = {
        setCursor: [(u) => { this.hover = u.cursor.idx; this._readout(); }],
        draw: [(u) => this._drawPin(u)],
      };
      this.magPlot = new uPlot({
        ...this._size(this.nodes.mag, 240),
        scales: { x, coh: { range: [0, 1.05] } },
        series: magSeries,
        axes: [Dash.logFrequencyAxis(), { label: "dB re 1" },
          { scale: "coh", side: 1, label: "coherence γ²", grid: { show: false } }],
        legend: { show: false },
        cursor,
        hooks: { ...hooks, setScale: [(u, key) => this._noteScale(u, key)] },
      }, [[], ...magSeries.slice(1).map(() => [])], this.nodes.mag);
      this.phasePlot = new uPlot({
        ...this._size(this.nodes.phase, 170),
        scales: { x, y: { range: [-180, 180] } },
        series: phaseSeries,
        axes: [Dash.logFrequencyAxis(), { label: "phase (°)", splits: () => [-180, -90, 0, 90, 180] }],
        legend: { show: false },
        cursor,
        hooks,
      }, [[], ...phaseSeries.slice(1).map(() => [])], this.nodes.phase);
      for (const plot of [this.magPlot, this.phasePlot]) {
        // uPlot takes mousedown for zooming: the pin is set on mouseup.
        plot.over.addEventListener("mouseup", (e) => this._pin(plot, e));
        plot.over.addEventListener("mouseleave", () => { this.hover = null; this._readout(); });
      }
      this.count = count;
    }
    _pin(plot, e) {
      const left = e.clientX - plot.over.getBoundingClientRect().left;
      if (!(left >= 0) || !this.freq.length) return;
      const at = (px) => Dash.nearestLine(this.freq, plot.posToVal(px, "x"));
      const lo = at(Math.max(0, left - SNAP_PX)), hi = at(left + SNAP_PX);
      const db = this.rows[0]?.db || [];
      let best = at(left);
      for (let i = lo; i <= hi; i++) if (db[i] != null && (db[best] == null || db[i] > db[best])) best = i;
      this.pinnedHz = this.freq[best];
      this._readout();
      this.magPlot.redraw(false, false);
      this.phasePlot.redraw(false, false);
    }
    unpin() { this.pinnedHz = null; this._readout(); }
    // freq: line frequencies from 0 Hz; rows: [{label, unit, db, phase, coherence}] per response.
    show(freq, rows) {
      const drop = freq.length && freq[0] <= 0 ? 1 : 0;  // no 0 Hz on a log axis
      this.freq = freq.slice(drop);
      this.rows = rows.map((r) => ({ ...r, db: r.db.slice(drop), phase: r.phase.slice(drop),
        coherence: r.coherence.slice(drop) }));
      if (Math.max(1, rows.length) !== this.count) this._build(Math.max(1, rows.length));
      const empty = this.rows.length ? [] : [[]];
      this.magPlot.setData([this.freq, ...this.rows.map((r) => r.db), ...empty, ...this.rows.map((r) => r.coherence), ...empty]);
      this.phasePlot.setData([this.freq, ...this.rows.map((r) => r.phase), ...empty]);
      this.nodes.mag.dataset.traces = this.rows.length;
      this._readout();
    }
    _noteScale(u, key) {  // the axis' ends as drawn (what a click maps from)
      const xs = u.scales.x;
      if (key === "x" && xs.min != null) { this.nodes.mag.dataset.fmin = xs.min; this.nodes.mag.dataset.fmax = xs.max; }
    }
    _index() {
      if (this.hover != null && this.hover >= 0) return this.hover;
      if (this.pinnedHz == null || !this.freq.length) return -1;
      return Dash.nearestLine(this.freq, this.pinnedHz);
    }
    _readout() {
      const node = this.nodes.readout;
      if (!node) return;
      const i = this._index();
      if (i < 0 || i >= this.freq.length || !this.rows.length) {
        node.textContent = this.hint;
        for (const k of ["hz", "freq", "db", "phase", "coherence"]) delete node.dataset[k];
        return;
      }
      const many = this.rows.length > 1;
      const f = this.freq[i];
      const parts = this.rows.map((r) => {
        const db = r.db[i], ph = r.phase[i], coh = r.coherence[i];
        return `${many ? `${r.label}: ` : ""}|${r.estimator || "H"}| ${db == null ? "–" : db.toFixed(2)} dB re 1 ` +
          `${r.unit || ""} · phase ${ph == null ? "–" : ph.toFixed(1)}° · γ² ${coh == null ? "–" : coh.toFixed(4)}`;
      });
      node.textContent = `${f.toFixed(2)} Hz${this.pinnedHz != null && this.hover == null ? " (pinned)" : ""} · ${parts.join(" · ")}`;
      const first = this.rows[0];
      Object.assign(node.dataset, { hz: f, freq: f, db: first.db[i] ?? "", phase: first.phase[i] ?? "",
        coherence: first.coherence[i] ?? "" });
    }
    _drawPin(u) {
      if (this.pinnedHz == null || !this.freq.length) return;
      const x = u.valToPos(this.freq[Dash.nearestLine(this.freq, this.pinnedHz)], "x", true);
      const ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "#0b63c5";
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.restore();
    }
  }

  // |H| in dB, phase in degrees and γ² from averaged spectra: gxx (Float64Array), gyy, gxy
  // (re, im) per line; estimator "h1" (Gxy/Gxx) or "h2" (Gyy/Gyx).
  function frfFromSpectra(gxx, gyy, re, im, estimator) {
    const n = gxx.length;
    const db = new Array(n), phase = new Array(n), coherence = new Array(n);
    for (let i = 0; i < n; i++) {
      const cross2 = re[i] * re[i] + im[i] * im[i];
      let hr, hi;
      if (estimator === "h2") {  // Gyy / conj(Gxy)
        hr = gyy[i] * re[i] / cross2; hi = gyy[i] * im[i] / cross2;
      } else {
        hr = re[i] / gxx[i]; hi = im[i] / gxx[i];
      }
      const mag = Math.hypot(hr, hi);
      db[i] = mag > 0 && isFinite(mag) ? 20 * Math.log10(mag) : null;
      phase[i] = isFinite(hr) && isFinite(hi) ? Math.atan2(hi, hr) * 180 / Math.PI : null;
      const c = cross2 / (gxx[i] * gyy[i]);
      coherence[i] = isFinite(c) ? c : 0;
    }
    return { db, phase, coherence };
  }

  Object.assign(Dash, { FrfPlot, frfFromSpectra });
})();
