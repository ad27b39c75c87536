// The sluice dashboard: reads /api/pipelines once, then follows
// /api/events (server-sent events): "stats" every second, "window" rows as
// windows fire. Charts are hand-drawn SVG; nothing is loaded from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fde", "#d43f3a", "#1f9d55", "#d08a00", "#7a4fd6", "#0e9aa7", "#c2185b", "#5d6d7e"];
const MAX_WINDOWS = 60;   // windows (distinct window_end) shown per chart
const MAX_SERIES = 8;     // groups drawn per chart

const state = {
  current: null,          // name of the pipeline shown
  stats: {},              // name -> latest status
  prev: {},               // name -> {t, in, out, steps:[], sinks:[]} for rates
  rates: {},              // name -> computed rates
  windows: {},            // "pipeline/step" -> {rows: [], metric: string}
};

function el(tag, attrs = {}, ...children) {
  const ns = ["svg", "g", "rect", "text", "path", "line", "circle", "polyline", "defs", "marker", "title"].includes(tag) ? SVG : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.setAttribute("class", v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function fmtCount(n) {
  if (n === undefined || n === null || isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (a >= 100) return Math.round(n).toString();
  return (Math.round(n * 10) / 10).toString();
}
function fmtBytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
function fmtSecs(s) {
  if (s === undefined || s === null) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 90) return s.toFixed(1) + " s";
  if (s < 5400) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
// niceTicks covers [lo, hi] with about n round steps (1, 2 or 5 times a
// power of ten) and returns the ticks, the first and last bounding the range.
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || 10 * mag;
  const first = Math.floor(lo / step) * step, last = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Math.round(v / step) * step);
  // Rounding the step keeps 0.1 * 3 from printing as 0.30000000000000004.
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  return ticks.map(v => Number(v.toFixed(digits)));
}

function fmtTime(t) {
  const d = new Date(t);
  return d.toISOString().slice(11, 19);
}

// rates turns two snapshots into records per second.
function updateRates(st) {
  const now = Date.parse(st.time);
  const p = state.prev[st.name];
  // A window emits rows only when it fires: its node shows the records
  // it takes in, which flow all the time, not the rows out.
  const snap = { t: now, in: st.source.records, out: st.records_out,
    steps: st.steps.map(s => s.window ? s.in : s.out), sinks: st.sinks.map(s => s.records) };
  if (p && now > p.t) {
    const dt = (now - p.t) / 1000;
    state.rates[st.name] = {
      in: (snap.in - p.in) / dt, out: (snap.out - p.out) / dt,
      steps: snap.steps.map((v, i) => (v - (p.steps[i] || 0)) / dt),
      sinks: snap.sinks.map((v, i) => (v - (p.sinks[i] || 0)) / dt),
    };
  }
  state.prev[st.name] = snap;
}

function renderTabs() {
  const nav = document.getElementById("tabs");
  nav.replaceChildren(...Object.keys(state.stats).map(name =>
    el("button", { class: (name === state.current ? "active " : "") + (state.stats[name].state === "failing" ? "failing" : ""),
      text: name, title: state.stats[name].state,
      onclick: () => { state.current = name; renderAll(); } })));
}

function card(label, value, sub) {
  return el("div", { class: "card" }, el("div", { class: "label", text: label }),
    el("div", { class: "value", text: value }), sub ? el("div", { class: "sub", text: sub }) : null);
}

function renderSummary(st) {
  const r = state.rates[st.name] || {};
  const fresh = st.sinks.map(s => s.freshness_seconds).filter(v => v !== null && v !== undefined);
  document.getElementById("summary").replaceChildren(...[
    card("State", st.state, st.state === "failing"
      ? "restarted " + st.restarts + "×" + (st.retry_at ? ", next " + fmtTime(st.retry_at) : "") + ": " + st.error
      : st.error || (st.started ? "since " + fmtTime(st.started) : "")),
    st.file_error ? card("File change", "not loaded", st.file_error) : null,
    card("In", fmtCount(r.in) + "/s", fmtCount(st.source.records) + " records"),
    card("Out", fmtCount(r.out) + "/s", fmtCount(st.records_out) + " records"),
    card("Errors", fmtCount(st.errors), st.undelivered ? fmtCount(st.undelivered) + " not delivered" : "to error outputs"),
    card("Buffered", fmtBytes(st.buffered_bytes + st.queued_bytes), fmtBytes(st.queued_bytes) + " queued"),
    card("Checkpoint age", fmtSecs(st.checkpoint_age_seconds), st.checkpoints + " checkpoints"),
    card("Data freshness", fresh.length ? fmtSecs(Math.max(...fresh)) : "–", "oldest undelivered"),
  ].filter(Boolean));
}

// renderGraph draws the pipeline's graph from left to right: the source,
// each step after the point it reads (its "from"), each sink after the
// point it reads (its "after"). A point that several steps or sinks read
// branches: its readers stand in one column, one row each. Nodes and edges
// carry data-node, data-from and data-to, for tests and styles.
function renderGraph(st) {
  const r = state.rates[st.name] || { steps: [], sinks: [] };
  const W = 150, H = 58, GX = 40, GY = 16, PAD = 10;
  const idOf = point => point === "source" ? "source" : "step:" + point;
  const kids = { source: [] };
  const info = { source: { cls: "source", title: "source", kind: st.source.kind, rate: fmtCount(r.in) + " rec/s", bad: null } };
  st.steps.forEach((s, i) => {
    kids["step:" + s.name] = [];
    info["step:" + s.name] = { cls: s.window ? "window" : "step", title: s.name,
      kind: s.window ? "window · " + fmtCount(s.out) + " rows" : "step",
      rate: fmtCount(r.steps ? r.steps[i] : 0) + (s.window ? " rec/s in" : " rec/s"),
      bad: s.failed ? fmtCount(s.failed) + " failed" : null };
  });
  // Readers of a point in the order listed: the steps, then the sinks.
  st.steps.forEach(s => (kids[idOf(s.from)] || kids.source).push("step:" + s.name));
  st.sinks.forEach((s, i) => {
    const id = "sink:" + s.name;
    kids[id] = [];
    (kids[idOf(s.after)] || kids.source).push(id);
    info[id] = { cls: s.alert ? "alert" : "sink", title: s.name, kind: s.alert ? "alert" : "sink",
      rate: fmtCount(r.sinks ? r.sinks[i] : 0) + " rec/s",
      bad: s.undelivered ? fmtCount(s.undelivered) + " undelivered" : s.failed ? fmtCount(s.failed) + " failed" : null };
  });
  // A node's column is its depth; leaves take the rows in turn and a node
  // stands level with its first reader, so that a chain is a straight line.
  const pos = {};
  let rows = 0, cols = 0;
  const place = (id, col) => {
    cols = Math.max(cols, col + 1);
    const ch = kids[id];
    if (!ch.length) { pos[id] = { col, row: rows++ }; return; }
    for (const c of ch) place(c, col + 1);
    pos[id] = { col, row: pos[ch[0]].row };
  };
  place("source", 0);
  const xOf = c => PAD + c * (W + GX), yOf = row => PAD + row * (H + GY);
  const width = PAD * 2 + cols * W + (cols - 1) * GX;
  const height = PAD * 2 + rows * H + (rows - 1) * GY;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "pipeline graph" },
    el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa3b5" }))));
  for (const [from, ch] of Object.entries(kids)) {
    const a = pos[from];
    for (const to of ch) {
      const b = pos[to];
      const x1 = xOf(a.col) + W, y1 = yOf(a.row) + H / 2, x2 = xOf(b.col) - 2, y2 = yOf(b.row) + H / 2, xm = (x1 + x2) / 2;
      const d = y1 === y2 ? `M ${x1} ${y1} L ${x2} ${y2}` : `M ${x1} ${y1} C ${xm} ${y1}, ${xm} ${y2}, ${x2} ${y2}`;
      svg.append(el("path", { class: "edge", d, "data-from": from, "data-to": to }));
    }
  }
  for (const [id, n] of Object.entries(info)) {
    const p = pos[id];
    const title = n.title.length > 20 ? n.title.slice(0, 19) + "…" : n.title;
    svg.append(el("g", { class: "node " + n.cls, transform: `translate(${xOf(p.col)},${yOf(p.row)})`, "data-node": id },
      el("rect", { width: W, height: H, rx: 6 }),
      el("text", { class: "title", x: 10, y: 18, text: title }, el("title", { text: n.title })),
      el("text", { class: "kind", x: 10, y: 32, text: n.kind }),
      el("text", { class: "rate", x: 10, y: 48, text: n.rate }),
      n.bad ? el("text", { class: "bad", x: W - 10, y: 48, "text-anchor": "end", text: n.bad }) : null));
  }
  document.getElementById("graph").replaceChildren(svg);
}

