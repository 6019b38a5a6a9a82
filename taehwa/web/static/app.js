/* Taehwa's client code: local times, sign-in and out, live updates over SSE, trends with uPlot, actions through
   the HTTP API (the session cookie authenticates; every change carries the X-CSRF-Token header). No framework. */
"use strict";
(function () {
  const T = window.TAEHWA || { messages: {}, tenant: null, lang: "en" };
  const msg = (k) => T.messages[k] || k;
  const api = (p) => `/api/v1/${encodeURIComponent(T.tenant)}${p}`;

  function csrf() {
    const m = document.cookie.match(/(?:^|; )taehwa_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  async function send(method, url, body) {
    const r = await fetch(url, { method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!r.ok) {
      let text = `${r.status}`;
      try { const e = await r.json(); text = `${e.message}${e.where ? " (" + e.where + ")" : ""}`; } catch (_) { /* */ }
      throw new Error(text);
    }
    return r.status === 204 ? null : r.json();
  }

  const timeFormat = new Intl.DateTimeFormat(T.lang === "ko" ? "ko-KR" : "en-GB", {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      const d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = timeFormat.format(d); el.title = el.getAttribute("datetime"); }
    });
  }

  function setState(el, state) {
    el.className = el.className.replace(/\b(normal|warning|alarm|stale|unknown)\b/g, "").trim() + " " + state;
    const text = el.querySelector(".state-text");
    if (text) text.textContent = msg(state);
  }

  function follow(query, onEvent) {  // the stream names each event by its kind
    const es = new EventSource(api(`/events?${query}`));
    const handle = (e) => { try { onEvent(JSON.parse(e.data)); } catch (err) { console.error(err); } };
    ["values", "state", "model", "structure", "alert"].forEach((k) => es.addEventListener(k, handle));
    es.addEventListener("reset", () => location.reload());
    return es;
  }

  function followStates() {
    follow("kinds=state", (ev) => {
      if (ev.kind !== "state") return;
      document.querySelectorAll(`[data-state-of="${CSS.escape(ev.path)}"]`).forEach((el) => setState(el, ev.state));
    });
  }

  function sparkline(canvas, values) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const vs = values.filter((v) => v !== null && isFinite(v));
    if (vs.length < 2) return;
    const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
    ctx.strokeStyle = "#1f6feb"; ctx.lineWidth = 1.5; ctx.beginPath();
    values.forEach((v, i) => {
      if (v === null) return;
      const x = (i / (values.length - 1)) * (w - 2) + 1, y = h - 2 - ((v - lo) / span) * (h - 4);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  }

  async function followAsset(path, tags, names) {
    const series = {};
    names.forEach((n) => { series[n] = []; });
    const byTag = {};
    tags.forEach((t, i) => { if (t) byTag[t] = names[i]; });
    const known = tags.filter(Boolean);
    if (known.length) {  // the last hour of each signal, downsampled on the server, for the sparklines
      try {
        const latest = await (await fetch(api(`/tags/latest?tags=${encodeURIComponent(known.join(","))}`))).json();
        const newest = Math.max(...latest.points.map((p) => Date.parse(p.time)));
        if (isFinite(newest)) {
          const start = new Date(newest - 3600e3).toISOString(), end = new Date(newest + 1000).toISOString();
          const r = await fetch(api(`/points?tags=${encodeURIComponent(known.join(","))}&start=${start}&end=${end}&every=1m&agg=avg`));
          if (r.ok) (await r.json()).points.forEach((p) => { const n = byTag[p.tag]; if (n) series[n].push(p.avg); });
        }
      } catch (err) { console.error(err); }
    }
    const draw = (n) => { const c = document.querySelector(`[data-spark="${CSS.escape(n)}"]`); if (c) sparkline(c, series[n].slice(-120)); };
    names.forEach(draw);
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
      Object.entries(ev.signals).forEach(([n, points]) => {
        const last = points[points.length - 1];
        document.querySelectorAll(`[data-signal="${CSS.escape(n)}"]`).forEach((el) => {
          el.textContent = Number(last[1]).toPrecision(4).replace(/\.?0+$/, "");
        });
        const tm = document.querySelector(`[data-signal-time="${CSS.escape(n)}"]`);
        if (tm) { tm.setAttribute("datetime", last[0]); localTimes(tm.parentElement); }
        const q = document.querySelector(`[data-signal-quality="${CSS.escape(n)}"]`);
        if (q) q.textContent = msg(["good", "uncertain", "bad"][last[2]] || "unknown");
        if (series[n]) { points.forEach((p) => series[n].push(p[1])); draw(n); }
      });
    });
  }

  function trend(tags, start, end, owners) {
    const status = document.getElementById("trend-status");
    const box = document.getElementById("chart");
    if (!tags.length) return;
    let full = null, plot = null, busy = 0;
    let marks = { alerts: [], labels: [] };  // of the assets these tags belong to, drawn over the chart

    async function loadMarks(s, e) {
      const from = new Date(s).toISOString(), to = new Date(e).toISOString();
      const alerts = [], labels = [];
      for (const a of owners || []) {
        const q = `asset=${encodeURIComponent(a)}`;
        const [ra, rl] = await Promise.all([fetch(api(`/alerts?${q}&limit=1000`)),
          fetch(api(`/labels?${q}&start=${from}&end=${to}&limit=1000`))]);
        if (ra.ok) (await ra.json()).forEach((x) => { const t = Date.parse(x.raised_at); if (t >= s && t <= e) alerts.push(x); });
        if (rl.ok) (await rl.json()).forEach((x) => labels.push(x));
      }
      marks = { alerts, labels };
      const list = document.getElementById("overlay-list");
      if (list) {
        list.innerHTML = "";
        alerts.forEach((x) => { const li = document.createElement("li"); li.textContent = `${msg("alerts")}: ${x.raised_at} · ${x.asset} · ${x.message}`; list.appendChild(li); });
        labels.forEach((x) => { const li = document.createElement("li"); li.textContent = `${msg("label")}: ${x.kind} · ${x.asset} · ${x.start} – ${x.end || ""}`; list.appendChild(li); });
      }
      box.dataset.alerts = String(alerts.length);
      box.dataset.labels = String(labels.length);
      if (plot) plot.redraw();
    }

    function drawMarks(u) {
      const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
      ctx.save();
      marks.labels.forEach((x) => {
        const a = u.valToPos(Date.parse(x.start) / 1000, "x", true);
        const b = u.valToPos((x.end ? Date.parse(x.end) : Date.parse(x.start)) / 1000, "x", true);
        ctx.fillStyle = "rgba(154, 103, 0, 0.15)";
        ctx.fillRect(Math.min(a, b), top, Math.max(2, Math.abs(b - a)), height);
      });
      marks.alerts.forEach((x) => {
        const p = u.valToPos(Date.parse(x.raised_at) / 1000, "x", true);
        ctx.strokeStyle = "#cf222e"; ctx.lineWidth = 2; ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(p, top); ctx.lineTo(p, top + height); ctx.stroke();
      });
      ctx.restore();
    }
    const colours = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4"];

    function every(s, e) {  // about one bucket per two pixels: the server downsamples, the browser only draws
      const buckets = Math.max(50, Math.floor((box.clientWidth || 1000) / 2));
      return Math.max(1, Math.ceil((e - s) / 1000 / buckets)) + "s";
    }
    function url(s, e, fmt) {
      return api(`/points?tags=${encodeURIComponent(tags.join(","))}&start=${new Date(s).toISOString()}` +
        `&end=${new Date(e).toISOString()}&every=${every(s, e)}&agg=avg&format=${fmt}`);
    }
    async function load(s, e) {
      const mine = ++busy;
      const t0 = performance.now();
      const r = await fetch(url(s, e, "json"));
      if (!r.ok) { status.textContent = `${msg("failed")}: ${r.status}`; return; }
      const doc = await r.json();
      if (mine !== busy) return;
      const xs = [...new Set(doc.points.map((p) => Date.parse(p.time) / 1000))].sort((a, b) => a - b);
      const at = new Map(xs.map((x, i) => [x, i]));
      const ys = tags.map(() => new Array(xs.length).fill(null));
      let values = 0;  // downsampled rows name their value by the aggregate
      doc.points.forEach((p) => {
        const v = p.avg;
        if (v !== null && v !== undefined) values += 1;
        ys[tags.indexOf(p.tag)][at.get(Date.parse(p.time) / 1000)] = v;
      });
      const data = [xs, ...ys];
      if (!plot) {
        plot = new uPlot({ width: box.clientWidth || 1000, height: 420, scales: { x: { time: true } },
          series: [{}, ...tags.map((t, i) => ({ label: t, stroke: colours[i % colours.length], width: 1.5, spanGaps: false }))],
          cursor: { drag: { x: true, y: false } },
          hooks: { draw: [drawMarks], setSelect: [(u) => {
            if (u.select.width < 5) return;
            const a = u.posToVal(u.select.left, "x") * 1000, b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
            u.setSelect({ left: 0, width: 0 }, false);
            show(a, b);
          }] } }, data, box);
        box.addEventListener("dblclick", () => show(full[0], full[1]));
      } else {
        plot.setData(data);
      }
      box.dataset.points = String(doc.points.length);
      box.dataset.values = String(values);
      box.dataset.start = String(s); box.dataset.end = String(e);
      box.dataset.drawMs = String(Math.round(performance.now() - t0));
      status.textContent = `${doc.points.length} · ${every(s, e)} · ${new Date(s).toISOString()} – ${new Date(e).toISOString()}`;
      document.getElementById("export-csv").href = url(s, e, "csv");
      box.dispatchEvent(new CustomEvent("drawn"));
      loadMarks(s, e).catch((err) => console.error(err));
    }
    function show(s, e) { return load(s, e); }
    function pan(direction) {  // half the view's width earlier (-1) or later (+1)
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
      let s = start ? Date.parse(start) : NaN, e = end && end !== "now" ? Date.parse(end) : NaN;
      if (isNaN(e)) {
        const latest = await (await fetch(api(`/tags/latest?tags=${encodeURIComponent(tags.join(","))}`))).json();
        const newest = Math.max(...latest.points.map((p) => Date.parse(p.time)));
        e = isFinite(newest) ? newest + 1000 : Date.now();
      }
      if (isNaN(s)) s = e - 86400e3;
      full = [s, e];
      window.TaehwaTrend = { show, full: () => full };
      await load(s, e);
    })();
  }

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
  }

  function modelActions() {
    const status = document.getElementById("action-status");
    document.querySelectorAll("button[data-promote], button[data-rollback]").forEach((b) => b.addEventListener("click", async () => {
      const reason = window.prompt(msg("reason"));
      if (!reason) return;
      try {
        if (b.dataset.promote) await send("POST", api(`/models/${encodeURIComponent(b.dataset.promote)}/versions/${b.dataset.version}/promote`), { reason });
        else await send("POST", api(`/models/${encodeURIComponent(b.dataset.rollback)}/rollback`), { reason });
        location.reload();
      } catch (err) { status.textContent = `${msg("failed")}: ${err.message}`; }
    }));
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
        if (!r.ok) throw new Error(`${doc.message}${doc.where ? " (" + doc.where + ")" : ""}`);
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

  window.Taehwa = { followStates, followAsset, trend, alertActions, modelActions, submitForm, localTimes };
})();
