// The Transducers page: the database (type, serial, sensitivity, supply, calibration dates,
// overdue and TEDS-differs flags), adding one by hand and CSV import. Sensitivities are shown
// and typed in mV per unit; the API speaks V per unit.
"use strict";

const Transducers = (() => {
  const { el, api } = Dash;
  const $ = (id) => document.getElementById(id);
  const listeners = [];
  const UNIT = (u) => (u === "m/s^2" ? "m/s²" : u);
  const perUnit = (u) => (UNIT(u).includes("/") ? `(${UNIT(u)})` : UNIT(u));
  const mv = (v, u) => `${(v * 1000).toFixed(3)} mV/${perUnit(u)}`;

  function showError(id, err) {
    const node = $(id);
    node.textContent = err ? err.message : "";
    node.hidden = !err;
  }

  function statusCell(t) {
    const out = [];
    if (t.overdue) out.push(el("span", { class: "badge q-bad", dataset: { flag: "overdue" } }, "calibration overdue"));
    if (t.teds_differs) {
      out.push(el("span", { class: "badge q-warn", dataset: { flag: "teds" },
        title: "the sensitivity TEDS reports differs from the latest calibration" },
      `TEDS says ${mv(t.teds_sensitivity, t.unit)}`));
      if (Dash.AUTH.can("operator")) {
        out.push(el("button", { type: "button", class: "small", dataset: { action: "accept-teds" },
          onclick: () => act("POST", `/api/transducers/${encodeURIComponent(t.id)}/accept-teds`) }, "use TEDS"));
      }
    }
    if (!out.length) out.push(el("span", { class: "badge q-ok" }, "ok"));
    return out;
  }

  function render(view) {
    const tbody = $("tr-table").querySelector("tbody");
    tbody.replaceChildren(...view.transducers.map((t) => el("tr", { dataset: { transducer: t.id } },
      el("td", {}, t.type + (t.teds ? " (TEDS)" : "")), el("td", {}, t.serial),
      el("td", { class: "num" }, mv(t.sensitivity, t.unit)),
      el("td", {}, [t.ccld ? "CCLD" : "", t.polarisation ? "200 V" : ""].filter(Boolean).join(", ") || "–"),
      el("td", {}, t.calibrated || "–"), el("td", {}, t.due || "–"), el("td", {}, t.calibrated_by || "–"),
      el("td", {}, statusCell(t)),
      Dash.AUTH.can("operator") ? el("td", {}, el("button", { type: "button", class: "small",
        dataset: { action: "remove" },
        onclick: () => { if (confirm(`Remove ${t.type} s/n ${t.serial}?`)) act("DELETE", `/api/transducers/${encodeURIComponent(t.id)}`); } },
      "Remove")) : el("td", {}))));
    const overdue = $("tr-overdue");
    overdue.hidden = !view.overdue.length;
    overdue.textContent = `${view.overdue.length} calibration${view.overdue.length === 1 ? "" : "s"} overdue`;
    $("tr-unit").replaceChildren(...view.units.map((u) => el("option", { value: u }, UNIT(u))));
    $("tr-columns").textContent = view.csv_columns.join(",");
    for (const fn of listeners) fn(view);
  }

  async function load() {
    try {
      render(await api("GET", "/api/transducers"));
      showError("tr-error", null);
    } catch (err) { showError("tr-error", err); }
  }

  async function act(method, url, body) {
    try {
      await api(method, url, body);
      showError("tr-error", null);
    } catch (err) { showError("tr-error", err); }
    await load();
  }

  async function add(ev) {
    ev.preventDefault();
    const body = {
      type: $("tr-type").value.trim(), serial: $("tr-serial").value.trim(),
      sensitivity: Number($("tr-sensitivity").value) / 1000, unit: $("tr-unit").value,
      ccld: $("tr-ccld").checked, polarisation: $("tr-polarisation").checked,
      calibrated: $("tr-calibrated").value || null, due: $("tr-due").value || null,
      calibrated_by: $("tr-by").value.trim(),
    };
    try {
      await api("POST", "/api/transducers", body);
      showError("tr-form-error", null);
      $("tr-form").reset();
    } catch (err) { showError("tr-form-error", err); }
    await load();
  }

  async function importCsv() {
    const file = $("tr-csv").files[0];
    if (!file) return;
    try {
      const out = await api("POST", "/api/transducers/import", { csv: await file.text() });
      $("tr-csv-result").textContent = `${out.imported.length} transducer${out.imported.length === 1 ? "" : "s"} imported`;
      showError("tr-csv-error", null);
    } catch (err) {
      $("tr-csv-result").textContent = "";
      showError("tr-csv-error", err);
    }
    $("tr-csv").value = "";
    await load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("tr-reload").addEventListener("click", load);
    $("tr-form").addEventListener("submit", add);
    $("tr-csv").addEventListener("change", importCsv);
    load();
  });

  return { load, onView: (fn) => listeners.push(fn), mv, UNIT };
})();
