/* Taehwa's client code: local times, sign-in and out, live updates over SSE, trends with uPlot, actions through
   the HTTP API (the session cookie authenticates; every change carries the X-CSRF-Token header). No framework. */
"use strict";
(function () {
  const T = window.TAEHWA || { messages: {}, tenant: null, lang: "en" };
  const msg = (k) => T.messages[k] || k;
  // A sentence of the server in the page's language (taehwa/web/sentences.py, sent with Korean pages); else as said.
  const SENTENCES = (T.sentences || []).map(([re, ko]) => [new RegExp(re, "s"), ko]);
  function known(text) {
    const plain = String(text).replace(/^Value error, /, "");
    for (const [re, ko] of SENTENCES) {
      const hit = plain.match(re);
      if (hit) return ko.replace(/\$(\d)/g, (_, n) => { const part = hit[Number(n)] || ""; return known(part) ?? part; });
    }
    return null;
  }
  const said = (text) => (text === null || text === undefined ? "" : known(text) ?? String(text));
  const api = (p) => `/api/v1/${encodeURIComponent(T.tenant)}${p}`;

  // The CSRF cookie's value, sent back as a header on every change.
  function csrf() {
    const m = document.cookie.match(/(?:^|; )taehwa_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  // A JSON request to the API; a refusal becomes an Error carrying the server's message and where.
  async function send(method, url, body) {
    const r = await fetch(url, { method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!r.ok) {
      let text = `${r.status}`;
      try { const e = await r.json(); text = `${said(e.message)}${e.where ? " (" + e.where + ")" : ""}`; } catch (_) { /* */ }
      throw new Error(text);
    }
    return r.status === 204 ? null : r.json();
  }

  // An alert's message in the page's language: its message key (kept in its chain) with its parameters.
  function say(alert) {
    const m = (alert.chain || {}).message;
    const template = m && T.messages[`say_${m.key}`];
    if (!template) return alert.message || "";
    const p = { ...(m.params || {}) };
    if (m.key === "drift" && alert.value !== null && alert.value !== undefined) p.psi = alert.value;
    p.op_word = msg(`op_word_${p.op || ">"}`);
    return template.replace(/\{(\w+)\}/g, (_, k) => (p[k] === undefined || p[k] === null ? "" : typeof p[k] === "number" ? String(Number(p[k].toPrecision(6))) : String(p[k])));
  }
  // A time as the pages show it: UTC, to the second, in the page's one declared zone.
  function utc(d) {
    return new Date(d).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
  }
  // Every <time datetime> shown in UTC (the zone the page declares), the raw value kept as its title.
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = el.closest("td") ? utc(d).replace(" UTC", "") : utc(d);  // a column says UTC in its head
      el.title = el.getAttribute("datetime");
    });
  }
  // A time typed on a page: ISO 8601 with or without a zone; without one it is read as UTC, never local time.
  function parseUtc(text) {
    if (!text) return NaN;
    let s = String(text).trim().replace(" ", "T");
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += "T00:00:00";
    if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(s)) s += "Z";
    return Date.parse(s);
  }
  // A figure for reading: four significant digits, no trailing zeros.
  function fig(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const n = Number(v);
    if (Number.isInteger(n)) return n.toLocaleString("en-US");
    return Number(n.toPrecision(4)).toLocaleString("en-US", { maximumFractionDigits: 6 });
  }

  // Put a state (class and word) on a chip or a fleet cell.
  function setState(el, state) {
    el.className = el.className.replace(/\b(normal|warning|alarm|stale|unknown)\b/g, "").trim() + " " + state;
    const text = el.querySelector(".state-text");
    if (text) text.textContent = msg(state);
    if (el.classList.contains("cell") && el.title) el.title = el.title.replace(/·.*$/, "· " + msg(state));
  }

  // Subscribe to the tenant's event stream (server-sent events, one name per kind); bad frames are skipped.
  function follow(query, onEvent) {
    const es = new EventSource(api(`/events?${query}`));
    const handle = (e) => { try { onEvent(JSON.parse(e.data)); } catch (err) { console.warn(err); } };
    ["values", "state", "model", "structure", "alert"].forEach((k) => es.addEventListener(k, handle));
    es.addEventListener("reset", () => location.reload());
    window.addEventListener("pagehide", () => es.close());
    return es;
  }

  // Live states and values on the plant page: chips, fleet cells and the values beside each asset.
  function followStates() {
    const hasValues = document.querySelector("[data-val]") !== null;
    follow(hasValues ? "kinds=state,values,model" : "kinds=state", (ev) => {
      if (ev.kind === "state") {
        document.querySelectorAll(`[data-state-of="${CSS.escape(ev.path)}"]`).forEach((el) => setState(el, ev.state));
        return;
      }
      Object.entries(ev.signals || {}).forEach(([n, points]) => {
        const el = document.querySelector(`[data-val="${CSS.escape(ev.path + "|" + n)}"]`);
        if (el && points.length) el.textContent = fig(points[points.length - 1][1]);
      });
    });
  }

  // The plant tree: fold and unfold nodes, fold/unfold all, and search that keeps each match's ancestors open.
  function plantTree() {
    const tree = document.getElementById("asset-tree");
    if (!tree) return;
    const setOpen = (li, open) => {
      li.setAttribute("aria-expanded", String(open));
      const b = li.querySelector(":scope > .node > .twisty");
      if (b) b.setAttribute("aria-expanded", String(open));
    };
    tree.addEventListener("click", (e) => {
      const b = e.target.closest(".twisty");
      if (!b) return;
      const li = b.closest("li");
      setOpen(li, li.getAttribute("aria-expanded") !== "true");
    });
    const all = () => tree.querySelectorAll("li[data-path]");
    document.getElementById("tree-collapse").addEventListener("click", () => all().forEach((li) => {
      if (li.querySelector(":scope > ul")) setOpen(li, false);
    }));
    document.getElementById("tree-expand").addEventListener("click", () => all().forEach((li) => setOpen(li, true)));
    const box = document.getElementById("tree-search"), found = document.getElementById("tree-found");
    box.addEventListener("input", () => {
      const q = box.value.trim().toLowerCase();
      let hits = 0;
      all().forEach((li) => { li.classList.remove("hidden"); });
      tree.querySelectorAll(".cell").forEach((c) => { c.style.outline = ""; });
      if (!q) { found.textContent = ""; return; }
      // a node stays when it or something under it matches; its ancestors open
      const keep = new Set();
      all().forEach((li) => {
        const own = (li.querySelector(":scope > .node .name")?.textContent || "").toLowerCase() + " " +
          li.dataset.path.toLowerCase();
        const fleetHit = [...li.querySelectorAll(":scope > ul .cell")].filter((c) => c.dataset.name.includes(q));
        fleetHit.forEach((c) => { c.style.outline = "3px solid var(--focus)"; });
        if (own.includes(q) || fleetHit.length) {
          hits += own.includes(q) ? 1 : fleetHit.length;
          for (let x = li; x && x.matches("li[data-path]"); x = x.parentElement.closest("li[data-path]")) keep.add(x);
        }
      });
      all().forEach((li) => {
        li.classList.toggle("hidden", !keep.has(li));
        if (keep.has(li) && li.querySelector(":scope > ul")) setOpen(li, true);
      });
      found.textContent = `${hits} ${msg("found")}`;
      tree.dataset.hits = String(hits);
    });
  }

  // A small line chart on a canvas, with the signal's warning and alarm limits as dashed lines.
  function sparkline(canvas, values) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const vs = values.filter((v) => v !== null && isFinite(v));
    if (vs.length < 2) return;
    let limits = {};
    try { limits = JSON.parse(canvas.dataset.limits || "{}"); } catch (_) { limits = {}; }
    const lims = Object.entries(limits).filter(([, v]) => isFinite(v));
    let lo = Math.min(...vs), hi = Math.max(...vs);
    const span0 = hi - lo || Math.abs(hi) || 1;
    lims.forEach(([, v]) => { if (v > lo - span0 && v < hi + span0) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    const span = hi - lo || 1;
    const y = (v) => h - 2 - ((v - lo) / span) * (h - 4);
    const css = getComputedStyle(document.documentElement);
    lims.forEach(([k, v]) => {
      if (v < lo || v > hi) return;
      ctx.strokeStyle = css.getPropertyValue(k.includes("alarm") ? "--alarm" : "--warning").trim() || "#c00";
      ctx.setLineDash([3, 3]); ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(0, y(v)); ctx.lineTo(w, y(v)); ctx.stroke();
    });
    ctx.setLineDash([]);
    ctx.strokeStyle = css.getPropertyValue("--accent").trim() || "#1f6feb"; ctx.lineWidth = 1.5; ctx.beginPath();
    let started = false;
    values.forEach((v, i) => {
      if (v === null || !isFinite(v)) return;
      const x = (i / (values.length - 1)) * (w - 2) + 1;
      started ? ctx.lineTo(x, y(v)) : ctx.moveTo(x, y(v));
      started = true;
    });
    ctx.stroke();
    canvas.dataset.drawn = String(vs.length);
  }

  // The asset page: sparklines of the last hour (only of tags the historian holds), then live values and states.
  // The asset's own data quality over the 24 h up to its newest measured point, filled in once the page is up.
  async function assetQuality(path) {
    const card = document.getElementById("data-quality");
    if (!card) return;
    const times = [...document.querySelectorAll("[data-signal-time]")].map((t) => Date.parse(t.getAttribute("datetime")))
      .filter(isFinite);
    const figure = document.getElementById("quality-figure"), span = document.getElementById("quality-span");
    if (!times.length) { figure.textContent = "—"; span.textContent = msg("no_points_yet"); card.dataset.ready = "none"; return; }
    const end = Math.max(...times) + 1, start = end - 86400000;
    const r = await fetch(api(`/analytics/quality?asset=${encodeURIComponent(path)}&subtree=false` +
      `&start=${new Date(start).toISOString()}&end=${new Date(end).toISOString()}`));
    if (!r.ok) { figure.textContent = "—"; card.dataset.ready = "failed"; return; }
    const got = ((await r.json()).assets || {})[path];
    if (!got) { figure.textContent = "—"; span.textContent = msg("no_points_yet"); card.dataset.ready = "none"; return; }
    figure.textContent = `${fig(got.quality)} %`;
    card.dataset.worst = String(got.worst);
    span.textContent = `${utc(start)} – ${utc(end)} · ${msg("data_quality_hint")}`;
    const rows = Object.entries(got.tags).sort(([a], [b]) => a.localeCompare(b)).map(([name, q]) => {
      const tr = document.createElement("tr");
      tr.dataset.qualityOf = name;
      const said = q.findings.slice(0, 3).map((f) => `${msg("check_" + f.check)} ${utc(Date.parse(f.start))}`).join(" · ");
      [name, `${fig(q.quality)} %`, String(q.count), said || msg("no_findings")].forEach((text, i) => {
        const td = document.createElement(i ? "td" : "th");
        if (!i) td.scope = "row";
        if (i === 1 || i === 2) td.className = "num";
        td.textContent = text;
        tr.appendChild(td);
      });
      return tr;
    });
    const table = document.getElementById("quality-table");
    table.querySelector("tbody").replaceChildren(...rows);
    table.hidden = false;
    card.dataset.ready = "done";
  }

  async function followAsset(path, tags, names) {
    assetQuality(path).catch((err) => { console.warn(err); });
    const series = {};
    names.forEach((n) => { series[n] = []; });
    const byTag = {};
    tags.forEach((t, i) => { if (t) byTag[t] = names[i]; });
    const known = tags.filter(Boolean);
    if (known.length) {  // the last hour of each signal, downsampled on the server, for the sparklines
      try {
        const rl = await fetch(api(`/tags/latest?tags=${encodeURIComponent(known.join(","))}`));
        const latest = rl.ok ? await rl.json() : { points: [] };
        const times = (latest.points || []).map((p) => Date.parse(p.time)).filter(isFinite);
        if (times.length) {
          const newest = Math.max(...times);
          const start = new Date(newest - 3600e3).toISOString(), end = new Date(newest + 1000).toISOString();
          const r = await fetch(api(`/points?tags=${encodeURIComponent(known.join(","))}&start=${start}&end=${end}&every=1m&agg=avg`));
          if (r.ok) (await r.json()).points.forEach((p) => { const n = byTag[p.tag]; if (n) series[n].push(p.avg); });
        }
      } catch (err) { console.warn(err); }
    }
    const draw = (n) => { const c = document.querySelector(`[data-spark="${CSS.escape(n)}"]`); if (c) sparkline(c, series[n].slice(-120)); };
    names.forEach(draw);
    document.body.dataset.sparks = "ready";
    follow(`under=${encodeURIComponent(path)}&kinds=values,model,state`, (ev) => {
      if (ev.kind === "state" && ev.path === path) {
        document.querySelectorAll(`[data-state-of="${CSS.escape(path)}"]`).forEach((el) => setState(el, ev.state));
        Object.entries(ev.signals || {}).forEach(([n, s]) => {
          const el = document.querySelector(`[data-signal-state="${CSS.escape(n)}"]`);
          if (el && s.state) setState(el, s.state);
        });
        return;
      }
      if ((ev.kind !== "values" && ev.kind !== "model") || ev.path !== path) return;
      Object.entries(ev.signals || {}).forEach(([n, points]) => {
        if (!points.length) return;
        const last = points[points.length - 1];
        document.querySelectorAll(`[data-signal="${CSS.escape(n)}"]`).forEach((el) => {
          el.textContent = fig(last[1]);
          el.classList.remove("muted");
        });
        const tm = document.querySelector(`[data-signal-time="${CSS.escape(n)}"]`);
        if (tm) { tm.setAttribute("datetime", last[0]); localTimes(tm.parentElement); }
        const q = document.querySelector(`[data-signal-quality="${CSS.escape(n)}"]`);
        if (q) q.textContent = msg(["good", "uncertain", "bad"][last[2]] || "unknown");
        if (series[n]) { points.forEach((p) => series[n].push(p[1])); draw(n); }
      });
    });
  }

  // The trends page's tag browser: by asset and by name (folders built as they open, so thousands of tags stay
  // cheap), a search over every tag, and ticks kept in step with the tags box.
  function tagBrowser() {
    const box = document.getElementById("tags");
    const root = document.getElementById("tag-browser");
    const dataEl = document.getElementById("tag-data");
    if (!box || !root || !dataEl) return;
    const data = JSON.parse(dataEl.textContent);
    const picked = () => box.value.split(",").map((x) => x.trim()).filter(Boolean);
    const el = (tag, props, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
    // one tick box for a tag, ticked when the tag is in the box
    const tick = (tag, label, extra) => el("li", {}, el("label", {}, el("input", { type: "checkbox", name: "pick", value: tag,
      checked: picked().includes(tag) }), " " + label, ...(extra ? [" ", el("span", { className: "muted mono", textContent: extra })] : [])));
    // a folder whose contents are built the first time it opens
    const folder = (summary, build, open) => {
      const d = el("details", {}, el("summary", {}, ...summary));
      let built = false;
      const fill = () => { if (!built && d.open) { built = true; d.append(build()); } };
      d.addEventListener("toggle", fill);
      if (open) { d.open = true; fill(); }
      return el("li", {}, d);
    };
    const byAsset = document.getElementById("by-asset");
    const assets = el("ul");
    data.by_asset.forEach((a) => assets.append(folder([a.name + " ", el("span", { className: "muted", textContent: a.path })],
      () => el("ul", {}, ...a.signals.map(([s, tag]) => tick(tag, s, tag))), a.signals.some(([, tag]) => picked().includes(tag)))));
    byAsset.append(data.by_asset.length ? assets : el("p", { className: "muted", textContent: msg("none") }));
    // the by-name folders: "a/" keys are folders, the others tags
    const names = (node) => el("ul", {}, ...Object.keys(node).sort().map((k) => (k.endsWith("/")
      ? folder([k], () => names(node[k]), false)
      : tick(node[k].tag, k, node[k].unit || ""))));
    document.getElementById("by-name").append(names(data.by_name));
    const every = [];  // every tag with its unit and the asset signal it is bound to, for the search
    (function walk(node) { Object.values(node).forEach((v) => (v.tag ? every.push(v) : walk(v))); })(data.by_name);
    const tabs = root.querySelectorAll("[role=tab]");
    tabs.forEach((tab) => tab.addEventListener("click", () => {
      tabs.forEach((x) => {
        x.setAttribute("aria-selected", String(x === tab));
        document.getElementById(x.getAttribute("aria-controls")).hidden = x !== tab;
      });
    }));
    root.addEventListener("change", (e) => {
      const cb = e.target.closest("input[name=pick]");
      if (!cb) return;
      const now = picked().filter((t) => t !== cb.value);
      if (cb.checked) now.push(cb.value);
      box.value = now.join(",");
      root.querySelectorAll(`input[name=pick][value="${CSS.escape(cb.value)}"]`).forEach((x) => { x.checked = cb.checked; });
    });
    const filter = document.getElementById("tag-filter"), results = document.getElementById("tag-results");
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      results.hidden = !q;
      const selected = [...tabs].find((x) => x.getAttribute("aria-selected") === "true");
      tabs.forEach((x) => { document.getElementById(x.getAttribute("aria-controls")).hidden = Boolean(q) || x !== selected; });
      if (!q) return;
      const hits = every.filter((v) => v.tag.toLowerCase().includes(q));
      document.getElementById("tag-results-count").textContent = `${hits.length} ${msg("found")}`;
      results.querySelector("ul").replaceChildren(...hits.slice(0, 200).map((v) => tick(v.tag, v.tag, v.unit || "")));
    });
  }

  // The trend chart: any tag, one y axis per unit, UTC times, a window that fits the data, server downsampling.
  function trend(tags, start, end, owners, units, limits) {
    const status = document.getElementById("trend-status");
    const box = document.getElementById("chart");
    if (!tags.length) return;
    let full = null, plot = null, busy = 0;
    let marks = { alerts: [], labels: [], events: [] };  // of the assets these tags belong to, drawn over the chart
    units = units || {};

    // The alerts and labels of the tags' assets within the view, listed under the chart and drawn on it.
    async function loadMarks(s, e) {
      const from = new Date(s).toISOString(), to = new Date(e).toISOString();
      const alerts = [], labels = [], events = [];
      for (const a of owners || []) {
        const q = `asset=${encodeURIComponent(a)}`;
        const [ra, rl, re] = await Promise.all([fetch(api(`/alerts?${q}&limit=1000`)),
          fetch(api(`/labels?${q}&start=${from}&end=${to}&limit=1000`)),
          fetch(api(`/event-frames?${q}&start=${from}&end=${to}&limit=500`))]);
        if (re.ok) (await re.json()).events.forEach((x) => { if (x.asset === a) events.push(x); });
        // an alert stands at its data's own time (a replay's or backfill's history is not the wall clock)
        const at = (x) => Date.parse(((x.chain || {}).window || {}).start || x.raised_at);
        if (ra.ok) (await ra.json()).forEach((x) => { const t = at(x); if (t >= s && t <= e) { x.at = t; alerts.push(x); } });
        if (rl.ok) (await rl.json()).forEach((x) => labels.push(x));
      }
      marks = { alerts, labels, events };
      const list = document.getElementById("overlay-list");
      if (list) {
        list.innerHTML = "";
        alerts.forEach((x) => { const li = document.createElement("li"); li.textContent = `${msg("alerts")}: ${utc(x.at)} · ${x.asset} · ${say(x)}`; list.appendChild(li); });
        labels.forEach((x) => { const li = document.createElement("li"); li.textContent = `${msg("label")}: ${x.kind} · ${x.asset} · ${utc(x.start)} – ${x.end ? utc(x.end) : ""}`; list.appendChild(li); });
        events.forEach((x) => { const li = document.createElement("li"); li.dataset.event = x.id; li.textContent = `${msg("event_frame")}: ${x.template} · ${x.asset} · ${utc(x.start_us / 1000)} – ${x.end_us ? utc(x.end_us / 1000) : msg("open_now")}`; list.appendChild(li); });
      }
      if (list) Object.entries(limits || {}).forEach(([tag, ls]) => ls.forEach((l) => {
        const li = document.createElement("li");
        li.textContent = `${msg("limit")}: ${tag} ${l.op || (/low/.test(l.kind) ? "<" : ">")} ${fig(l.value)} · ${msg(l.kind.replace(/^(high|low)_/, ""))} · ${l.source}`;
        li.dataset.limit = tag;
        list.appendChild(li);
      }));
      box.dataset.limits = String(Object.values(limits || {}).reduce((n, ls) => n + ls.length, 0));
      box.dataset.alerts = String(alerts.length);
      box.dataset.labels = String(labels.length);
      box.dataset.events = String(events.length);
      if (plot) plot.redraw();
    }

    // uPlot draw hook: labels as shaded spans, alerts as dashed red lines.
    function drawMarks(u) {
      const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
      ctx.save();
      marks.labels.forEach((x) => {
        const a = u.valToPos(Date.parse(x.start) / 1000, "x", true);
        const b = u.valToPos((x.end ? Date.parse(x.end) : Date.parse(x.start)) / 1000, "x", true);
        ctx.fillStyle = "rgba(154, 103, 0, 0.15)";
        ctx.fillRect(Math.min(a, b), top, Math.max(2, Math.abs(b - a)), height);
      });
      // event frames as a blue band along the top (open ones run to the view's end), named at their start
      marks.events.forEach((x) => {
        const a = u.valToPos(x.start_us / 1e6, "x", true);
        const b = x.end_us ? u.valToPos(x.end_us / 1e6, "x", true) : u.bbox.left + u.bbox.width;
        const w = Math.max(2, b - a);
        ctx.fillStyle = "rgba(9, 105, 218, 0.08)"; ctx.fillRect(a, top, w, height);
        ctx.fillStyle = "rgba(9, 105, 218, 0.55)"; ctx.fillRect(a, top, w, 4 * devicePixelRatio);
        ctx.font = `${10 * devicePixelRatio}px sans-serif`; ctx.textAlign = "left";
        ctx.fillText(x.template, a + 2, top + 15 * devicePixelRatio);
      });
      // each tag's limits as dashed lines on its own unit's axis (warning amber, alarm red), named at the right
      Object.entries(limits || {}).forEach(([tag, ls]) => {
        if (!tags.includes(tag)) return;
        ls.forEach((l) => {
          const y = u.valToPos(l.value, scaleOf(tag), true);
          if (!isFinite(y) || y < top || y > top + height) return;
          ctx.strokeStyle = /alarm/.test(l.kind) ? "#cf222e" : "#9a6700"; ctx.lineWidth = 1; ctx.setLineDash([6, 4]);
          ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
          ctx.setLineDash([]); ctx.fillStyle = ctx.strokeStyle; ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          ctx.textAlign = "right"; ctx.fillText(`${msg("limit")} ${fig(l.value)}`, u.bbox.left + u.bbox.width - 4, y - 3);
        });
      });
      marks.alerts.forEach((x) => {
        const p = u.valToPos(x.at / 1000, "x", true);
        ctx.strokeStyle = "#cf222e"; ctx.lineWidth = 2; ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(p, top); ctx.lineTo(p, top + height); ctx.stroke();
      });
      ctx.restore();
    }
    const colours = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4"];
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#555", grid = css.getPropertyValue("--line").trim() || "#ddd";
    // one scale (and axis) per unit; tags without a unit share one
    const unitKeys = [...new Set(tags.map((t) => units[t] || ""))];
    const scaleOf = (t) => `y${unitKeys.indexOf(units[t] || "")}`;

    // About one bucket per two pixels: the server downsamples, the browser only draws. From a minute up the width
    // is a round one (1, 2, 5, 10, 15, 30 min; 1, 2, 3, 6, 12 h; whole days), which the historian answers from its
    // per-minute and per-hour summaries instead of the raw points (a year drawn without scanning 31.5M points).
    const NICE_S = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    function every(s, e) {
      const buckets = Math.max(50, Math.floor((box.clientWidth || 1000) / 2));
      const raw = Math.max(1, Math.ceil((e - s) / 1000 / buckets));
      if (raw < 60) return raw + "s";
      return (NICE_S.find((n) => n >= raw) || Math.ceil(raw / 86400) * 86400) + "s";
    }
    // The points URL of a view (JSON for the chart, CSV for the export link).
    // The range is widened to whole buckets (buckets align to the epoch): no bucket at an edge averages a part of
    // its interval, and whole minutes and hours are answered from the summaries alone, without reading points.
    function url(s, e, fmt) {
      const w = every(s, e), ms = parseInt(w, 10) * 1000;
      const lo = Math.floor(s / ms) * ms, hi = Math.ceil(e / ms) * ms;
      return api(`/points?tags=${encodeURIComponent(tags.join(","))}&start=${new Date(lo).toISOString()}` +
        `&end=${new Date(hi).toISOString()}&every=${w}&agg=avg&format=${fmt}`);
    }
    // Build the chart once: UTC axis labels, one y axis per unit (alternating sides), drag to zoom.
    function makePlot(data) {
      const axes = [{ stroke: fg, grid: { stroke: grid }, values: (u, vals) => vals.map((v) => {
        const d = new Date(v * 1000).toISOString();
        const span = (u.scales.x.max - u.scales.x.min);
        return span > 2 * 86400 ? d.slice(5, 10) + " " + d.slice(11, 16) : span > 1800 ? d.slice(11, 16) : d.slice(11, 19);
      }) }];
      unitKeys.forEach((unit, i) => axes.push({ scale: `y${i}`, side: i % 2 ? 1 : 3, stroke: fg,
        grid: { show: i === 0, stroke: grid }, label: unit || msg("value"), size: 60 }));
      const scales = { x: { time: true, range: () => [Number(box.dataset.start) / 1000, Number(box.dataset.end) / 1000] } };
      // a scale takes in the limits of its tags, so the distance to a limit can be seen
      unitKeys.forEach((_, i) => {
        const lims = tags.filter((t) => scaleOf(t) === `y${i}`).flatMap((t) => (limits || {})[t] || []).map((l) => l.value);
        scales[`y${i}`] = { auto: true, range: (u, lo, hi) => {
          const vals = [lo, hi, ...lims].filter((v) => v !== null && isFinite(v));
          if (!vals.length) return [0, 1];
          let a = Math.min(...vals), b = Math.max(...vals);
          const pad = (b - a) * 0.05 || Math.abs(b) * 0.05 || 1;
          return [a - pad, b + pad];
        } };
      });
      plot = new uPlot({ width: box.clientWidth || 1000, height: 420, scales, axes,
        series: [{ label: "UTC", value: (u, v) => (v === null ? "--" : utc(v * 1000)) },
          ...tags.map((t, i) => ({ label: units[t] ? `${t} (${units[t]})` : t, scale: scaleOf(t),
            stroke: colours[i % colours.length], width: 1.5, spanGaps: false, points: { show: false } }))],
        cursor: { drag: { x: true, y: false } },
        hooks: { draw: [drawMarks], setSelect: [(u) => {
          if (u.select.width < 5) return;
          const a = u.posToVal(u.select.left, "x") * 1000, b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
          u.setSelect({ left: 0, width: 0 }, false);
          show(a, b);
        }] } }, data, box);
      box.addEventListener("dblclick", () => show(full[0], full[1]));
      window.addEventListener("resize", () => plot.setSize({ width: box.clientWidth || 1000, height: 420 }));
    }
    // Fetch one view and draw it; a later request wins over an earlier one still in flight.
    async function load(s, e) {
      const mine = ++busy;
      const t0 = performance.now();
      const r = await fetch(url(s, e, "json"));
      if (!r.ok) {
        let why = `${r.status}`;
        try { why = said((await r.json()).message) || why; } catch (_) { /* */ }
        status.textContent = `${msg("failed")}: ${why}`;
        return null;
      }
      const doc = await r.json();
      if (mine !== busy) return null;
      const xs = [...new Set(doc.points.map((p) => Date.parse(p.time) / 1000))].sort((a, b) => a - b);
      const at = new Map(xs.map((x, i) => [x, i]));
      const ys = tags.map(() => new Array(xs.length).fill(null));
      let values = 0;  // downsampled rows name their value by the aggregate
      doc.points.forEach((p) => {
        const v = p.avg;
        if (v !== null && v !== undefined) values += 1;
        const i = tags.indexOf(p.tag);
        if (i >= 0) ys[i][at.get(Date.parse(p.time) / 1000)] = v;
      });
      const data = [xs, ...ys];
      box.dataset.start = String(s); box.dataset.end = String(e);
      if (!plot) makePlot(data);
      else { plot.setData(data); plot.setScale("x", { min: s / 1000, max: e / 1000 }); }
      box.dataset.points = String(doc.points.length);
      box.dataset.values = String(values);
      box.dataset.axes = String(unitKeys.length);
      box.dataset.every = every(s, e);
      box.dataset.drawMs = String(Math.round(performance.now() - t0));
      status.textContent = `${fig(doc.points.length)} · ${every(s, e)} · ${utc(s)} – ${utc(e)}`;
      document.getElementById("export-csv").href = url(s, e, "csv");
      box.dispatchEvent(new CustomEvent("drawn"));
      loadMarks(s, e).catch((err) => console.warn(err));
      return xs;
    }
    // Show a window (zoom, pan, reset all go through here).
    function show(s, e) { return load(Math.round(s), Math.round(e)); }  // whole milliseconds: pans add up exactly
    // Half the view's width earlier (-1) or later (+1).
    function pan(direction) {
      const s = Number(box.dataset.start), e = Number(box.dataset.end), step = (e - s) / 2;
      return show(s + direction * step, e + direction * step);
    }
    document.getElementById("pan-earlier").addEventListener("click", () => pan(-1));
    document.getElementById("pan-later").addEventListener("click", () => pan(1));
    document.getElementById("zoom-out").addEventListener("click", () => show(full[0], full[1]));
    document.addEventListener("keydown", (ev) => {
      if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
      if (ev.key === "ArrowLeft") pan(-1);
      if (ev.key === "ArrowRight") pan(1);
    });
    (async () => {
      let s = parseUtc(start), e = end && end !== "now" ? parseUtc(end) : NaN;
      if (start && isNaN(s)) { status.textContent = `${msg("failed")}: ${msg("from")} ${start}`; return; }
      if (end && end !== "now" && isNaN(e)) { status.textContent = `${msg("failed")}: ${msg("to")} ${end}`; return; }
      if (isNaN(e)) {
        const r = await fetch(api(`/tags/latest?tags=${encodeURIComponent(tags.join(","))}`));
        const latest = r.ok ? await r.json() : { points: [] };
        const times = (latest.points || []).map((p) => Date.parse(p.time)).filter(isFinite);
        e = times.length ? Math.max(...times) + 1000 : Date.now();
      }
      const fit = isNaN(s);  // no start given: the last day, or less when the data is shorter
      if (fit) s = e - 86400e3;
      full = [s, e];
      window.TaehwaTrend = { show, full: () => full };
      const xs = await load(s, e);
      if (fit && xs && xs.length && xs[0] * 1000 > s + (e - s) * 0.05) {
        const first = xs[0] * 1000, pad = Math.max(1000, (e - first) * 0.02);
        full = [first - pad, e];
        await load(full[0], full[1]);
      }
      box.dataset.ready = "1";
    })();
  }

  // The alerts page: acknowledge, shelve and resolve one alert with its note, or acknowledge several at once.
  function alertActions() {
    const status = document.getElementById("action-status");
    document.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", async () => {
      const id = b.dataset.id, action = b.dataset.action;
      const note = document.getElementById(`note-${id}`).value || null;
      const body = action === "shelve" ? { note, seconds: 3600 } : { note };
      try {
        await send("POST", api(`/alerts/${id}/${action}`), body);
        status.textContent = msg("done");
        location.reload();
      } catch (err) { status.textContent = `${msg("failed")}: ${err.message}`; }
    }));
    const all = document.getElementById("select-all"), bulk = document.getElementById("bulk-ack");
    if (!all || !bulk) return;
    const picks = () => [...document.querySelectorAll(".pick-alert")];
    const refresh = () => {
      const n = picks().filter((x) => x.checked).length;
      bulk.disabled = n === 0;
      document.getElementById("bulk-count").textContent = n ? String(n) : "";
    };
    all.addEventListener("change", () => { picks().forEach((x) => { x.checked = all.checked; }); refresh(); });
    document.getElementById("alerts").addEventListener("change", (e) => { if (e.target.matches(".pick-alert")) refresh(); });
    bulk.addEventListener("click", async () => {
      const note = document.getElementById("bulk-note").value || null;
      const ids = picks().filter((x) => x.checked).map((x) => x.value);
      const failed = [];
      for (const id of ids) {
        try { await send("POST", api(`/alerts/${id}/acknowledge`), { note }); } catch (err) { failed.push(`${id}: ${err.message}`); }
      }
      if (failed.length) { status.textContent = `${msg("failed")}: ${failed.join("; ")}`; return; }
      location.reload();
    });
  }

  // Promote and roll back through a dialog that asks for the reason (kept in the registry's history).
  function modelActions() {
    const status = document.getElementById("action-status");
    const dialog = document.getElementById("reason-dialog"), form = document.getElementById("reason-form");
    const text = document.getElementById("reason-text"), error = document.getElementById("reason-error");
    let pending = null;
    document.querySelectorAll("button[data-promote], button[data-rollback]").forEach((b) => b.addEventListener("click", () => {
      const promote = Boolean(b.dataset.promote);
      document.getElementById("reason-title").textContent = msg(promote ? "promote_title" : "rollback_title");
      document.getElementById("reason-what").textContent =
        `${b.dataset.promote || b.dataset.rollback} v${b.dataset.version} · ${msg("reason_required")}`;
      text.value = ""; error.hidden = true;
      const forceRow = document.getElementById("reason-force-row");
      if (forceRow) { forceRow.hidden = !promote; document.getElementById("reason-force").checked = false; }
      pending = b;
      dialog.showModal();
      text.focus();
    }));
    document.getElementById("reason-cancel").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const reason = text.value.trim();
      if (!reason || !pending) { error.hidden = false; error.textContent = msg("reason_required"); return; }
      const b = pending;
      try {
        const force = Boolean(document.getElementById("reason-force")?.checked);  // tenant admins: past the gate, recorded
        if (b.dataset.promote) await send("POST", api(`/models/${encodeURIComponent(b.dataset.promote)}/versions/${b.dataset.version}/promote`), { reason, force });
        else await send("POST", api(`/models/${encodeURIComponent(b.dataset.rollback)}/rollback`), { reason });
        dialog.close();
        status.textContent = msg("done");
        location.reload();
      } catch (err) { error.hidden = false; error.textContent = `${msg("failed")}: ${err.message}`; }
    });
  }

  // The control tower's tiles refresh every five seconds from the overview API; zero reads neutral, not red.
  function towerLive() {
    const stamp = document.getElementById("tower-updated");
    const put = (card, key, value) => {
      const el = card.querySelector(`[data-figure="${key}"]`);
      if (!el) return;
      el.textContent = fig(value);
      el.closest(".kpi").classList.toggle("zero", !value);
    };
    async function tick() {
      try {
        const r = await fetch("/api/v1/overview", { credentials: "same-origin" });
        if (!r.ok) return;
        (await r.json()).forEach((row) => {
          const card = document.querySelector(`[data-tenant="${CSS.escape(row.tenant)}"]`);
          if (!card) return;
          put(card, "data_rate_short", row.points_s);
          put(card, "assets", row.assets);
          put(card, "in_warning", row.assets_by_state.warning || 0);
          put(card, "in_alarm", row.assets_by_state.alarm || 0);
          put(card, "active_alerts", row.active_alerts);
          put(card, "sites", row.sites);
          const q = row.signals || {};
          const line = card.querySelector("[data-quality-counts]");
          if (line) {
            line.querySelector('[data-figure="good_pct"]').textContent = q.good_pct === null || q.good_pct === undefined ? "—" : `${fig(q.good_pct)} %`;
            line.querySelector('[data-figure="stale_signals"]').textContent = fig(q.stale || 0);
            line.querySelector('[data-figure="bad_signals"]').textContent = fig(q.bad || 0);
            line.querySelector('[data-figure="no_data_signals"]').textContent = fig(q.no_data || 0);
          }
        });
        stamp.textContent = `${msg("updated")}: ${utc(Date.now())}`;
        document.getElementById("tower").dataset.refreshed = String(Number(document.getElementById("tower").dataset.refreshed || 0) + 1);
      } catch (err) { console.warn(err); }
    }
    setInterval(tick, 5000);
    tick();
  }

  function submitForm() {  // the file goes as the request body; then the verdict is awaited and the page reloaded
    const form = document.getElementById("submit-form");
    const status = document.getElementById("action-status");
    if (!form) return;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const file = form.file.files[0];
      if (!file) return;
      const q = new URLSearchParams({ kind: form.kind.value });
      if (form.label.value) q.set("label", form.label.value);
      const cid = encodeURIComponent(form.dataset.challenge);
      try {
        const r = await fetch(`/api/v1/academy/challenges/${cid}/submissions?${q}`, { method: "POST",
          credentials: "same-origin", headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf() },
          body: await file.arrayBuffer() });
        const doc = await r.json();
        if (!r.ok) throw new Error(`${said(doc.message)}${doc.where ? " (" + doc.where + ")" : ""}`);
        status.textContent = msg("submitting");
        for (let s = doc; s.state !== "done"; ) {
          await new Promise((ok) => setTimeout(ok, 1000));
          s = await (await fetch(`/api/v1/academy/submissions/${encodeURIComponent(doc.id)}`)).json();
        }
        location.reload();
      } catch (err) { status.textContent = `${msg("failed")}: ${err.message}`; }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes();
    // a table that scrolls sideways can be reached and scrolled from the keyboard
    document.querySelectorAll(".table-wrap").forEach((el) => { if (el.scrollWidth > el.clientWidth) el.tabIndex = 0; });
    const form = document.getElementById("login-form");
    if (form) form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const err = document.getElementById("login-error");
      try {
        await send("POST", "/api/v1/session", { user: form.user.value, password: form.password.value });
        location.href = form.dataset.next || "/";
      } catch (x) { err.hidden = false; err.textContent = `${msg("sign_in_failed")}: ${x.message}`; }
    });
    const out = document.getElementById("sign-out");
    if (out) out.addEventListener("click", async () => { try { await send("DELETE", "/api/v1/session"); } finally { location.href = "/login"; } });
  });

  window.Taehwa = { followStates, plantTree, followAsset, tagBrowser, trend, alertActions, modelActions, towerLive,
    submitForm, localTimes, parseUtc, send, api, msg, fig, utc, say, said };
})();
