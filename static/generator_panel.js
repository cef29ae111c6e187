// The live page's generator panel: every output of every rig module that has outputs (3160: 2,
// 3677: 1), with what it runs now (seen live by every viewer, from the "generator" topic) and,
// for operators, its waveform and parameters, output gain and offset, and how it is driven:
// by hand ("Start now" / "Stop", POST /api/generator/start|stop; several outputs started
// together go in one request, synchronized across modules) or with the recording (the
// settings go with the next Start's request and into its capture.json).
"use strict";

(() => {
  const { el, api, state, on } = Dash;
  const $ = (id) => document.getElementById(id);
  const card = $("generator-card");
  if (!card) return;
  const list = $("gen-outputs");
  const errorBox = $("gen-error");
  const FULL_SCALE_V = 10;  // output volts at gain 1 and a waveform of 1 (PROTOCOL.md §5.7)
  const WAVEFORMS = {
    sine: "sine", square: "square", dc: "DC", linsweep: "linear sweep", logsweep: "log sweep",
    random: "random", burst: "burst random",
  };
  // Fields per waveform: [name, label, default, min, max, step].
  const FIELDS = {
    sine: [["frequency", "Frequency (Hz)", 1000, 0.01, 100000, "any"], ["amplitude", "Amplitude (0–1)", 0.5, 0, 1, "any"],
      ["phase", "Phase (°)", 0, 0, 359.9999, "any"]],
    square: [["frequency", "Frequency (Hz)", 100, 0.01, 100000, "any"], ["highlevel", "High (−1–1)", 0.5, -1, 1, "any"],
      ["lowlevel", "Low (−1–1)", -0.5, -1, 1, "any"], ["dutycycle", "Duty (%)", 50, 0, 100, "any"]],
    dc: [["level", "Level (−1–1)", 0.1, -1, 1, "any"]],
    linsweep: [["start", "From (Hz)", 20, 0.01, 100000, "any"], ["stop", "To (Hz)", 2000, 0.01, 100000, "any"],
      ["rate", "Rate (Hz/s)", 500, 0.001, 1e6, "any"], ["amplitude", "Amplitude (0–1)", 0.5, 0, 1, "any"]],
    logsweep: [["start", "From (Hz)", 20, 0.01, 100000, "any"], ["stop", "To (Hz)", 2000, 0.01, 100000, "any"],
      ["rate", "Rate (decades/s)", 0.5, 0.001, 100, "any"], ["amplitude", "Amplitude (0–1)", 0.5, 0, 1, "any"]],
    random: [["low", "From (Hz)", 0, 0, 100000, "any"], ["high", "To (Hz)", 4000, 0.01, 100000, "any"],
      ["amplitude", "Amplitude (0–1)", 0.999, 0, 1, "any"], ["seed", "Seed (0–15)", 0, 0, 15, 1]],
    burst: [["low", "From (Hz)", 0, 0, 100000, "any"], ["high", "To (Hz)", 4000, 0.01, 100000, "any"],
      ["amplitude", "Amplitude (0–1)", 0.999, 0, 1, "any"], ["period", "Burst period (s)", 1, 0.001, 1000, "any"],
      ["on", "On (%)", 50, 0, 100, "any"], ["seed", "Seed (0–15)", 0, 0, 15, 1]],
  };
  const forms = new Map();  // "address/number" -> the form's elements (operators only)

  function outputsOf() {
    const out = [];
    ((state.rig || {}).modules || []).forEach((m, i) => {
      const count = (m.info || {}).output_channels || 0;
      for (let n = 1; n <= count; n++) {
        out.push({ key: `${m.address}/${n}`, address: m.address, number: n, module: i + 1, type: (m.info || {}).type || "" });
      }
    });
    return out;
  }

  // --- the output object a form describes (the module's generator/output JSON) ---------------
  function outputObject(f) {
    const v = (name) => Number(f.fields[name].value);
    const kind = f.waveform.value;
    const input = { number: 1 };
    const out = { number: f.number, gain: Number(f.gain.value), offset: Number(f.offset.value), inputs: [input] };
    if (kind === "sine") Object.assign(input, { signalType: "sine", frequency: v("frequency"), gain: v("amplitude"), phase: v("phase") });
    else if (kind === "square") {
      Object.assign(input, { signalType: "square", frequency: v("frequency"), highlevel: v("highlevel"),
        lowlevel: v("lowlevel"), dutycycle: v("dutycycle") });
    } else if (kind === "dc") Object.assign(input, { signalType: "dc", gain: v("level") });
    else if (kind === "linsweep" || kind === "logsweep") {
      Object.assign(input, { signalType: kind, start_frequency: v("start"), stop_frequency: v("stop"), gain: v("amplitude"),
        direction: f.updown.checked ? 1 : 0 });
      input[kind === "linsweep" ? "hz_second" : "decades_sec"] = v("rate");
    } else {  // random, burst random: the band as the module takes it (centre, width)
      Object.assign(input, { signalType: "random", center_frequency: (v("low") + v("high")) / 2,
        bandwidth: v("high") - v("low"), gain: v("amplitude"), gen_number: v("seed"),
        pink_filter: f.pink.checked ? 1 : 0, hp_filter: f.hp.checked ? 1 : 0 });
      if (kind === "burst") {  // random × a 0/1 square (the module's mixer multiplies)
        out.mixfunction = "mul";
        out.inputs.push({ number: 2, signalType: "square", frequency: 1 / v("period"), highlevel: 1,
          lowlevel: 0, dutycycle: v("on") });
      }
    }
    if (out.inputs.length === 1) out.inputs.push({ number: 2, signalType: "none" });
    return out;
  }

  // What an output object runs, in words (for everybody, from the state).
  function describe(o) {
    if (!o) return "";
    const [a, b] = o.inputs || [];
    const hz = (x) => (x >= 1000 ? `${+(x / 1000).toFixed(3)} kHz` : `${+x.toFixed(2)} Hz`);
    let text = a ? a.signalType : "?";
    if (!a) return text;
    if (a.signalType === "sine" || a.signalType === "square") text = `${a.signalType} ${hz(a.frequency)}`;
    else if (a.signalType === "dc") text = `DC ${a.gain}`;
    else if (a.signalType === "linsweep" || a.signalType === "logsweep") {
      text = `${a.signalType === "linsweep" ? "linear" : "log"} sweep ${hz(a.start_frequency)}–${hz(a.stop_frequency)}`;
    } else if (a.signalType === "random") {
      const lo = a.center_frequency - a.bandwidth / 2, hi = a.center_frequency + a.bandwidth / 2;
      const burst = o.mixfunction === "mul" && b && b.signalType === "square";
      text = `${burst ? "burst random" : "random"} ${hz(Math.max(0, lo))}–${hz(hi)}` +
        (burst ? ` (${b.dutycycle} % of ${+(1 / b.frequency).toFixed(3)} s)` : "");
    }
    const gain = o.gain === undefined ? 1 : o.gain;
    const amp = a.signalType === "dc" ? Math.abs(a.gain || 0) : (a.gain === undefined ? 1 : a.gain);
    const peak = FULL_SCALE_V * gain * amp;
    return `${text}, output gain ${gain}` + (o.offset ? `, offset ${o.offset}` : "") +
      (a.signalType === "random" ? ` (≈ ${(peak / Math.SQRT2).toFixed(3)} V RMS)` : ` (${peak.toFixed(3)} V peak)`);
  }

  // --- building the panel ----------------------------------------------------------------------
  function numberInput(spec) {
    const [name, label, value, min, max, step] = spec;
    const input = el("input", { type: "number", name, value, min, max, step });
    return { name, input, label: el("label", {}, `${label} `, input) };
  }

  function buildForm(o) {
    const f = { number: o.number, address: o.address, fields: {} };
    f.waveform = el("select", { name: "waveform" },
      Object.entries(WAVEFORMS).map(([k, label]) => el("option", { value: k }, label)));
    f.waveform.value = "random";
    f.params = el("div", { class: "row gen-params" });
    f.gain = el("input", { type: "number", name: "gain", value: 0.05, min: 0, max: 1, step: "any" });
    f.offset = el("input", { type: "number", name: "offset", value: 0, min: -1, max: 1, step: "any" });
    f.updown = el("input", { type: "checkbox", name: "updown" });
    f.pink = el("input", { type: "checkbox", name: "pink" });
    f.hp = el("input", { type: "checkbox", name: "hp" });
    f.drive = el("select", { name: "drive" }, el("option", { value: "hand" }, "by hand"),
      el("option", { value: "recording" }, "with the recording (Start)"));
    f.start = el("button", { class: "primary", name: "start" }, "Start now");
    f.stop = el("button", { class: "danger", name: "stop" }, "Stop");
    f.volts = el("span", { class: "muted small gen-volts" });
    const fillParams = () => {
      f.fields = {};
      const items = FIELDS[f.waveform.value].map(numberInput);
      for (const item of items) f.fields[item.name] = item.input;
      const extra = [];
      if (f.waveform.value.endsWith("sweep")) extra.push(el("label", {}, f.updown, " up and down"));
      if (f.waveform.value === "random" || f.waveform.value === "burst") {
        extra.push(el("label", {}, f.pink, " pink"), el("label", {}, f.hp, " high-pass 7 Hz"));
      }
      f.params.replaceChildren(...items.map((i) => i.label), ...extra);
      for (const i of items) i.input.addEventListener("input", showVolts);
      showVolts();
    };
    const showVolts = () => { f.volts.textContent = describe(outputObject(f)); };
    f.waveform.addEventListener("change", fillParams);
    for (const x of [f.gain, f.offset]) x.addEventListener("input", showVolts);
    f.drive.addEventListener("change", () => {
      f.start.hidden = f.drive.value !== "hand";
      card.dataset.withRecording = Object.keys(withRecording()).length;
    });
    f.start.onclick = () => act(f.start, () => api("POST", "/api/generator/start",
      { generators: { [f.address]: [outputObject(f)] } }));
    f.stop.onclick = () => act(f.stop, () => api("POST", "/api/generator/stop",
      { outputs: { [f.address]: [f.number] } }));
    fillParams();
    f.fill = (o) => fillForm(f, o, fillParams);
    f.select = el("input", { type: "checkbox", name: "select" });
    f.node = el("div", { class: "gen-form" },
      el("label", {}, f.select, " selected (for “Start selected together”)"),
      el("div", { class: "row" }, el("label", {}, "Waveform ", f.waveform),
        el("label", {}, "Output gain (0–1) ", f.gain), el("label", {}, "Offset (−1–1) ", f.offset),
        el("label", {}, "Drive ", f.drive)),
      f.params,
      el("div", { class: "row" }, f.start, f.stop, f.volts));
    return f;
  }

  // A form showing what an output object runs (an operator who opens the page while it runs).
  function fillForm(f, o, fillParams) {
    const [a, b] = o.inputs || [];
    if (!a) return;
    const burst = a.signalType === "random" && o.mixfunction === "mul" && b && b.signalType === "square";
    const kind = burst ? "burst" : a.signalType;
    if (!FIELDS[kind]) return;
    f.waveform.value = kind;
    fillParams();
    const set = (name, value) => { if (f.fields[name] && value !== undefined && value !== null) f.fields[name].value = +(+value).toFixed(6); };
    f.gain.value = o.gain ?? 1;
    f.offset.value = o.offset ?? 0;
    if (kind === "sine" || kind === "square") set("frequency", a.frequency);
    if (kind === "sine") { set("amplitude", a.gain); set("phase", a.phase); }
    if (kind === "square") { set("highlevel", a.highlevel); set("lowlevel", a.lowlevel); set("dutycycle", a.dutycycle); }
    if (kind === "dc") set("level", a.gain);
    if (kind.endsWith("sweep")) {
      set("start", a.start_frequency); set("stop", a.stop_frequency); set("amplitude", a.gain);
      set("rate", kind === "linsweep" ? a.hz_second : a.decades_sec);
      f.updown.checked = a.direction === 1;
    }
    if (kind === "random" || kind === "burst") {
      set("low", a.center_frequency - a.bandwidth / 2); set("high", a.center_frequency + a.bandwidth / 2);
      set("amplitude", a.gain); set("seed", a.gen_number || 0);
      f.pink.checked = !!a.pink_filter; f.hp.checked = !!a.hp_filter;
    }
    if (burst) { set("period", 1 / b.frequency); set("on", b.dutycycle); }
    f.volts.textContent = describe(outputObject(f));
  }

  async function act(button, fn) {
    Dash.showError(errorBox, null);
    button.disabled = true;
    try { await fn(); } catch (e) { Dash.showError(errorBox, e); } finally { button.disabled = false; }
  }

  function render() {
    const outputs = outputsOf();
    const gen = state.generator || {};
    card.hidden = !outputs.length;
    const keys = outputs.map((o) => o.key).join("|");
    if (list.dataset.keys !== keys) {
      list.dataset.keys = keys;
      list.replaceChildren(...outputs.map((o) => {
        const status = el("span", { class: "gen-status", dataset: { status: o.key } });
        const node = el("div", { class: "gen-output", dataset: { output: o.key } },
          el("h3", {}, `Module ${o.module} (${o.address}${o.type ? `, Type ${o.type}` : ""}) · output ${o.number} `, status));
        if (Dash.AUTH.can("operator")) {
          let f = forms.get(o.key);
          if (!f) {
            f = buildForm(o);
            forms.set(o.key, f);
            const s = ((gen[o.address] || {})[String(o.number)]) || null;
            if (s && s.output) f.fill(s.output);
          }
          node.append(f.node);
        }
        return node;
      }));
    }
    for (const o of outputs) {
      const s = ((gen[o.address] || {})[String(o.number)]) || null;
      const node = list.querySelector(`[data-status="${CSS.escape(o.key)}"]`);
      if (!node) continue;
      const running = !!(s && s.running);
      node.dataset.running = running ? "1" : "0";
      node.className = `gen-status chip ${running ? "gen-on" : "gen-off"}`;
      const since = s ? new Date(s.since * 1000).toLocaleTimeString() : "";
      node.textContent = running
        ? `running ${s.how === "recording" ? "with the recording" : "by hand"} since ${since}: ${describe(s.output)}`
        : s ? `stopped ${since}${s.note ? ` (${s.note})` : ""}${s.output ? ` · last: ${describe(s.output)}` : ""}` : "stopped";
      node.dataset.waveform = s && s.output ? describe(s.output) : "";
    }
  }

  // The outputs set to run with the recording: they go with the next Start's request.
  function withRecording() {
    const out = {};
    for (const f of forms.values()) {
      if (f.drive.value !== "recording") continue;
      (out[f.address] = out[f.address] || []).push(outputObject(f));
    }
    return out;
  }
  Dash.generatorsForRecording = () => {
    const g = withRecording();
    return Object.keys(g).length ? g : undefined;
  };

  $("gen-start-selected").onclick = (e) => act(e.target, () => {
    const generators = {};
    for (const f of forms.values()) {
      if (f.select.checked) (generators[f.address] = generators[f.address] || []).push(outputObject(f));
    }
    if (!Object.keys(generators).length) throw new Error("tick the outputs to start together first");
    return api("POST", "/api/generator/start", { generators });
  });
  $("gen-stop-all").onclick = (e) => act(e.target, () => api("POST", "/api/generator/stop", {}));
  on("rig", render);
  on("generator", render);
})();
