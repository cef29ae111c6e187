// The Rig page: add and remove modules, see what each one says about itself, choose the PTP
// master and domain.
"use strict";

(() => {
  const { el, api, on } = Dash;
  const $ = (id) => document.getElementById(id);

  $("add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    Dash.showError($("rig-error"), null);
    try {
      await api("POST", "/api/rig/modules", { address: $("add-address").value.trim() });
      $("add-address").value = "";
    } catch (e) { Dash.showError($("rig-error"), e); }
  });
  $("refresh-btn").onclick = async () => {
    Dash.showError($("rig-error"), null);
    try { await api("POST", "/api/rig/refresh", {}); } catch (e) { Dash.showError($("rig-error"), e); }
  };
  $("ptp-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    Dash.showError($("ptp-error"), null);
    try { await api("PUT", "/api/rig", { ptp_domain: Number($("ptp-domain").value) }); }
    catch (e) { Dash.showError($("ptp-error"), e); }
  });

  let domainShown = null;
  on("rig", (rig) => {
    const body = $("rig-table").querySelector("tbody");
    body.replaceChildren();
    if (!rig.modules.length) {
      body.append(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No modules yet: add one by its address.")));
    }
    // A module another program left open (not Idle) cannot take part in a capture; offer to
    // walk it back (stop, finish, cancel, close as its state asks).
    function stateAction(m, info) {
      if (!m.reachable || !info.module_state || info.module_state === "Idle") return null;
      const button = el("button", { type: "button", dataset: { returnToIdle: m.address },
        "aria-label": `return ${m.address} to Idle` }, "Return to Idle");
      button.onclick = async () => {
        Dash.showError($("rig-error"), null);
        button.disabled = true;
        try { await api("POST", `/api/rig/modules/${encodeURIComponent(m.address)}/return-to-idle`); }
        catch (e) { Dash.showError($("rig-error"), e); button.disabled = false; }
      };
      // Why it is not Idle, when a capture whose process died left it so.
      if (m.left_by) return el("div", {}, button, el("div", { class: "small muted", dataset: { leftBy: m.address } }, m.left_by));
      return el("div", {}, button);
    }
    for (const m of rig.modules) {
      const info = m.info || {};
      let reach;
      if (m.probing && m.reachable === null) reach = [el("span", { class: "lamp yellow" }), " checking…"];
      else if (m.reachable) reach = [el("span", { class: "lamp green" }), " yes", m.error ? el("div", { class: "err small" }, m.error) : ""];
      else reach = [el("span", { class: "lamp red" }), " no", el("div", { class: "err small" }, m.error || "")];
      const radio = el("input", { type: "radio", name: "master", value: m.address, checked: m.role === "master",
        "aria-label": `make ${m.address} the PTP master` });
      radio.addEventListener("change", async () => {
        Dash.showError($("rig-error"), null);
        try { await api("PUT", "/api/rig", { master: m.address }); } catch (e) { Dash.showError($("rig-error"), e); }
      });
      const remove = el("button", { type: "button", "aria-label": `remove ${m.address}` }, "Remove");
      remove.onclick = async () => {
        Dash.showError($("rig-error"), null);
        try { await api("DELETE", `/api/rig/modules/${encodeURIComponent(m.address)}`); }
        catch (e) { Dash.showError($("rig-error"), e); }
      };
      body.append(el("tr", { dataset: { module: m.address, reachable: String(m.reachable) } },
        el("td", {}, radio),
        el("td", {}, el("b", {}, m.address), m.emulated ? el("span", { class: "muted small" }, " emulated") : null),
        el("td", {}, reach),
        el("td", {}, info.type ? `Type ${info.type}` : "–"),
        el("td", {}, info.name || "–", info.serial ? el("div", { class: "muted small" }, `s/n ${info.serial}`) : null),
        el("td", {}, info.firmware || "–"),
        el("td", { class: "num" }, info.input_channels ?? "–"),
        el("td", {}, info.type ? (info.ptp ? "yes" : el("span", { class: "err" }, "no")) : "–"),
        el("td", {}, info.module_state || "–", stateAction(m, info)),
        el("td", {}, remove)));
    }
    if (domainShown !== rig.ptp_domain && document.activeElement !== $("ptp-domain")) {
      $("ptp-domain").value = rig.ptp_domain;
      domainShown = rig.ptp_domain;
    }
  });
})();
