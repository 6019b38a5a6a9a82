/* The city map: a site's details on click (or Enter), live states over SSE (/api/v1/city/map/events), figures
   refreshed from the map API every ten seconds. Everything drawn is in the page; nothing is fetched from outside. */
"use strict";
(function () {
  performance.mark("city-js-start");
  const T = window.TAEHWA || { messages: {} };
  const msg = (k) => T.messages[k] || k;
  const data = JSON.parse(document.getElementById("city-data").textContent);
  const svg = document.getElementById("city-map");
  const panelTitle = document.getElementById("panel-title");
  const panelBody = document.getElementById("panel-body");
  const STATES = ["normal", "warning", "alarm", "stale", "unknown", "none"];
  const key = (s) => `${s.tenant}|${s.site}`;
  const sites = new Map(data.sites.map((s) => [key(s), s]));
  const SVG = "http://www.w3.org/2000/svg";
  let selected = null;

  function fig(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const n = Number(v);
    return Number.isInteger(n) ? n.toLocaleString("en-US") : Number(n.toPrecision(4)).toLocaleString("en-US");
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const complexName = (s) => (s.complex_name ? (T.lang === "ko" && s.complex_name[1] ? s.complex_name[1]
    : s.complex_name[0]) : (s.complex || "—"));
  const notShared = () => el("span", { class: "muted" }, msg("not_shared"));
  const cellText = {
    points_s: (s) => `${fig(s.points_s)} ${msg("points_per_s")}`,
    power_kw: (s) => (s.power_kw === null ? "—" : `${fig(s.power_kw)} kW`),
    models: (s) => fig(s.models),
    open_alerts: (s) => fig(s.open_alerts),
  };

  // The markers and the list of sites, drawn once from the page's data (one fragment each: fast for 500 sites).
  function draw() {
    const markers = document.createDocumentFragment();
    const rows = document.createDocumentFragment();
    data.sites.forEach((s) => {
      const k = key(s);
      if (s.x !== undefined) {
        const g = document.createElementNS(SVG, "g");
        const state = s.state || "none";
        g.setAttribute("class", `site-marker ${state}`);
        g.setAttribute("transform", `translate(${s.x},${s.y})`);
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        g.dataset.site = k;
        g.setAttribute("aria-label", `${s.company} · ${s.name}${s.state ? " · " + msg(s.state) : ""}`);
        const path = document.createElementNS(SVG, "path");
        path.setAttribute("d", data.shapes[state]);
        const title = document.createElementNS(SVG, "title");
        title.textContent = `${s.company} · ${s.name}`;
        g.append(path, title);
        markers.append(g);
      }
      const tr = el("tr");
      tr.dataset.row = k;
      const name = el("td");
      if (s.url) name.append(el("a", { href: s.url }, s.name)); else name.append(s.name);
      if (s.x === undefined) name.append(" ", el("span", { class: "muted" }, `(${msg("unplaced")})`));
      const state = el("td");
      if ("state" in s) {
        const chip = el("span", { class: `state ${s.state}`, "data-state-cell": "" });
        chip.append(el("span", { class: "state-text" }, msg(s.state)));
        state.append(chip);
      } else state.append(notShared());
      tr.append(el("td", {}, s.company), name, el("td", {}, complexName(s)), el("td", {}, s.industry || "—"), state);
      Object.keys(cellText).forEach((f) => {
        const td = el("td", { "data-f": f });
        if (f in s) td.textContent = cellText[f](s); else td.append(notShared());
        tr.append(td);
      });
      rows.append(tr);
    });
    document.getElementById("site-markers").append(markers);
    document.querySelector("#site-table tbody").append(rows);
  }
  draw();
  performance.mark("city-drawn");

  function show(s) {
    selected = key(s);
    panelTitle.textContent = `${s.company} · ${s.name}`;
    panelBody.replaceChildren();
    const dl = el("dl", { class: "facts" });
    const add = (label, value) => { dl.append(el("dt", {}, label), el("dd", {}, value)); };
    add(msg("complex"), complexName(s));
    add(msg("industry"), s.industry || "—");
    if ("state" in s) {
      const chip = el("span", { class: `state ${s.state}` });
      chip.append(el("span", { class: "state-text" }, msg(s.state)));
      const dd = el("dd");
      dd.append(chip);
      dl.append(el("dt", {}, msg("state")), dd);
    }
    if ("points_s" in s) add(msg("data_rate"), `${fig(s.points_s)} ${msg("points_per_s")}`);
    if ("power_kw" in s) add(msg("power"), s.power_kw === null ? "—" : `${fig(s.power_kw)} kW`);
    if ("models" in s) add(msg("models_in_production"), fig(s.models));
    if ("open_alerts" in s) add(msg("open_alerts"), fig(s.open_alerts));
    panelBody.append(dl);
    if (s.url) {
      const links = el("p", { class: "actions" });
      links.append(el("a", { href: s.url, class: "button", id: "open-site" }, msg("open_site")), " ",
        el("a", { href: `/t/${encodeURIComponent(s.tenant)}/plant`, class: "button", id: "open-plant" }, msg("open_plant")));
      panelBody.append(links);
    } else {
      panelBody.append(el("p", { class: "muted" }, msg("no_access")));
    }
    svg.querySelectorAll(".site-marker.selected").forEach((m) => m.classList.remove("selected"));
    const m = svg.querySelector(`[data-site="${CSS.escape(selected)}"]`);
    if (m) m.classList.add("selected");
  }

  function showInfra(path) {
    const i = data.infrastructure.find((x) => x.path === path);
    if (!i) return;
    selected = null;
    panelTitle.textContent = `${msg(i.kind)} · ${T.lang === "ko" && i.name_ko ? i.name_ko : i.name}`;
    const dl = el("dl", { class: "facts" });
    Object.entries(i.attributes).forEach(([k, v]) => { if (k !== "name_ko") dl.append(el("dt", {}, k), el("dd", {}, String(v))); });
    panelBody.replaceChildren(dl);
  }

  function activate(target) {
    const m = target.closest("[data-site]");
    if (m) { const s = sites.get(m.dataset.site); if (s) show(s); return; }
    const i = target.closest("[data-infra]");
    if (i) showInfra(i.dataset.infra);
  }
  svg.addEventListener("click", (e) => activate(e.target));
  svg.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(e.target); } });

  function setState(k, state) {
    const s = sites.get(k);
    if (!s || !("state" in s)) return;
    s.state = state;
    const m = svg.querySelector(`[data-site="${CSS.escape(k)}"]`);
    if (m) {
      STATES.forEach((x) => m.classList.remove(x));
      m.classList.add(state);
      m.querySelector("path").setAttribute("d", data.shapes[state] || data.shapes.unknown);
      m.setAttribute("aria-label", `${s.company} · ${s.name} · ${msg(state)}`);
      m.dataset.changedAt = String(Date.now());
    }
    const cell = document.querySelector(`tr[data-row="${CSS.escape(k)}"] [data-state-cell]`);
    if (cell) { cell.className = `state ${state}`; cell.querySelector(".state-text").textContent = msg(state); }
    if (selected === k) show(s);
    counts();
  }

  function counts() {
    const n = { warning: 0, alarm: 0 };
    sites.forEach((s) => { if (s.state in n) n[s.state] += 1; });
    Object.entries(n).forEach(([k, v]) => {
      const e = document.querySelector(`[data-count="${k}"]`);
      if (e) { e.textContent = fig(v); e.closest(".kpi").classList.toggle("zero", !v); }
    });
  }

  function putFigures(s) {
    const row = document.querySelector(`tr[data-row="${CSS.escape(key(s))}"]`);
    if (!row) return;
    Object.entries(cellText).forEach(([f, text]) => {
      const c = row.querySelector(`[data-f="${f}"]`);
      if (c && f in s) c.textContent = text(s);
    });
  }

  async function refresh() {
    try {
      const r = await fetch("/api/v1/city/map", { credentials: "same-origin" });
      if (!r.ok) return;
      const m = await r.json();
      m.sites.forEach((s) => {
        const k = key(s);
        if (!sites.has(k)) return;  // a newly shared site appears when the page is opened again
        const before = sites.get(k).state;
        sites.set(k, s);
        if ("state" in s && s.state !== before) setState(k, s.state);
        putFigures(s);
        if (selected === k) show(s);
      });
      document.getElementById("city-updated").textContent = `${msg("updated")}: ${new Date().toISOString().slice(11, 19)} UTC`;
    } catch (err) { console.warn(err); }
  }

  const es = new EventSource("/api/v1/city/map/events");
  es.addEventListener("site", (e) => {
    try {
      JSON.parse(e.data).forEach((ev) => { if (ev.reset) refresh(); else setState(`${ev.tenant}|${ev.site}`, ev.state); });
      svg.dataset.live = String(Number(svg.dataset.live || 0) + 1);
    } catch (err) { console.warn(err); }
  });
  es.addEventListener("hello", () => { svg.dataset.connected = "1"; performance.mark("city-connected"); });
  window.addEventListener("pagehide", () => es.close());
  setInterval(refresh, 10000);
})();
