// One spectrum plot for the live and capture pages: one or more channels overlaid, a cursor
// with its harmonics (click the plot: the cursor takes the highest line within 4 px of the
// click, so a tone reads on its peak), readouts of every channel at the cursor, and a
// logarithmic frequency axis labelled in decades (grid lines at 2 and 5 of each decade).
"use strict";

(() => {
  const COLORS = ["#c0392b", "#0b63c5", "#1e8449", "#8e44ad"];
  const HARMONICS = 5;
  const SNAP_PX = 4;

  function hzLabel(v) {
    if (v >= 1e6) return `${v / 1e6}M`;
    if (v >= 1e3) return `${v / 1e3}k`;
    return String(v);
  }
  function isDecade(v) {
    const e = Math.log10(v);
    return Math.abs(e - Math.round(e)) < 1e-9;
  }
  // Decades, with 2 and 5 of each as unlabelled grid lines.
  function decadeSplits(u, axis, min, max) {
    const out = [];
    if (!(min > 0) || !(max > min)) return out;
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
      }
    }
    return out;
  }
  function nearest(freq, hz) {  // index of the line nearest hz (freq ascending)
    let lo = 0, hi = freq.length - 1;
    if (hi < 0) return -1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (freq[mid] < hz) lo = mid; else hi = mid;
    }
    return Math.abs(freq[lo] - hz) <= Math.abs(freq[hi] - hz) ? lo : hi;
  }

  class SpectrumPlot {
    // node: the plot's element; readout: where the cursor's figures go; height in px.
    constructor(node, { readout, height = 220, log = true, yLabel = "dB" } = {}) {
      this.node = node;
      this.readout = readout;
      this.height = height;
      this.log = log;
      this.yLabel = yLabel;
      this.freq = [];
      this.traces = [];
      this.fmt = (v) => (v == null ? "–" : v.toFixed(2));
      this.unit = "dB";
      this.cursorHz = null;
      this.plot = null;
      this._build(1);
      new ResizeObserver(() => this.plot.setSize(this._size())).observe(node);
    }
    _size() { return { width: Math.max(240, this.node.clientWidth), height: this.height }; }
    _build(count) {
      if (this.plot) this.plot.destroy();
      const series = [{ label: "f (Hz)" }];
      for (let i = 0; i < count; i++) {
        series.push({ label: this.traces[i]?.label || "level", stroke: COLORS[i % COLORS.length], width: 1 });
      }
      const xAxis = { label: "frequency (Hz)" };
      if (this.log) {
        xAxis.splits = decadeSplits;
        xAxis.values = (u, splits) => splits.map((v) => (isDecade(v) ? hzLabel(v) : ""));
      }
      this.plot = new uPlot({
        ...this._size(),
        scales: { x: { time: false, distr: this.log ? 3 : 1, range: (u, min, max) => [min, max] } },
        series,
        axes: [xAxis, { label: this.yLabel }],
        legend: { show: count > 1, live: false },
        hooks: { draw: [(u) => { this._drawCursors(u); this._markAxis(u); }] },
      }, [[], ...series.slice(1).map(() => [])], this.node);
      this.plot.over.addEventListener("mouseup", (e) => {  // uPlot takes mousedown for zooming
        const left = e.clientX - this.plot.over.getBoundingClientRect().left;
        if (!(left >= 0) || !this.freq.length) return;
        this.cursorHz = this._snap(left);
        this._readout();
        this.plot.redraw(false, false);
      });
      this.count = count;
    }
    // The line of the highest level of the first channel within SNAP_PX of the click: a tone
    // is read on its peak line, not on the slope a pixel beside it.
    _snap(left) {
      const lo = nearest(this.freq, this.plot.posToVal(Math.max(0, left - SNAP_PX), "x"));
      const hi = nearest(this.freq, this.plot.posToVal(left + SNAP_PX, "x"));
      const values = this.traces[0]?.values || [];
      let best = nearest(this.freq, this.plot.posToVal(left, "x"));
      for (let i = lo; i <= hi; i++) if (values[i] != null && (values[best] == null || values[i] > values[best])) best = i;
      return this.freq[best];
    }
    setLog(log) {
      if (log === this.log) return;
      this.log = log;
      this._build(this.count);
      this.show(this.freq, this.traces, this.yLabel);
    }
    clearCursor() { this.cursorHz = null; this._readout(); }
    // freq: ascending line frequencies (no DC on a log axis); traces: [{label, values}] with a
    // level (or null) per line; fmt: how a level prints; unit: the label after the figures.
    show(freq, traces, yLabel, fmt, unit) {
      if (fmt) this.fmt = fmt;
      if (unit) this.unit = unit;
      if (this.log && freq.length && freq[0] <= 0) {
        freq = freq.slice(1);
        traces = traces.map((t) => ({ ...t, values: t.values.slice(1) }));
      }
      this.freq = freq;
      this.traces = traces;
      const count = Math.max(1, traces.length);
      const labels = traces.map((t) => t.label).join("|");
      if (count !== this.count || labels !== this._labels) {
        this._labels = labels;
        this._build(count);
      }
      if (yLabel && yLabel !== this.yLabel) {
        this.yLabel = yLabel;
        this.plot.axes[1].label = yLabel;
      }
      this.plot.setData([freq, ...(traces.length ? traces.map((t) => t.values) : [[]])]);
      this.node.dataset.traces = traces.length;
      this._readout();
    }
    // The axis' ends as drawn (what a click maps from), set on each draw: uPlot applies new
    // data's scales after setData returns, so they cannot be read there.
    _markAxis(u) {
      const x = u.scales.x;
      if (x.min != null) { this.node.dataset.fmin = x.min; this.node.dataset.fmax = x.max; }
    }
    _harmonics() {  // cursor line and its harmonics' lines, within the plotted lines
      const k = nearest(this.freq, this.cursorHz);
      if (k < 0) return [];
      const f0 = this.freq[k];
      const out = [k];
      for (let h = 2; h <= HARMONICS; h++) {
        if (f0 * h > this.freq[this.freq.length - 1] * 1.0001) break;
        out.push(nearest(this.freq, f0 * h));
      }
      return out;
    }
    _readout() {
      const r = this.readout;
      if (!r) return;
      if (this.cursorHz == null || !this.freq.length) {
        r.textContent = "Click the spectrum to put a cursor (and its harmonics) there.";
        delete r.dataset.hz;
        return;
      }
      const lines = this._harmonics();
      const k = lines[0];
      const many = this.traces.length > 1;
      const at = this.traces.map((t) => `${many ? `${t.label} ` : ""}${this.fmt(t.values[k])}`);
      const first = this.traces[0];
      const harm = lines.slice(1).map((line, i) =>
        `${i + 2}× ${this.freq[line].toFixed(1)} Hz: ${this.fmt(first?.values[line])}`);
      r.textContent = `cursor ${this.freq[k].toFixed(1)} Hz: ${at.join(" · ")} ${this.unit}` +
        (harm.length ? ` · harmonics${many ? ` of ${first.label}` : ""}: ${harm.join(" · ")}` : "");
      r.dataset.hz = this.freq[k].toFixed(1);
      r.dataset.levels = JSON.stringify(this.traces.map((t) => t.values[k]));
    }
    _drawCursors(u) {
      if (this.cursorHz == null || !this.freq.length) return;
      const ctx = u.ctx;
      ctx.save();
      this._harmonics().forEach((line, i) => {
        const x = u.valToPos(this.freq[line], "x", true);
        ctx.strokeStyle = i === 0 ? "#0b63c5" : "rgba(11,99,197,0.45)";
        ctx.setLineDash(i === 0 ? [] : [4, 4]);
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
      });
      ctx.restore();
    }
  }

  // The overlay list: a check box per channel that may be overlaid (choices: [{key, label}]),
  // at most MAX_COMPARE ticked; onChange gets the new list of keys. Redrawn only when what it
  // shows changed, so a tick in progress is not lost to a redraw.
  const MAX_COMPARE = 3;
  function renderCompareList(list, choices, chosen, onChange) {
    const full = chosen.length >= MAX_COMPARE;
    const want = choices.map((c) => `${c.key}:${chosen.includes(c.key)}:${full}`).join("|");
    if (list.dataset.shown === want) return;
    list.dataset.shown = want;
    list.replaceChildren(...choices.map((c) => {
      const box = Dash.el("input", { type: "checkbox", value: c.key });
      box.checked = chosen.includes(c.key);
      box.disabled = !box.checked && full;
      box.onchange = () => onChange(box.checked ? [...chosen, c.key] : chosen.filter((k) => k !== c.key));
      return Dash.el("label", { class: "small" }, box, ` ${c.label}`);
    }));
  }

  // A logarithmic frequency axis labelled in decades, for other plots (static/frf_plot.js).
  const logFrequencyAxis = (label = "frequency (Hz)") => ({
    label,
    splits: decadeSplits,
    values: (u, splits) => splits.map((v) => (isDecade(v) ? hzLabel(v) : "")),
  });

  Object.assign(Dash, { SpectrumPlot, renderCompareList, logFrequencyAxis, nearestLine: nearest, PLOT_COLORS: COLORS });
})();