function renderAlerts(st) {
  const box = document.getElementById("alerts");
  if (!st.alerts.length) { box.replaceChildren(el("p", { class: "muted", text: "No alert rules." })); return; }
  box.replaceChildren(el("table", {},
    el("tr", {}, ...["rule", "state", "pending", "firing", "notifications"].map(h => el("th", { text: h }))),
    ...st.alerts.map(a => el("tr", { "data-rule": a.rule },
      el("td", { text: a.rule }), el("td", {}, el("span", { class: "state " + a.state, text: a.state })),
      el("td", { text: a.pending }), el("td", { text: a.firing }), el("td", { text: a.sent })))));
}

function renderLag(st) {
  const box = document.getElementById("lag");
  const lag = st.source.lag_ms || {};
  const shards = Object.keys(lag).sort();
  if (!shards.length) { box.replaceChildren(el("p", { class: "muted", text: "The source reports no lag." })); return; }
  const top = Math.max(1, ...shards.map(s => lag[s]));
  box.replaceChildren(el("table", {},
    el("tr", {}, el("th", { text: "shard" }), el("th", { text: "behind" }), el("th", { text: "" })),
    ...shards.map(s => {
      const bar = el("div", { class: "bar" });
      bar.style.width = (100 * lag[s] / top) + "%";
      return el("tr", {}, el("td", { text: s }), el("td", { text: fmtSecs(lag[s] / 1000) }), el("td", {}, bar));
    })));
}

