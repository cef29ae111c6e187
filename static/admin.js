// The admin page: users (add, change role, remove), share links (create for the live view or
// one capture, revoke) and the tail of the audit log, all through /api/auth/*.
"use strict";

(() => {
  const { el, api, on } = Dash;
  const $ = (id) => document.getElementById(id);
  const ROLES = ["viewer", "operator", "admin"];

  // --- users ---------------------------------------------------------------------------------
  async function loadUsers() {
    const box = $("users-error");
    let data;
    try { data = await api("GET", "/api/auth/users"); } catch (e) { Dash.showError(box, e); return; }
    const body = $("users-table").querySelector("tbody");
    body.replaceChildren();
    if (!data.users.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No users.")));
    for (const u of data.users) {
      const role = el("select", { "aria-label": `role of ${u.name}`, dataset: { user: u.name } },
        ROLES.map((r) => el("option", { value: r, selected: r === u.role }, r)));
      role.addEventListener("change", async () => {
        Dash.showError(box, null);
        try { await api("PATCH", `/api/auth/users/${encodeURIComponent(u.name)}`, { role: role.value }); }
        catch (e) { Dash.showError(box, e); }
        loadUsers(); loadAudit();
      });
      const self = u.name === Dash.AUTH.user;
      body.append(el("tr", { dataset: { user: u.name } },
        el("td", {}, el("b", {}, u.name), self ? el("span", { class: "muted small" }, " (you)") : null),
        el("td", {}, role),
        el("td", { class: "small" }, Dash.fmtTime(u.created)),
        el("td", {}, el("button", { type: "button", "aria-label": `remove ${u.name}`, onclick: async () => {
          if (!confirm(`Remove user ${u.name}? Their sessions end at once.`)) return;
          Dash.showError(box, null);
          try { await api("DELETE", `/api/auth/users/${encodeURIComponent(u.name)}`); } catch (e) { Dash.showError(box, e); }
          loadUsers(); loadAudit();
        } }, "Remove"))));
    }
  }
  $("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("users-error");
    Dash.showError(box, null);
    try {
      await api("POST", "/api/auth/users", { name: $("user-name").value.trim(), role: $("user-role").value,
        password: $("user-password").value });
      $("user-name").value = ""; $("user-password").value = "";
    } catch (e) { Dash.showError(box, e); }
    loadUsers(); loadAudit();
  });

  // --- share links -----------------------------------------------------------------------------
  async function loadCaptureChoices() {
    let data;
    try { data = await api("GET", "/api/captures"); } catch (e) { return; }
    const select = $("share-scope");
    const keep = select.value;
    select.replaceChildren(el("option", { value: "live" }, "the live view"),
      ...data.captures.map((c) => el("option", { value: c.id }, `capture ${c.name} (${c.id})`)));
    if (Array.from(select.options).some((o) => o.value === keep)) select.value = keep;
  }
  async function loadShares() {
    const box = $("shares-error");
    let data;
    try { data = await api("GET", "/api/auth/shares"); } catch (e) { Dash.showError(box, e); return; }
    const body = $("shares-table").querySelector("tbody");
    body.replaceChildren();
    const shares = data.shares.slice().reverse();
    if (!shares.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No share links.")));
    for (const s of shares) {
      const stateText = s.revoked ? "revoked" : (s.active ? "active" : "expired");
      body.append(el("tr", { dataset: { share: s.id, state: stateText } },
        el("td", { class: "small" }, s.id),
        el("td", {}, s.scope === "live" ? "live view" : el("a", { href: `/captures/${encodeURIComponent(s.capture_id)}` }, s.capture_id)),
        el("td", { class: "small" }, Dash.fmtTime(s.created), s.created_by ? el("div", { class: "muted" }, s.created_by) : null),
        el("td", { class: "small" }, s.expires ? Dash.fmtTime(s.expires) : "never"),
        el("td", {}, el("span", { class: `badge ${s.active ? "completed" : "failed"}` }, stateText)),
        el("td", {}, s.active ? el("button", { type: "button", "aria-label": `revoke ${s.id}`, onclick: async () => {
          Dash.showError(box, null);
          try { await api("DELETE", `/api/auth/shares/${encodeURIComponent(s.id)}`); } catch (e) { Dash.showError(box, e); }
          loadShares(); loadAudit();
        } }, "Revoke") : null)));
    }
  }
  $("share-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("shares-error");
    Dash.showError(box, null);
    const scope = $("share-scope").value;
    const req = scope === "live" ? { live: true } : { capture_id: scope };
    const hours = $("share-hours").value;
    if (hours) req.expires_hours = Number(hours);
    try {
      const made = await api("POST", "/api/auth/shares", req);
      // The token is shown once: only its hash is stored.
      const out = $("share-new");
      out.replaceChildren("New link (shown only now): ",
        el("input", { type: "text", readonly: true, value: made.url, id: "share-url", size: 48,
          onclick: (e) => e.target.select() }));
      out.hidden = false;
    } catch (e) { Dash.showError(box, e); }
    loadShares(); loadAudit();
  });

  // --- audit log -------------------------------------------------------------------------------
  function details(entry) {
    const skip = new Set(["ts", "actor", "action", "ok", "status"]);
    return Object.entries(entry).filter(([k]) => !skip.has(k))
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
  }
  async function loadAudit() {
    const box = $("audit-error");
    Dash.showError(box, null);
    let data;
    try { data = await api("GET", `/api/auth/audit?limit=${$("audit-limit").value}`); } catch (e) { Dash.showError(box, e); return; }
    const body = $("audit-table").querySelector("tbody");
    body.replaceChildren();
    const entries = data.entries.slice().reverse();  // newest first
    if (!entries.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Nothing logged yet.")));
    for (const e of entries) {
      const outcome = e.ok === undefined ? "" : (e.ok ? "ok" : "refused");
      body.append(el("tr", { dataset: { action: e.action } },
        el("td", { class: "small nowrap" }, Dash.fmtTime(e.ts)),
        el("td", {}, e.actor),
        el("td", { class: "nowrap" }, e.action),
        el("td", { class: e.ok === false ? "err small" : "small" }, outcome, e.status ? ` (${e.status})` : ""),
        el("td", { class: "small muted details" }, details(e))));
    }
  }
  $("audit-reload").onclick = loadAudit;
  $("audit-limit").onchange = loadAudit;

  loadUsers();
  loadShares();
  loadCaptureChoices();
  loadAudit();
  on("history", loadCaptureChoices);
})();
