// Overdue calibrations on the Setup and Capture pages: a banner naming every transducer of the
// database whose calibration due date has passed, and on which module and channel the latest
// detection found it, with a link to the Transducers page.
"use strict";

(() => {
  const { el, api } = Dash;
  const REFRESH_MS = 60000;

  function detectedAt(state) {
    // id (TYPE_SERIAL) -> ["ADDRESS channel N", ...] from each module's latest detection.
    const out = {};
    for (const [address, found] of Object.entries(state.transducers || {})) {
      (found.transducers || []).forEach((t, i) => {
        if (!t || !t.serialNumber) return;
        const ty = t.type || {};
        const id = `${[ty.prefix, ty.number, ty.model, ty.variant].filter(Boolean).join("-")}_${t.serialNumber}`;
        (out[id] = out[id] || []).push(`${address} channel ${i + 1}`);
      });
    }
    return out;
  }

  async function refresh() {
    let view;
    try { view = await api("GET", "/api/transducers"); } catch (e) { return; }
    let banner = document.getElementById("calibration-overdue");
    const overdue = view.transducers.filter((t) => t.overdue);
    if (!overdue.length) { if (banner) banner.remove(); return; }
    if (!banner) {
      banner = el("section", { id: "calibration-overdue", class: "card calibration-overdue", role: "status" });
      document.querySelector("main").prepend(banner);
    }
    const where = detectedAt(Dash.state);
    banner.replaceChildren(
      el("strong", {}, `Calibration overdue (${overdue.length}): `),
      ...overdue.map((t, i) => el("span", { dataset: { overdue: t.id } },
        `${i ? "; " : ""}${t.type} s/n ${t.serial}, due ${t.due}` +
        (where[t.id] ? ` (on ${where[t.id].join(", ")})` : ""))),
      " — ", el("a", { href: "/transducers" }, "Transducers"));
  }

  Dash.on("transducers", () => refresh());  // a detection: new transducers, new places
  document.addEventListener("DOMContentLoaded", () => {
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();
