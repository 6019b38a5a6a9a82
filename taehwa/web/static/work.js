/* The working pages' client code: forms that change things through the HTTP API with the session's credentials
   (the CSRF header on every change), and the API's refusals shown where they belong: each validation problem beside
   the field it names (by its `where`), the rest in the form's list, a refusal of rights in the form's status line.
   Connectors (OPC UA browse and binding to asset signals), the plant file and its assets, training from a spec with
   a progress bar, deployments, alert rules, labels, users, roles, tokens, sharing grants, the audit log. */
"use strict";
(function () {
  const T = window.Taehwa;
  const msg = T.msg, api = T.api;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )taehwa_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  // A request whose answer is kept whole: {ok, status, doc} (doc: the JSON body, or text for a non-JSON answer).
  async function call(method, url, body, type) {
    const headers = { "X-CSRF-Token": csrf() };
    if (body !== undefined) headers["Content-Type"] = type || "application/json";
    const r = await fetch(url, { method, credentials: "same-origin", headers,
      body: body === undefined ? undefined : (type && type !== "application/json" ? body : JSON.stringify(body)) });
    let doc = null;
    const text = await r.text();
    try { doc = text ? JSON.parse(text) : null; } catch (_) { doc = text; }
    return { ok: r.ok, status: r.status, doc };
  }
  const el = (tag, props, ...kids) => {
    const { dataset, ...rest } = props || {};
    const e = Object.assign(document.createElement(tag), rest);
    Object.assign(e.dataset, dataset || {});
    e.append(...kids);
    return e;
  };
  const problemsOf = (res) => (res.doc && res.doc.problems) ? res.doc.problems
    : [{ where: (res.doc && res.doc.where) || "", message: (res.doc && res.doc.message) || `HTTP ${res.status}` }];
  // Why a call was refused, in a line: the status word for rights, then the server's message and where.
  function refusal(res) {
    const p = problemsOf(res)[0];
    const word = res.status === 403 ? msg("refused_rights") : res.status === 401 ? msg("sign_in") : msg("failed");
    return `${word}: ${inLanguage(p.message)}${p.where ? " (" + p.where + ")" : ""}`;
  }
  // The server's sentences in the page's language: the catalogue of taehwa/web/sentences.py (sent with the page
  // for Korean), the server's English kept as the title; a sentence it does not know is shown as said.
  const inLanguage = T.said;
  // Clear the problems shown on a form.
  function clearProblems(form, list) {
    form.querySelectorAll(".field-error").forEach((x) => { x.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((x) => { x.removeAttribute("aria-invalid"); x.removeAttribute("aria-describedby"); });
    if (list) list.replaceChildren();
  }
  // Each problem beside the visible field whose data-where its `where` ends with; the others in the list.
  function showProblems(form, list, res, strip) {
    clearProblems(form, list);
    const visible = (x) => !x.closest("[hidden]");
    problemsOf(res).forEach((p) => {
      const rel = String(p.where || "").replace(strip || /^$/, "");
      const field = [...form.querySelectorAll("[data-where]")].filter(visible)
        .find((x) => rel === x.dataset.where || rel.endsWith("." + x.dataset.where));
      if (field) {
        field.setAttribute("aria-invalid", "true");
        const key = field.dataset.where;
        const slot = [...form.querySelectorAll(`[data-error-for="${CSS.escape(key)}"]`)].find(visible) ||
          field.parentElement.querySelector(".field-error");
        if (slot) {
          slot.textContent = inLanguage(p.message); slot.title = p.message;
          slot.id = slot.id || `problem-${form.id}-${key.replace(/[^\w-]/g, "-")}`;
          field.setAttribute("aria-describedby", slot.id);  // read out with the field
        }
      }
      if (list) list.append(el("li", { className: field ? "placed" : "", title: p.message },
        el("code", { textContent: p.where || "—" }), " ", inLanguage(p.message)));
    });
  }
  const num = (v) => (v === "" || v === null || v === undefined ? undefined : Number(v));
  const clean = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== "" && !(typeof v === "number" && isNaN(v))));

  // ---------------------------------------------------------------------------------------------- connectors
  const COLUMNS = {
    opcua: [["node", "text"], ["tag", "text"], ["sampling_ms", "number"], ["bind", "bind"]],
    mqtt: [["topic", "text"], ["format", ["json", "plain", "sparkplug"]], ["tag", "text"]],
    modbus: [["address", "number"], ["kind", ["holding", "input"]], ["type", ["uint16", "int16", "uint32", "int32", "float32", "float64"]],
      ["scale", "number"], ["tag", "text"], ["bind", "bind"]],
    files: [],
  };
  function connectorForm() {
    const form = document.getElementById("connector-form");
    if (!form) return;
    const protocol = document.getElementById("c-protocol");
    const table = document.getElementById("items"), list = document.getElementById("connector-problems");
    const status = document.getElementById("connector-status");
    const bindable = JSON.parse(document.getElementById("bind-data").textContent || "[]");
    let rows = [];  // the items as typed: one object per row
    const cols = () => COLUMNS[protocol.value];
    function cell(i, [key, kind]) {
      const id = `item-${i}-${key}`, where = `items[${i}].${key}`;
      const label = el("label", { htmlFor: id, className: "sr-only", textContent: `${msg("col_" + key)} ${i + 1}` });
      let input;
      if (kind === "bind") {
        input = el("select", { id, name: id }, el("option", { value: "", textContent: "—" }),
          ...bindable.flatMap((a) => a.signals.map((s) => el("option", { value: `${a.path}|${s}`, textContent: `${a.path} · ${s}` }))));
      } else if (Array.isArray(kind)) {
        input = el("select", { id, name: id }, ...kind.map((v) => el("option", { value: v, textContent: v })));
      } else {
        input = el("input", { id, name: id, type: "text", size: key === "node" || key === "topic" ? 22 : key === "tag" ? 18 : 6 });
        if (kind === "number") input.inputMode = "decimal";
      }
      input.dataset.where = where;
      input.value = rows[i][key] === undefined ? (input.tagName === "SELECT" ? input.options[0].value : "") : rows[i][key];
      input.addEventListener("input", () => { rows[i][key] = input.value; });
      input.addEventListener("change", () => { rows[i][key] = input.value; });
      return el("td", {}, label, input, el("span", { className: "field-error", role: "alert" }));
    }
    function render() {
      const c = cols();
      document.getElementById("items-box").hidden = c.length === 0;
      form.querySelectorAll("fieldset[data-protocol]").forEach((f) => { f.hidden = f.dataset.protocol !== protocol.value; });
      table.tHead.rows[0].replaceChildren(...c.map(([k]) => el("th", { scope: "col", textContent: msg("col_" + k) })),
        el("th", { scope: "col" }, el("span", { className: "sr-only", textContent: msg("actions") })));
      table.tBodies[0].replaceChildren(...rows.map((_, i) => el("tr", {}, ...c.map((col) => cell(i, col)),
        el("td", {}, el("button", { type: "button", className: "link", textContent: msg("remove"),
          onclick: () => { rows.splice(i, 1); render(); } })))));
    }
    protocol.addEventListener("change", () => { rows = [{}]; clearProblems(form, list); status.textContent = ""; render(); });
    document.getElementById("add-item").addEventListener("click", () => { rows.push({}); render(); });
    rows = [{}];
    render();
    // The definition as the API takes it, from the form.
    function definition() {
      const f = form.elements, p = protocol.value;
      const base = { name: f.name.value.trim(), protocol: p, tag_prefix: f.tag_prefix.value || undefined };
      const items = rows.filter((r) => Object.entries(r).some(([k, v]) => k !== "bind" && String(v || "").trim() !== ""))
        .map((r) => {
          if (p === "opcua") return clean({ node: r.node, tag: r.tag, sampling_ms: num(r.sampling_ms) });
          if (p === "mqtt") return clean({ topic: r.topic, format: r.format || "json", tag: r.tag });
          return clean({ address: num(r.address), kind: r.kind || "holding", type: r.type || "uint16", scale: num(r.scale), tag: r.tag });
        });
      if (p === "opcua") return clean({ ...base, endpoint: f.endpoint.value.trim(), username: f.username.value || undefined,
        password: f.password.value || undefined, items });
      if (p === "mqtt") return clean({ ...base, host: f.host.value.trim(), port: num(f.port.value), items });
      if (p === "modbus") return clean({ ...base, host: f.mb_host.value.trim(), port: num(f.mb_port.value), unit: num(f.unit.value),
        poll_ms: num(f.poll_ms.value), items });
      return clean({ ...base, folder: f.folder.value.trim(), pattern: f.pattern.value.trim(), layout: f.layout.value });
    }
    const strip = /^connector(\.|:[^.]*\.)?|^body(\.|:[^.]*\.)?/;
    async function check() {
      status.textContent = "";
      delete form.dataset.checked;
      const res = await call("POST", api("/connectors/check"), definition());
      if (!res.ok) { showProblems(form, list, res, strip); status.textContent = refusal(res); form.dataset.checked = "refused"; return null; }
      clearProblems(form, list);
      const v = res.doc.valid[0];
      status.textContent = `${msg("valid")}: ${v.name} · ${v.protocol} · ${v.items} ${msg("items")}` + (v.tags.length ? ` · ${v.tags.slice(0, 5).join(", ")}${v.tags.length > 5 ? " …" : ""}` : "");
      form.dataset.checked = "valid";
      return v;
    }
    document.getElementById("connector-check").addEventListener("click", check);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      delete form.dataset.saved;
      const doc = definition();
      const res = await call("POST", api("/connectors"), doc);
      if (!res.ok) { showProblems(form, list, res, strip); status.textContent = refusal(res); form.dataset.saved = "refused"; return; }
      // bind the items to asset signals: each asset's own bindings with the new ones, through the twin's API
      const binds = {};
      rows.forEach((r) => {
        if (!r.bind || !r.tag) return;
        const [path, signal] = r.bind.split("|");
        (binds[path] = binds[path] || {})[signal] = (doc.tag_prefix || "") + r.tag;
      });
      for (const [path, tags] of Object.entries(binds)) {
        const own = (bindable.find((a) => a.path === path) || {}).tags || {};
        const b = await call("PATCH", api(`/assets/${path.split("/").map(encodeURIComponent).join("/")}`), { tags: { ...own, ...tags } });
        if (!b.ok) { status.textContent = `${msg("saved")} · ${msg("bind_failed")} ${path}: ${refusal(b)}`; form.dataset.saved = "partly"; return; }
      }
      form.dataset.saved = "yes";
      status.textContent = `${msg("saved")}: ${res.doc.added.join(", ")}` + (Object.keys(binds).length ? ` · ${msg("bound")}: ${Object.keys(binds).join(", ")}` : "");
      location.reload();
    });
    // OPC UA: browse the server and put the numeric variables picked into the items
    document.getElementById("opc-browse").addEventListener("click", async () => {
      const f = form.elements, out = document.getElementById("browse-status");
      out.textContent = msg("browsing");
      clearProblems(form, list);
      const res = await call("POST", api("/connectors/browse"), clean({ endpoint: f.endpoint.value.trim(),
        username: f.username.value || undefined, password: f.password.value || undefined }));
      if (!res.ok) { showProblems(form, list, res, /^browse(\.|:[^.]*\.)?/); out.textContent = refusal(res); return; }
      const nodes = res.doc.nodes;
      out.textContent = `${nodes.length} ${msg("found")}`;
      const pick = el("fieldset", { id: "browse-pick" }, el("legend", { textContent: msg("pick_nodes") }),
        el("ul", { className: "picks" }, ...nodes.map((n, i) => el("li", {}, el("label", {},
          el("input", { type: "checkbox", name: "node", value: n.node, id: `node-${i}` }), " ", el("code", { textContent: n.node }),
          " → ", el("span", { className: "mono", textContent: n.tag }))))),
        el("button", { type: "button", id: "use-nodes", textContent: msg("use_picked"), onclick: () => {
          const picked = [...pick.querySelectorAll("input[name=node]:checked")].map((x) => nodes.find((n) => n.node === x.value));
          rows = rows.filter((r) => r.node || r.tag).concat(picked.map((n) => ({ node: n.node, tag: n.tag, sampling_ms: "1000" })));
          if (!rows.length) rows = [{}];
          render();
        } }));
      document.getElementById("browse-pick")?.remove();
      out.after(pick);
    });
    // removing a connector (tenant admins)
    document.querySelectorAll("button[data-remove-connector]").forEach((b) => b.addEventListener("click", async () => {
      const res = await call("DELETE", api(`/connectors/${encodeURIComponent(b.dataset.removeConnector)}`));
      if (!res.ok) { status.textContent = refusal(res); return; }
      location.reload();
    }));
  }

  // ---------------------------------------------------------------------------------------------- plant file
  function plantEditor() {
    const form = document.getElementById("plant-form");
    if (!form) return;
    const text = document.getElementById("plant-text"), list = document.getElementById("plant-problems");
    const status = document.getElementById("plant-status");
    // a problem's line: "body, line 12" or "line 12, column 3"
    const lineOf = (where) => { const m = /line (\d+)/.exec(where || ""); return m ? Number(m[1]) : null; };
    function goTo(line) {
      const lines = text.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      text.focus();
      text.setSelectionRange(start, start + (lines[line - 1] || "").length);
      const lh = parseFloat(getComputedStyle(text).lineHeight) || 18;
      text.scrollTop = Math.max(0, (line - 4) * lh);
    }
    document.getElementById("plant-file").addEventListener("change", async (e) => {
      const f = e.target.files[0];
      if (f) { text.value = await f.text(); status.textContent = `${msg("loaded")}: ${f.name}`; }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      list.replaceChildren();
      delete form.dataset.saved;
      const res = await call("PUT", api("/twin"), text.value, "application/yaml");
      if (!res.ok) {
        status.textContent = refusal(res);
        problemsOf(res).sort((a, b) => (lineOf(a.where) || 0) - (lineOf(b.where) || 0)).forEach((p) => {
          const line = lineOf(p.where);
          list.append(el("li", { dataset: { line: line || "" } }, line
            ? el("button", { type: "button", className: "link", textContent: `${msg("line")} ${line}`, onclick: () => goTo(line) })
            : el("code", { textContent: p.where || "—" }), " ", inLanguage(p.message)));
        });
        form.dataset.saved = "refused";
        return;
      }
      const d = res.doc || {};
      status.textContent = `${msg("saved")}: ${msg("version")} ${d.version ?? ""} · ${T.fig(d.assets)} ${msg("assets")} · +${T.fig(d.added)} ~${T.fig(d.changed)} −${T.fig(d.removed)}`;
      form.dataset.saved = "yes";
    });
    // create, move, delete one asset
    const assetStatus = document.getElementById("asset-status");
    const asset = (p) => api(`/assets/${p.split("/").map(encodeURIComponent).join("/")}`);
    async function act(f, method, url, body) {
      delete f.dataset.done;
      const res = await call(method, url, body);
      const lst = f.querySelector(".problems");
      if (!res.ok) { showProblems(f, lst, res, /^(body|asset)[.:]?/); assetStatus.textContent = refusal(res); f.dataset.done = "refused"; return; }
      assetStatus.textContent = msg("done");
      f.dataset.done = "yes";
      location.reload();
    }
    const create = document.getElementById("asset-create");
    create.addEventListener("submit", (e) => { e.preventDefault(); const f = create.elements;
      act(create, "POST", api("/assets"), clean({ id: f.id.value.trim(), parent: f.parent.value || undefined, type: f.type.value, name: f.aname.value || undefined })); });
    const move = document.getElementById("asset-move");
    move.addEventListener("submit", (e) => { e.preventDefault(); const f = move.elements;
      act(move, "POST", `${asset(f.path.value)}/move`, { parent: f.parent.value || null, id: f.newid.value.trim() || undefined }); });
    const del = document.getElementById("asset-delete");
    del.addEventListener("submit", (e) => { e.preventDefault(); const f = del.elements;
      act(del, "DELETE", `${asset(f.path.value)}${f.recursive.checked ? "?recursive=true" : ""}`); });
  }

  // ---------------------------------------------------------------------------------------------- training
  function trainForm() {
    const form = document.getElementById("train-form");
    if (!form) return;
    const text = document.getElementById("spec-text"), pick = document.getElementById("spec-from");
    const status = document.getElementById("train-status"), bar = document.getElementById("train-progress");
    const list = document.getElementById("train-problems");
    const gridText = document.getElementById("sweep-grid"), swept = document.getElementById("sweep-result");
    const specs = JSON.parse(document.getElementById("spec-data").textContent || "{}");
    const fill = () => { const s = specs[pick.value]; if (s) text.value = JSON.stringify(s, null, 2); };
    pick.addEventListener("change", fill);
    fill();
    let mode = "evaluate";
    form.querySelectorAll("button[data-mode]").forEach((b) => b.addEventListener("click", () => { mode = b.dataset.mode; }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      list.replaceChildren();
      delete form.dataset.state;
      swept.hidden = true;
      let spec, grid;
      try { spec = JSON.parse(text.value); } catch (err) {
        status.textContent = `${msg("failed")}: ${msg("spec_not_json")} (${err.message})`; return;
      }
      if (mode === "sweep") {
        try { grid = JSON.parse(gridText.value); } catch (err) {
          status.textContent = `${msg("failed")}: ${msg("grid_not_json")} (${err.message})`; return;
        }
      }
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      bar.hidden = false;
      bar.removeAttribute("value");  // the API answers when the run is done: the bar runs until then, time counted
      const t0 = performance.now();
      const doing = { train: "training", evaluate: "evaluating", sweep: "sweeping" }[mode];
      const tick = setInterval(() => { status.textContent = `${msg(doing)} · ${((performance.now() - t0) / 1000).toFixed(0)} s`; }, 250);
      form.dataset.state = "running";
      const res = await call("POST", api(`/lab/${mode}`), mode === "sweep" ? { spec, grid } : spec);
      clearInterval(tick);
      buttons.forEach((b) => { b.disabled = false; });
      bar.value = 1; bar.max = 1;
      if (!res.ok) {
        bar.hidden = true;
        status.textContent = refusal(res);
        problemsOf(res).forEach((p) => list.append(el("li", { title: p.message }, el("code", { textContent: p.where || "—" }), " ", inLanguage(p.message))));
        form.dataset.state = "refused";
        return;
      }
      const done = document.getElementById("train-done");
      if (mode === "sweep") {
        sweepTable(res.doc, Object.keys(grid));
        done.replaceChildren(`${msg("done")} (${((performance.now() - t0) / 1000).toFixed(1)} s): ${T.fig(res.doc.combinations)} ${msg("combinations")}`);
        status.textContent = msg("done");
        form.dataset.state = "done";
        form.dataset.sweep = res.doc.sweep_id;
        return;
      }
      const run = res.doc, pm = run.primary_metric;
      done.replaceChildren(`${msg("done")} (${((performance.now() - t0) / 1000).toFixed(1)} s): ${msg("m_" + pm) !== "m_" + pm ? msg("m_" + pm) : pm} ${T.fig((run.metrics || {})[pm])} · ${msg("baseline")} ${T.fig(((run.baseline || {}).metrics || {})[pm])} · `,
        el("a", { href: `/t/${encodeURIComponent(window.TAEHWA.tenant)}/models/runs/${run.run_id}`, id: "train-report", textContent: msg("report") }));
      status.textContent = msg("done");
      form.dataset.state = "done";
      form.dataset.run = run.run_id;
    });
  }
  // A sweep's combinations, best first: the grid's parameters and the primary figure of each.
  function sweepTable(doc, names) {
    const out = document.getElementById("sweep-result"), pm = doc.primary_metric;
    const label = msg("m_" + pm) !== "m_" + pm ? msg("m_" + pm) : pm;
    const head = el("tr", {}, el("th", { scope: "col", textContent: msg("rank") }),
      ...names.map((n) => el("th", { scope: "col", textContent: n, translate: false })), el("th", { scope: "col", textContent: label }));
    const rows = (doc.results || []).map((r, i) => el("tr", { dataset: { rank: String(i + 1) } },
      el("td", { textContent: i === 0 ? `${i + 1} · ${msg("best_combination")}` : String(i + 1) }),
      ...names.map((n) => el("td", { textContent: JSON.stringify(r.params[n]), translate: false })),
      el("td", { textContent: T.fig((r.metrics || {})[pm]) })));
    out.replaceChildren(el("table", { className: "grid", id: "sweep-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    out.hidden = false;
  }
  // the compare picker: two versions of one model
  function comparePicker() {
    const f = document.getElementById("compare-form");
    if (!f) return;
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      const [name, a] = f.a.value.split("|"), [nameB, b] = f.b.value.split("|");
      const out = document.getElementById("compare-error");
      if (name !== nameB) { out.textContent = msg("compare_same_model"); return; }
      location.href = `/t/${encodeURIComponent(window.TAEHWA.tenant)}/models/compare?name=${encodeURIComponent(name)}&a=${a}&b=${b}`;
    });
  }

  // ---------------------------------------------------------------------------------------------- operations
  // A form posting one JSON document; problems beside fields, the refusal in the status line, reload when done.
  function jsonForm(id, method, url, build, strip) {
    const f = document.getElementById(id);
    if (!f) return;
    const status = f.querySelector("[role=status]"), list = f.querySelector(".problems");
    f.addEventListener("submit", async (e) => {
      e.preventDefault();
      delete f.dataset.done;
      const res = await call(method, typeof url === "function" ? url(f) : url, build(f.elements, f));
      if (!res.ok) { showProblems(f, list, res, strip); status.textContent = refusal(res); f.dataset.done = "refused"; return; }
      f.dataset.done = "yes";
      status.textContent = msg("done");
      if (f.dataset.keep === undefined) location.reload();
      else f.dispatchEvent(new CustomEvent("done", { detail: res.doc }));
    });
  }
  // Buttons that do one call (pause, resume, remove); the refusal in the page's status line.
  function actionButtons() {
    const status = document.getElementById("action-status");
    document.querySelectorAll("button[data-call]").forEach((b) => b.addEventListener("click", async () => {
      const [method, path] = b.dataset.call.split(" ");
      const res = await call(method, path.startsWith("/api/") ? path : api(path), method === "DELETE" ? undefined : (b.dataset.body ? JSON.parse(b.dataset.body) : {}));
      if (!res.ok) { status.textContent = refusal(res); status.dataset.refused = String(res.status); return; }
      status.textContent = msg("done");
      location.reload();
    }));
  }
  function operations() {
    jsonForm("deployment-form", "POST", api("/deployments"), (f) => {
      const target = f.target_kind.value;
      f.target.dataset.where = target;  // a problem with the target is shown beside it
      return clean({ name: f.name.value.trim(), model: f.model.value, version: num(f.version.value),
        [target]: f.target.value.trim() || undefined, step: f.step.value.trim() || undefined });
    }, /^deployment[.:]?/);
    jsonForm("rule-form", "POST", api("/alert-rules"), (f) => {
      const scope = f.scope_kind.value;
      f.scope.dataset.where = scope;
      return clean({ name: f.name.value.trim(), kind: f.kind.value, [scope]: f.scope.value.trim() || undefined,
        signal: f.signal.value.trim() || undefined, op: f.op.value, value: num(f.value.value), severity: f.severity.value,
        min_duration_s: num(f.min_duration_s.value), rate_per_s: num(f.rate_per_s.value), stale_s: num(f.stale_s.value) });
    }, /^rule[.:]?/);
    jsonForm("label-form", "POST", api("/labels"), (f) => [clean({ asset: f.asset.value, kind: f.kind.value.trim(),
      start: f.start.value.trim(), end: f.end.value.trim() || undefined, note: f.note.value.trim() || undefined })],
    /^body(\[\d+\])?[.:]?/);
    actionButtons();
  }

  // ---------------------------------------------------------------------------------------------- admin
  function admin() {
    const tenant = window.TAEHWA.tenant;
    jsonForm("role-form", "PUT", (f) => api(`/users/${encodeURIComponent(f.elements.user.value.trim())}`),
      (f) => ({ role: f.role.value || null }), /^body[.:]?/);
    jsonForm("token-form", "POST", "/api/v1/tokens", (f, form) => clean({ name: f.name.value.trim(),
      scopes: [...form.querySelectorAll("input[name=scope]:checked")].map((x) => x.value),
      expires_in_days: num(f.days.value) }), /^body[.:]?/);
    const tf = document.getElementById("token-form");
    if (tf) tf.addEventListener("done", (e) => {
      const out = document.getElementById("token-secret");
      out.hidden = false;
      out.querySelector("code").textContent = e.detail.token;
    });
    jsonForm("grant-form", "POST", api("/grants"), (f) => clean({ grantee: f.grantee.value.trim(),
      tags: f.tags.value.split(",").map((x) => x.trim()).filter(Boolean), start: f.start.value.trim(), end: f.end.value.trim(),
      days: num(f.days.value), pseudonymise: f.pseudonymise.checked, purpose: f.purpose.value.trim() || undefined }), /^body[.:]?/);
    const verify = document.getElementById("audit-verify");
    if (verify) verify.addEventListener("click", async () => {
      const out = document.getElementById("audit-verdict");
      const res = await call("GET", `/api/v1/audit/verify?tenant=${encodeURIComponent(tenant)}`);
      if (!res.ok) { out.textContent = refusal(res); out.className = "state alarm"; return; }
      out.className = `state ${res.doc.ok ? "normal" : "alarm"}`;
      out.dataset.ok = String(res.doc.ok);
      out.textContent = `${msg(res.doc.ok ? "audit_intact" : "audit_broken")} · ${T.fig(res.doc.entries)} ${msg("audit_entries")}`;
    });
    actionButtons();
  }

  window.TaehwaWork = { connectorForm, plantEditor, trainForm, comparePicker, operations, admin, call };
})();
