// The Setup page's channel table and test card: per channel a name, measurement point and
// direction ("gearbox:1" and "+X"), a group and a note; the next captures' test object,
// operator, tags, notes and file-name template. They edit the Setup page's draft (static/setup.js),
// saved with "Apply setup". The table imports and exports as CSV, the whole setup as JSON; the
// server checks both (a bad CSV row is named by row and column). Viewers see the table as text.
"use strict";

(() => {
  const { el, api } = Dash;
  const page = window.SetupPage;
  const can = Dash.AUTH.can("operator");
  const DIRECTIONS = ["", "+X", "-X", "+Y", "-Y", "+Z", "-Z", "+RX", "-RX", "+RY", "-RY", "+RZ", "-RZ"];
  const TEMPLATE_FIELDS = "{object} {operator} {date} {time} {n} {name}";
  const box = document.getElementById("channel-labels");
  const errBox = el("p", { id: "labels-error", class: "err", hidden: true });
  const okBox = el("span", { id: "labels-note", class: "muted small" });

  const dofText = (row) => row.point ? (row.direction ? `${row.point}:${row.direction}` : row.point) : (row.direction || "");

  function edit(target, key, label, opts = {}) {
    if (!can) return el("span", { dataset: { field: key } }, target[key] || (opts.empty || ""));
    const input = el(opts.multiline ? "textarea" : "input", {
      type: opts.multiline ? null : "text", value: opts.multiline ? null : (target[key] || ""),
      maxlength: opts.max, placeholder: opts.placeholder || "", "aria-label": label,
      class: opts.cls || null, rows: opts.multiline ? 2 : null, dataset: { field: key } });
    if (opts.multiline) input.value = target[key] || "";
    input.addEventListener("input", () => { target[key] = input.value; page.setDirty(true); });
    return input;
  }

  function directionSelect(row, label) {
    if (!can) return el("span", { dataset: { field: "direction" } }, row.direction || "scalar");
    const s = el("select", { "aria-label": label, dataset: { field: "direction" } },
      DIRECTIONS.map((d) => el("option", { value: d }, d || "scalar")));
    s.value = DIRECTIONS.includes(row.direction) ? row.direction : "";
    s.addEventListener("change", () => { row.direction = s.value; page.setDirty(true); });
    return s;
  }

  function testCard(draft) {
    const t = draft.test = draft.test || { object: "", operator: "", notes: "", tags: [], name_template: "" };
    const tags = can ? el("input", { type: "text", id: "test-tags", value: (t.tags || []).join(", "),
      placeholder: "nvh, road", "aria-label": "tags" }) : el("span", { id: "test-tags" }, (t.tags || []).join(", ") || "–");
    if (can) tags.addEventListener("input", () => {
      t.tags = tags.value.split(",").map((x) => x.trim()).filter(Boolean); page.setDirty(true);
    });
    const field = (label, node) => el("label", {}, label, " ", node);
    return el("section", { class: "card", id: "test-card" },
      el("h2", {}, "Test"),
      el("p", { class: "muted small" }, "Copied into every capture started with this setup (capture.json and the exports); History can change them afterwards."),
      el("div", { class: "row" },
        field("Test object", edit(t, "object", "test object", { max: 80, placeholder: "Car 7", cls: "w-wide" })),
        field("Operator", edit(t, "operator", "operator", { max: 64 })),
        field("Tags", tags)),
      el("div", { class: "row" },
        field("File name", edit(t, "name_template", "file-name template",
          { max: 100, placeholder: "{object}_{date}_{n}", cls: "w-wide" })),
        el("span", { class: "muted small" }, `fields: ${TEMPLATE_FIELDS}; empty: the name given at the start`)),
      el("div", { class: "row" }, field("Notes", edit(t, "notes", "test notes", { max: 2000, multiline: true, cls: "w-notes" }))));
  }

  function channelCard(draft) {
    const body = el("tbody");
    page.rigModules().forEach((m, i) => {
      for (const row of draft.channels[m.address] || []) {
        const where = `${m.address} channel ${row.channel}`;
        body.append(el("tr", { dataset: { module: m.address, channel: row.channel } },
          el("td", { class: "nowrap" }, el("b", {}, `${i + 1}`), el("span", { class: "muted small" }, ` ${m.address}`)),
          el("td", { class: "num" }, row.channel),
          el("td", {}, edit(row, "name", `name ${where}`, { max: 64, placeholder: `Channel ${row.channel}` })),
          el("td", {}, edit(row, "point", `point ${where}`, { max: 22, cls: "w-point" })),
          el("td", {}, directionSelect(row, `direction ${where}`)),
          el("td", {}, edit(row, "group", `group ${where}`, { max: 32, cls: "w-group" })),
          el("td", {}, edit(row, "note", `note ${where}`, { max: 200 })),
          can ? null : el("td", { class: "muted small" }, dofText(row))));
      }
    });
    const csvInput = el("input", { type: "file", accept: ".csv,text/csv", id: "csv-file", hidden: true });
    const jsonInput = el("input", { type: "file", accept: ".json,application/json", id: "setup-file", hidden: true });
    csvInput.addEventListener("change", () => importFile(csvInput, importCsv));
    jsonInput.addEventListener("change", () => importFile(jsonInput, importSetup));
    const operatorTools = can ? [
      el("button", { id: "labels-apply", class: "primary", onclick: () => run(apply) }, "Apply"),
      el("button", { id: "csv-import", onclick: () => csvInput.click() }, "Import CSV…"), csvInput,
      el("button", { id: "setup-import", onclick: () => jsonInput.click() }, "Import setup JSON…"), jsonInput,
    ] : [];
    const heads = ["Module", "Ch", "Name", "Point", "Direction", "Group", "Note"].concat(can ? [] : ["DOF"]);
    return el("section", { class: "card", id: "channel-table" },
      el("div", { class: "row" }, el("h2", {}, "Channel table"), ...operatorTools,
        el("a", { href: "/api/setup/channels.csv", download: "channels.csv", id: "csv-export" }, "Export CSV"),
        el("a", { href: "/api/setup/file", download: "setup.json", id: "setup-export" }, "Export setup JSON"), okBox),
      errBox,
      el("p", { class: "muted small" }, "Point: component:node (gearbox:1) or a node number; direction empty for a scalar such as sound pressure. ",
        "CSV columns: module (address), channel, name, point, direction, group, note."),
      el("div", { class: "table-wrap" }, el("table", { class: "labels" },
        el("thead", {}, el("tr", {}, heads.map((h) => el("th", {}, h)))), body)));
  }

  function render() {
    const draft = page.draft();
    if (!draft) return;
    // Keep the focus where the user types when the page re-renders around it.
    const active = document.activeElement;
    const focus = active && box.contains(active) ? active.getAttribute("aria-label") : null;
    box.replaceChildren(testCard(draft), channelCard(draft));
    if (focus) {
      const again = box.querySelector(`[aria-label="${CSS.escape(focus)}"]`);
      if (again) again.focus();
    }
  }

  async function run(fn) {
    Dash.showError(errBox, null);
    okBox.textContent = "";
    try { await fn(); } catch (e) { Dash.showError(errBox, e); }
  }

  async function apply() {
    await api("PUT", "/api/setup", page.draft());
    page.setDirty(false);
    okBox.textContent = "saved";
  }

  function importFile(input, fn) {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => run(() => fn(String(reader.result), file.name));
    reader.onerror = () => Dash.showError(errBox, new Error(`${file.name} could not be read`));
    reader.readAsText(file);
  }

  function discardEdits() {
    if (document.getElementById("dirty-note").hidden) return true;
    return window.confirm("Importing replaces the unsaved changes on this page. Go on?");
  }

  async function importCsv(text, name) {
    if (!discardEdits()) return;
    page.setDirty(false);
    const r = await api("PUT", "/api/setup/channels.csv", { csv: text });
    okBox.textContent = `${name}: ${r.imported.rows} channel${r.imported.rows === 1 ? "" : "s"} imported`;
  }

  async function importSetup(text, name) {
    let setup;
    try { setup = JSON.parse(text); } catch (e) { throw new Error(`${name} is not JSON: ${e.message}`); }
    if (!discardEdits()) return;
    page.setDirty(false);
    await api("PUT", "/api/setup", setup);
    okBox.textContent = `${name}: setup loaded`;
  }

  page.onRender.push(render);
  render();
})();
