// The calibration check on the Transducers page: measure one channel of a rig module while a
// sound calibrator or shaker is on it, show the new sensitivity, its deviation from the stored
// one and pass/fail, and store it on confirmation (operator).
"use strict";

(() => {
  const { el, api } = Dash;
  const $ = (id) => document.getElementById(id);
  let last = null;

  function error(err) {
    $("cal-error").textContent = err ? err.message : "";
    $("cal-error").hidden = !err;
  }

  Transducers.onView((view) => {
    const keep = $("cal-transducer").value;
    $("cal-transducer").replaceChildren(el("option", { value: "" }, "the TEDS transducer found"),
      ...view.transducers.map((t) => el("option", { value: t.id }, `${t.type} s/n ${t.serial}`)));
    $("cal-transducer").value = keep;
    if (!$("cal-reference").options.length) {
      $("cal-reference").replaceChildren(...view.references.map((r) => el("option", { value: r }, r)));
    }
  });

  async function loadModules() {
    try {
      const rig = await api("GET", "/api/rig");
      $("cal-module").replaceChildren(...rig.modules.map((m) =>
        el("option", { value: m.address }, m.name ? `${m.name} (${m.address})` : m.address)));
    } catch (err) { error(err); }
  }

  function show(r) {
    const u = Transducers.UNIT(r.unit);
    const ref = r.reference;
    const t = r.transducer;
    const rows = [
      ["Reference", `${ref.kind} ${ref.text}: ${ref.rms.toPrecision(5)} ${u} RMS = ${ref.level_db.toFixed(1)} ${ref.db_label}`],
      ["Transducer", t ? `${t.type} s/n ${t.serial}` : "none in the database"],
      ["Measured", `${(r.measured_volts_rms * 1000).toFixed(4)} mV RMS at ${r.measured_frequency_hz.toFixed(1)} Hz`],
      ["New sensitivity", Transducers.mv(r.sensitivity, r.unit)],
    ];
    if (r.stored_sensitivity != null) {
      rows.push(["Stored sensitivity", `${Transducers.mv(r.stored_sensitivity, r.unit)} (reads ${r.level_with_stored_db.toFixed(2)} ${r.db_label})`]);
      rows.push(["Deviation", `${r.deviation_db >= 0 ? "+" : ""}${r.deviation_db.toFixed(3)} dB (tolerance ±${r.tolerance_db} dB)`]);
    }
    $("cal-facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { dataset: { fact: k } }, v)]));
    const verdict = $("cal-verdict");
    verdict.textContent = r.passed == null ? "no stored sensitivity to compare with" : r.passed ? "PASS" : "FAIL";
    verdict.className = `badge ${r.passed == null ? "q-unknown" : r.passed ? "q-ok" : "q-bad"}`;
    verdict.dataset.verdict = r.passed == null ? "none" : r.passed ? "pass" : "fail";
    $("cal-store").hidden = !t;
    $("cal-stored").hidden = true;
    $("cal-result").hidden = false;
  }

  async function measure(ev) {
    ev.preventDefault();
    error(null);
    $("cal-result").hidden = true;
    $("cal-busy").hidden = false;
    $("cal-measure").disabled = true;
    try {
      last = await api("POST", "/api/calibration/check", {
        address: $("cal-module").value, channel: Number($("cal-channel").value),
        reference: $("cal-reference").value, transducer: $("cal-transducer").value || null,
        tolerance_db: Number($("cal-tolerance").value),
      });
      show(last);
    } catch (err) { error(err); }
    $("cal-busy").hidden = true;
    $("cal-measure").disabled = false;
    Transducers.load();  // a TEDS transducer found may be new
  }

  async function store() {
    if (!last || !last.transducer) return;
    try {
      const entry = await api("POST", `/api/transducers/${encodeURIComponent(last.transducer.id)}/calibrations`, {
        sensitivity: last.sensitivity, reference: last.reference.text,
        deviation_db: last.deviation_db, passed: last.passed, due: $("cal-due").value || null,
      });
      $("cal-stored").textContent = `stored ${Transducers.mv(entry.sensitivity, entry.unit)} on ${entry.calibrated} by ${entry.calibrated_by}`;
      $("cal-stored").hidden = false;
      error(null);
    } catch (err) { error(err); }
    Transducers.load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("cal-form").addEventListener("submit", measure);
    $("cal-store").addEventListener("click", store);
    loadModules();
  });
})();
