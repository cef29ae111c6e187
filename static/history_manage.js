// History's search and tag filter (for everybody), and for operators the management of a
// capture: rename (its title; the folder and files keep their names), test object, operator,
// tags and notes, and deleting it after a confirmation that names it. The server checks all of
// it again (role, confirmation, a capture still recording is refused).
"use strict";

window.HistoryManage = (() => {
  const { el, api } = Dash;
  const can = Dash.AUTH.can("operator");
  let reload = () => {};

  const search = document.getElementById("history-search");
  const tagFilter = document.getElementById("history-tag");
  let timer = null;
  const later = () => { clearTimeout(timer); timer = setTimeout(() => reload(), 250); };
  search.addEventListener("input", later);
  tagFilter.addEventListener("change", () => reload());

  function query() {
    const p = new URLSearchParams();
    if (search.value.trim()) p.set("q", search.value.trim());
    if (tagFilter.value) p.append("tag", tagFilter.value);
    const s = p.toString();
    return s ? `?${s}` : "";
  }

  // The tag filter offers the tags of the captures listed without it.
  function knownTags(captures) {
    if (tagFilter.value) return;
    const tags = [...new Set(captures.flatMap((c) => (c.test || {}).tags || []))].sort((a, b) => a.localeCompare(b));
    tagFilter.replaceChildren(el("option", { value: "" }, "all tags"), ...tags.map((t) => el("option", { value: t }, t)));
  }

  // What the row shows of the test: object, operator, tags (as chips) and notes.
  function description(c) {
    const t = c.test || {};
    const facts = [t.object, t.operator ? `by ${t.operator}` : ""].filter(Boolean).join(" · ");
    return el("div", { class: "test-info small", dataset: { test: c.id } },
      facts ? el("div", {}, facts) : null,
      (t.tags || []).length ? el("div", {}, t.tags.map((x) => el("span", { class: "badge tag", dataset: { tag: x } }, x))) : null,
      t.notes ? el("div", { class: "muted notes" }, t.notes) : null,
      (c.channels || []).length ? el("div", { class: "muted" }, `${c.channels.length} named channel${c.channels.length === 1 ? "" : "s"}`) : null);
  }

  function editForm(c, cell) {
    const t = c.test || {};
    const input = (id, value, label, max) => el("input", { type: "text", value: value || "", maxlength: max, "aria-label": label, dataset: { edit: id } });
    const title = input("title", c.title !== c.name ? c.title : "", "title", 120);
    title.placeholder = c.name;
    const object = input("object", t.object, "test object", 80);
    const operator = input("operator", t.operator, "operator", 64);
    const tags = input("tags", (t.tags || []).join(", "), "tags", 700);
    const notes = el("textarea", { rows: 2, maxlength: 2000, "aria-label": "notes", dataset: { edit: "notes" } });
    notes.value = t.notes || "";
    const err = el("div", { class: "err small", hidden: true });
    const form = el("div", { class: "manage-form", dataset: { editing: c.id } },
      el("label", {}, "Title ", title), el("label", {}, "Test object ", object),
      el("label", {}, "Operator ", operator), el("label", {}, "Tags ", tags),
      el("label", {}, "Notes ", notes), err,
      el("div", { class: "row" },
        el("button", { class: "primary", dataset: { save: c.id }, onclick: async () => {
          Dash.showError(err, null);
          try {
            await api("PATCH", `/api/captures/${encodeURIComponent(c.id)}`, { title: title.value,
              test: { object: object.value, operator: operator.value, notes: notes.value,
                tags: tags.value.split(",").map((x) => x.trim()).filter(Boolean) } });
            reload();
          } catch (e) { Dash.showError(err, e); }
        } }, "Save"),
        el("button", { onclick: () => form.remove() }, "Cancel")));
    cell.append(form);
    title.focus();
  }

  function deleteConfirm(c, cell) {
    const err = el("div", { class: "err small", hidden: true });
    const n = c.files.length;
    const box = el("div", { class: "manage-form confirm", role: "alertdialog", dataset: { confirming: c.id } },
      el("p", {}, el("b", {}, `Delete “${c.title || c.name}” for good?`), ` Its ${n} file${n === 1 ? "" : "s"} (${Dash.fmtBytes(c.files.reduce((s, f) => s + f.bytes, 0))}) are removed from the hub; this cannot be undone.`),
      err,
      el("div", { class: "row" },
        el("button", { class: "danger", dataset: { confirmDelete: c.id }, onclick: async () => {
          Dash.showError(err, null);
          try {
            await api("DELETE", `/api/captures/${encodeURIComponent(c.id)}`, { id: c.id, confirm: true });
            reload();
          } catch (e) { Dash.showError(err, e); }
        } }, "Delete capture and files"),
        el("button", { dataset: { keep: c.id }, onclick: () => box.remove() }, "Keep it")));
    cell.append(box);
  }

  // Operators' buttons for one capture (none for viewers: the server refuses them anyway).
  function controls(c, cell) {
    if (!can) return null;
    const busy = c.outcome === "running";
    const clear = () => { for (const f of cell.querySelectorAll(".manage-form")) f.remove(); };
    return el("div", { class: "manage row" },
      el("button", { class: "small-btn", dataset: { editCapture: c.id }, onclick: () => { clear(); editForm(c, cell); } }, "Edit"),
      el("button", { class: "small-btn", disabled: busy, title: busy ? "still recording" : null,
        dataset: { deleteCapture: c.id }, onclick: () => { clear(); deleteConfirm(c, cell); } }, "Delete…"));
  }

  return {
    query, knownTags, description, controls,
    onReload: (fn) => { reload = fn; },
  };
})();
