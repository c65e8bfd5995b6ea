// Conveyor dashboard (an ES module): throughput and failure-rate charts from count samples.
//
// A sample is {t: epoch ms, q: {queue: [succeeded, dead]}}, taken by dashboard/samples.js from
// GET /v1/queues every few seconds. Between two samples, the growth of each queue's succeeded and
// dead counts is what finished in that interval. A count that shrinks (retention purged
// finished jobs, or dead jobs were redriven) is read as zero growth, so the chart may
// under-count but never invents work. Intervals longer than GAP_MS (the tab was asleep)
// are left out rather than smeared.
const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 10 * 60 * 1000;
const BUCKET_MS = 10 * 1000;
const GAP_MS = 30 * 1000;

function deltas(samples, queue) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = b.t - a.t;
    if (dt <= 0 || dt > GAP_MS) continue;
    let ok = 0, dead = 0;
    for (const name of Object.keys(b.q)) {
      if (queue && name !== queue) continue;
      const before = a.q[name] || [0, 0];  // a queue absent before is new: from zero
      ok += Math.max(0, b.q[name][0] - before[0]);
      dead += Math.max(0, b.q[name][1] - before[1]);
    }
    out.push({ t: b.t, dt, ok, dead });
  }
  return out;
}

// {rate: jobs/s, failure: share dead, seconds: observed} over the last `ms`, or null.
function recent(samples, ms, queue) {
  const since = Date.now() - ms;
  let ok = 0, dead = 0, seconds = 0;
  for (const d of deltas(samples, queue)) {
    if (d.t < since) continue;
    ok += d.ok; dead += d.dead; seconds += d.dt / 1000;
  }
  if (seconds < 1) return null;
  const done = ok + dead;
  return { rate: done / seconds, failure: done ? dead / done : null, seconds };
}

function buckets(samples) {
  const now = Date.now();
  const n = WINDOW_MS / BUCKET_MS;
  const start = now - WINDOW_MS;
  const out = Array.from({ length: n }, () => ({ ok: 0, dead: 0, seconds: 0 }));
  for (const d of deltas(samples)) {
    if (d.t < start) continue;
    const i = Math.min(n - 1, Math.floor((d.t - start) / BUCKET_MS));
    out[i].ok += d.ok; out[i].dead += d.dead; out[i].seconds += d.dt / 1000;
  }
  return out;
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 2.5, 5, 10]) if (value <= m * p) return m * p;
  return 10 * p;
}

// Drawn in the element's own pixels, so text and dots keep their shape at any width.
function frame(svg) {
  const w = Math.max(100, Math.round(svg.clientWidth || 600));
  const h = Math.max(60, Math.round(svg.clientHeight || 130));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  return { w, h };
}

function grid(svg, w, h, labels) {
  for (let i = 0; i <= 3; i++) {
    const y = 4 + ((h - 8) * i) / 3;
    svg.append(el("line", { x1: 0, x2: w, y1: y, y2: y, class: "grid" }));
  }
  if (labels) {
    svg.append(el("text", { x: 2, y: 16, class: "axis-label" }, labels[0]));
  }
}

function empty(svg, w, h, data) {
  const sampled = data.some((b) => b.seconds > 0);
  svg.append(el("text", { x: w / 2, y: h / 2 + 4, "text-anchor": "middle", class: "chart-empty" },
    data.fromBroker ? "No job finished in the last 10 min"
      : sampled ? "No job finished since this page started measuring"
      : "No data yet: this page measures from when it was opened (a sample every 5 s)"));
}

function fmtRate(r) {
  if (r >= 100) return r.toFixed(0);
  if (r >= 10) return r.toFixed(1);
  return r.toFixed(2);
}

