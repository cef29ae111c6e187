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
  // Only an admin may change the rig: nobody else sees the controls for it.
  if (Dash.AUTH.enabled && Dash.AUTH.role !== "admin") $("add-form").hidden = true;

  // Find modules: the ones answering mDNS on the network, to add with one click.
  $("find-btn").onclick = async () => {
    Dash.showError($("rig-error"), null);
    const button = $("find-btn");
    button.disabled = true;
    $("found").hidden = false;
    $("found-info").textContent = "Looking for modules on the network (mDNS)…";
    $("found-table").querySelector("tbody").replaceChildren();
    try {
      const answer = await api("POST", "/api/rig/discover", {});
      showFound(answer.modules);
    } catch (e) {
      $("found-info").textContent = "";
      Dash.showError($("rig-error"), e);
    } finally { button.disabled = false; }
  };
  function showFound(modules) {
    const body = $("found-table").querySelector("tbody");
    body.replaceChildren();
    const fresh = modules.filter((m) => !m.in_rig).length;
    $("found-info").textContent = modules.length
      ? `${modules.length} module(s) answered, ${fresh} not in the rig yet.`
      : "No module answered. Modules announce themselves by mDNS on their own network segment; add one by its address otherwise.";
    for (const m of modules) {
      const pick = el("input", { type: "checkbox", value: m.address, disabled: m.in_rig || !!m.error,
        checked: !m.in_rig && !m.error, "aria-label": `add ${m.address}` });
      pick.addEventListener("change", updateAdd);
      body.append(el("tr", { dataset: { found: m.address } },
        el("td", {}, pick),
        el("td", {}, m.name),
        el("td", {}, m.type ? `Type ${m.type}` : "–"),
        el("td", {}, m.serial ?? "–"),
        el("td", {}, m.address),
        el("td", {}, m.in_rig ? el("span", { class: "muted" }, "in the rig") :
          m.error ? el("span", { class: "err small" }, m.error) : (m.state || "–"))));
    }
    updateAdd();
  }
  function updateAdd() {
    $("found-add").disabled = !$("found-table").querySelector("input:checked");
  }
  $("found-add").onclick = async () => {
    Dash.showError($("rig-error"), null);
    const picked = [...$("found-table").querySelectorAll("input:checked")].map((i) => i.value);
    for (const address of picked) {
      try { await api("POST", "/api/rig/modules", { address }); }
      catch (e) { Dash.showError($("rig-error"), e); return; }
    }
    $("found").hidden = true;
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