function renderSinks(st) {
  document.getElementById("sinks").replaceChildren(el("table", {},
    el("tr", {}, ...["sink", "reads", "records", "failed", "undelivered", "freshness"].map(h => el("th", { text: h }))),
    ...st.sinks.map(s => el("tr", {}, el("td", { text: s.name }), el("td", { text: s.after }),
      el("td", { text: fmtCount(s.records) }), el("td", { text: fmtCount(s.failed) }),
      el("td", { text: fmtCount(s.undelivered), title: s.undelivered_to || "" }),
      el("td", { text: s.freshness_seconds === null ? "–" : fmtSecs(s.freshness_seconds) })))));
}

// Window charts.

function windowKey(p, step) { return p + "/" + step; }

function addRows(p, step, rows) {
  const k = windowKey(p, step);
  const w = state.windows[k] || (state.windows[k] = { rows: [], metric: null });
  w.rows.push(...rows);
  // Keep the rows of the last MAX_WINDOWS windows.
  const ends = [...new Set(w.rows.map(r => r.window_end))].sort();
  if (ends.length > MAX_WINDOWS) {
    const cut = ends[ends.length - MAX_WINDOWS];
    w.rows = w.rows.filter(r => r.window_end >= cut);
  }
}

function renderWindows(st) {
  const box = document.getElementById("windows");
  const streams = st.windows.filter(w => w.values && w.values.length || (state.windows[windowKey(st.name, w.step)] || {}).rows);
  if (!st.windows.length) {
    box.replaceChildren(el("p", { class: "muted", text: "No window step in this pipeline." }));
    return;
  }
  const charts = st.windows.map(w => renderChart(st.name, w));
  box.replaceChildren(...charts);
  void streams;
}

function renderChart(p, info) {
  const k = windowKey(p, info.step);
  const w = state.windows[k] || (state.windows[k] = { rows: [], metric: null });
  const values = info.values || [];
  if (!w.metric || !values.includes(w.metric)) w.metric = defaultMetric(values);
  const select = el("select", { "aria-label": "aggregate", onchange: e => { w.metric = e.target.value; renderAll(); } },
    ...values.map(v => { const o = el("option", { value: v, text: v }); if (v === w.metric) o.selected = true; return o; }));
  const ends = [...new Set(w.rows.map(r => r.window_end))].sort();
  const late = info.late_records ? ` · ${info.late_records.toLocaleString()} late` : "";
  const caption = (ends.length ? `${ends.length} windows · last ended ${fmtTime(ends[ends.length - 1])}` : "waiting for the first window") + late;
  const svg = chartSVG(w, info.keys || [], ends);
  const legend = el("div", { class: "legend" }, ...(svg.series || []).map((s, i) =>
    el("span", {}, (() => { const sw = el("i"); sw.style.background = COLORS[i % COLORS.length]; return sw; })(), s.name)));
  return el("div", { class: "chart", "data-step": info.step },
    el("header", {}, el("h3", { text: info.step }), values.length ? select : null,
      el("span", { class: "caption", text: caption, "data-late": info.late_records || 0 })),
    svg.el, legend);
}

// defaultMetric picks the aggregate a chart shows first: a count when
// there is one, else the first.
function defaultMetric(values) {
  return values.find(v => /^(requests|count|events|records)$/.test(v)) || values.find(v => /count/.test(v)) || values[0] || null;
}

