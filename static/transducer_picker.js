// Picking a channel's transducer from the transducer database on the Setup page: one select
// per channel row that fills the manual transducer's sensitivity, unit, serial and type.
// Transducers with an overdue calibration say so in the list.
"use strict";

const TransducerPicker = (() => {
  const { el, api } = Dash;
  let entries = [];
  const selects = new Set();

  function options(select) {
    const keep = select.value;
    select.replaceChildren(el("option", { value: "" }, "database…"),
      ...entries.map((t) => el("option", { value: t.id },
        `${t.type} s/n ${t.serial}, ${(t.sensitivity * 1000).toFixed(3)} mV/${t.unit === "m/s^2" ? "(m/s²)" : t.unit}` +
        (t.overdue ? " (calibration overdue)" : ""))));
    select.value = keep;
  }

  async function load() {
    try {
      // Only numeric serials: a setup's manual transducer carries the serial as a number.
      entries = (await api("GET", "/api/transducers")).transducers.filter((t) => /^\d+$/.test(t.serial));
    } catch (e) { entries = []; }
    for (const s of selects) { if (s.isConnected) options(s); else selects.delete(s); }
  }

  // A select for one channel row; onPick(entry) fills that row's manual transducer.
  function select(label, onPick) {
    const s = el("select", { "aria-label": label, class: "transducer-pick", style: "width:7em" });
    options(s);
    selects.add(s);
    s.addEventListener("change", () => {
      const t = entries.find((e) => e.id === s.value);
      if (t) onPick(t);
    });
    return s;
  }

  document.addEventListener("DOMContentLoaded", load);
  Dash.on("transducers", () => load());  // a detection may have added some
  return { select, load };
})();