function drawThroughput(svg, data) {
  const { w, h } = frame(svg);
  const rates = data.map((b) => (b.seconds ? { ok: b.ok / b.seconds, dead: b.dead / b.seconds } : null));
  const peak = Math.max(0, ...rates.map((r) => (r ? r.ok + r.dead : 0)));
  const top = niceMax(peak);
  grid(svg, w, h, [fmtRate(top) + " /s"]);
  if (!rates.some((r) => r && r.ok + r.dead > 0)) { empty(svg, w, h, data); return; }
  const bw = w / data.length;
  const scale = (h - 8) / top;
  rates.forEach((r, i) => {
    if (!r) return;
    const x = i * bw + 1, width = Math.max(1, bw - 2);
    const hOk = r.ok * scale, hDead = r.dead * scale;
    if (hOk > 0) svg.append(el("rect", { x, width, y: h - 4 - hOk, height: hOk, class: "bar-succeeded" }));
    if (hDead > 0) svg.append(el("rect", { x, width, y: h - 4 - hOk - hDead, height: hDead, class: "bar-dead" }));
  });
}

function drawFailure(svg, data) {
  const { w, h } = frame(svg);
  const shares = data.map((b) => (b.ok + b.dead ? b.dead / (b.ok + b.dead) : null));
  // the scale covers at least 0-10 %, so one rare failure does not fill the chart
  const top = Math.min(100, niceMax(Math.max(10, 100 * Math.max(...shares.map((v) => v || 0))))) / 100;
  grid(svg, w, h, [Math.round(top * 100) + " %"]);
  const step = w / data.length;
  const points = [];
  shares.forEach((v, i) => {
    if (v !== null) points.push([i * step + step / 2, h - 4 - (v / top) * (h - 8)]);
  });
  if (!points.length) { empty(svg, w, h, data); return; }
  const line = points.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join(" ");
  const first = points[0][0], last = points[points.length - 1][0];
  svg.append(el("path", { d: `${line} L${last} ${h - 4} L${first} ${h - 4} Z`, class: "area-failure" }));
  svg.append(el("path", { d: line, class: "line-failure" }));
  for (const [x, y] of points) svg.append(el("circle", { cx: x, cy: y, r: 3, class: "dot-failure" }));
}

// The broker's own per-minute counts (GET /v1/queues/{name}/series, issue 18), summed over
// queues: one bucket per minute of the window, the same shape as `buckets`, so every
// viewer sees the same history, from before the page was opened. The last bucket is the
// current minute, still filling (its seconds: how much of it has passed). A doc of another
// step (per hour: windows beyond a day) is not per minute and is left out.
const MINUTE_MS = 60 * 1000;
function fromSeries(docs) {
  const byMinute = new Map();
  for (const doc of docs) {
    if (doc && doc.step_s !== undefined && doc.step_s !== 60) continue;
    for (const p of (doc && doc.points) || []) {
      const t = Date.parse(p.at);
      if (!Number.isFinite(t)) continue;
      const b = byMinute.get(t) || { ok: 0, dead: 0 };
      b.ok += p.succeeded || 0; b.dead += p.dead || 0;
      byMinute.set(t, b);
    }
  }
  const now = Date.now();
  const current = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const n = WINDOW_MS / MINUTE_MS;
  const out = [];
  for (let i = n - 1; i >= 0; i--) {
    const b = byMinute.get(current - i * MINUTE_MS) || { ok: 0, dead: 0 };
    const seconds = i ? 60 : Math.max(1, (now - current) / 1000);
    out.push({ ok: b.ok, dead: b.dead, seconds });
  }
  out.fromBroker = true; // counted by the broker: what an empty chart says (see `empty`)
  return out;
}

// {rate, failure, seconds} over the last full minute and the current one so far
function recentSeries(data) {
  const tail = data.slice(-2);
  const ok = tail.reduce((n, b) => n + b.ok, 0), dead = tail.reduce((n, b) => n + b.dead, 0);
  const seconds = tail.reduce((n, b) => n + b.seconds, 0);
  if (!seconds) return null;
  const done = ok + dead;
  return { rate: done / seconds, failure: done ? dead / done : null, seconds };
}

export { recent, buckets, drawThroughput, drawFailure, fmtRate, fromSeries, recentSeries };