function chartSVG(w, keys, ends) {
  const W = 640, H = 240, L = 52, R = 30, T = 12, B = 28;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "plot", "data-points": 0, "data-windows": ends.length });
  if (!w.metric || !ends.length) {
    svg.append(el("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle", text: "waiting for the first window…" }));
    return { el: svg, series: [] };
  }
  const groups = new Map();
  for (const r of w.rows) {
    const v = r[w.metric];
    if (typeof v !== "number") continue;
    const name = keys.length ? keys.map(k => r[k] === null || r[k] === undefined ? "∅" : String(r[k])).join(" · ") : "all";
    if (!groups.has(name)) groups.set(name, new Map());
    groups.get(name).set(r.window_end, v);
  }
  // The groups with the largest totals get lines.
  const series = [...groups.entries()].map(([name, pts]) => ({ name, pts, total: [...pts.values()].reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.total - a.total).slice(0, MAX_SERIES);
  let lo = 0, hi = 0;
  for (const s of series) for (const v of s.pts.values()) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi === lo) hi = lo + 1;
  const yTicks = niceTicks(lo, hi, 5);
  lo = yTicks[0]; hi = yTicks[yTicks.length - 1];
  svg.setAttribute("data-ticks", yTicks.join(","));
  const t0 = Date.parse(ends[0]), t1 = Date.parse(ends[ends.length - 1]);
  const x = t => ends.length === 1 ? L + (W - L - R) / 2 : L + (W - L - R) * (Date.parse(t) - t0) / (t1 - t0);
  const y = v => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (const v of yTicks) {
    svg.append(el("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.append(el("text", { class: "tick", x: L - 6, y: y(v) + 3, "text-anchor": "end", text: fmtCount(v) }));
  }
  svg.append(el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const ticks = Math.min(ends.length, 6);
  for (let i = 0; i < ticks; i++) {
    const e = ends[Math.round(i * (ends.length - 1) / Math.max(ticks - 1, 1))];
    svg.append(el("text", { class: "tick", x: x(e), y: H - B + 16, "text-anchor": "middle", text: fmtTime(e) }));
  }
  let points = 0;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = ends.filter(e => s.pts.has(e)).map(e => [x(e), y(s.pts.get(e)), e]);
    if (pts.length > 1) svg.append(el("polyline", { class: "line", stroke: color, points: pts.map(p => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ") }));
    for (const p of pts) {
      svg.append(el("circle", { class: "pt", cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: 2.6, fill: color },
        el("title", { text: `${s.name} · ${fmtTime(p[2])} · ${w.metric} ${s.pts.get(p[2])}` })));
      points++;
    }
  });
  svg.setAttribute("data-points", points);
  return { el: svg, series };
}

function renderAll() {
  const names = Object.keys(state.stats);
  if (!state.current || !state.stats[state.current]) state.current = names[0];
  renderTabs();
  const st = state.stats[state.current];
  if (!st) return;
  renderSummary(st);
  renderGraph(st);
  renderWindows(st);
  renderAlerts(st);
  renderLag(st);
  renderSinks(st);
}

// renderNotices lists the pipeline files whose change was not loaded and
// that run no pipeline (a new file with an error).
function renderNotices(doc) {
  document.getElementById("notices").replaceChildren(...(doc.rejected_files || []).map(f =>
    el("div", { class: "notice" }, el("strong", { text: f.file + " not loaded" }), el("pre", { text: f.error }))));
}

function applyStats(doc) {
  document.getElementById("version").textContent = "sluice " + (doc.version || "");
  renderNotices(doc);
  // A pipeline removed from the process leaves the dashboard.
  state.stats = {};
  for (const st of doc.pipelines) {
    updateRates(st);
    state.stats[st.name] = st;
  }
  renderAll();
}

async function loadHistory(doc) {
  for (const p of doc.pipelines) {
    for (const w of p.windows) {
      try {
        const res = await fetch(`api/pipelines/${encodeURIComponent(p.name)}/windows/${encodeURIComponent(w.step)}?limit=5000`);
        if (res.ok) addRows(p.name, w.step, (await res.json()).rows || []);
      } catch (e) { /* the live feed fills in */ }
    }
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("api/events");
  es.addEventListener("open", () => { conn.className = "conn on"; conn.textContent = "live"; });
  es.addEventListener("error", () => { conn.className = "conn off"; conn.textContent = "reconnecting…"; });
  es.addEventListener("stats", e => applyStats(JSON.parse(e.data)));
  es.addEventListener("window", e => {
    const ev = JSON.parse(e.data);
    addRows(ev.pipeline, ev.step, ev.rows);
    if (ev.pipeline === state.current) renderAll();
  });
}

(async function main() {
  try {
    const res = await fetch("api/pipelines");
    const doc = await res.json();
    await loadHistory(doc);
    applyStats(doc);
  } catch (e) {
    document.getElementById("conn").textContent = "cannot reach the server";
  }
  connect();
})();
