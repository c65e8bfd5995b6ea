// Counts over time, from GET /v1/queues every SAMPLE_MS (and soon after events): the charts,
// the nav badge, the queue list's rates and the DLQ page's queue options. The charts draw
// the broker's per-minute series (issue 18) once it answers, the page's own samples until.
import * as chart from "../chart.js";
import { api } from "./api.js";
import { $, $$ } from "./dom.js";
import { onSwap } from "./refresh.js";
import { SAMPLE_MS, coalesced } from "./timing.js";

const SAMPLES = "conveyor.samples";
const KEEP_MS = 15 * 60 * 1000;
// the queues sampled for the charts: the first ones by name, as the overview lists them
// (samples of every queue of a large install would not fit in sessionStorage)
const SAMPLE_QUEUES = 200;

function loadSamples() {
  try { return JSON.parse(sessionStorage.getItem(SAMPLES) || "[]"); } catch (err) { return []; }
}

function record(items) {
  const now = Date.now();
  const q = {};
  for (const item of items) q[item.name] = [item.counts.succeeded || 0, item.counts.dead || 0];
  const samples = loadSamples().filter((s) => now - s.t < KEEP_MS);
  samples.push({ t: now, q });
  try { sessionStorage.setItem(SAMPLES, JSON.stringify(samples)); } catch (err) { /* full: skip */ }
  return samples;
}

function updateRates(samples) {
  samples = samples || loadSamples();
  for (const cell of $$("[data-rate-queue]")) {
    const r = chart.recent(samples, 60 * 1000, cell.dataset.rateQueue);
    cell.textContent = r ? chart.fmtRate(r.rate) + "/s" : "—";
  }
}

// ---- charts from the broker's per-minute series (issue 18) ------------------------------
// The first SERIES_QUEUES queues by name, one request each: bounded. Read again when their
// finished counts moved since the last read, else every SERIES_MS. Until the first answer
// (or if the API has no series) the page's own samples are drawn.
const SERIES_QUEUES = 20;
const SERIES_MS = 30 * 1000;
let seriesDocs = null;
let seriesAt = 0;
let seriesMark = "";
async function refreshSeries(items) {
  if (!$("#chart-throughput")) return;
  const mark = items.slice(0, SERIES_QUEUES)
    .map((item) => `${item.name}:${item.counts.succeeded || 0}:${item.counts.dead || 0}`).join();
  if (mark === seriesMark && Date.now() - seriesAt < SERIES_MS) return;
  seriesMark = mark;
  seriesAt = Date.now();
  const names = items.map((item) => item.name).slice(0, SERIES_QUEUES);
  try {
    seriesDocs = await Promise.all(names.map((name) =>
      api("GET", "/v1/queues/" + encodeURIComponent(name) + "/series?minutes=11&step_s=60")));
    for (const note of $$("[data-chart-source]")) note.hidden = false;
    for (const note of $$("[data-chart-fallback]")) note.hidden = true;
  } catch (err) {
    seriesDocs = null; // the page's own samples again, and the headings say so
    for (const note of $$("[data-chart-source]")) note.hidden = true;
    for (const note of $$("[data-chart-fallback]")) note.hidden = false;
  }
  updateCharts(loadSamples());
}

function updateCharts(samples) {
  const through = $("#chart-throughput");
  if (!through) return;
  const fromBroker = seriesDocs !== null;
  const data = fromBroker ? chart.fromSeries(seriesDocs) : chart.buckets(samples);
  chart.drawThroughput(through, data);
  chart.drawFailure($("#chart-failure"), data);
  const r = fromBroker ? chart.recentSeries(data) : chart.recent(samples, 60 * 1000);
  $('[data-stat="rate"]').textContent = r ? chart.fmtRate(r.rate) : "—";
  $('[data-stat="failure"]').textContent = r && r.failure !== null ? (r.failure * 100).toFixed(1) + " %" : "—";
}

function updateQueueOptions(items) {
  for (const select of $$("select[data-queue-options]")) {
    const have = new Set(Array.from(select.options).map((o) => o.value));
    for (const item of items) if (!have.has(item.name)) select.append(new Option(item.name, item.name));
  }
}

function updateBadge(items) {
  const badge = $("[data-dead-total]");
  if (!badge) return;
  const dead = items.reduce((n, item) => n + (item.counts.dead || 0), 0);
  badge.textContent = dead > 999 ? "999+" : String(dead);
  badge.hidden = dead === 0;
}

const queueHooks = [];
// `fn(names)` after each sample: the queue names it listed, by name (the event stream of a
// page that follows every queue starts again when a new one appears)
export const onQueues = (fn) => { queueHooks.push(fn); };

async function sample() {
  if (document.hidden) return;
  try {
    const doc = await api("GET", "/v1/queues?limit=" + SAMPLE_QUEUES);
    const samples = record(doc.items);
    updateCharts(samples);
    refreshSeries(doc.items);
    updateRates(samples);
    updateQueueOptions(doc.items);
    updateBadge(doc.items);
    const names = doc.items.map((item) => item.name);
    for (const fn of queueHooks) fn(names);
  } catch (err) {
    /* the mark in the top bar says what is wrong */
  }
}

// a sample soon after events (at most one every 2 s), besides the one every SAMPLE_MS
export const sampleSoon = coalesced(sample, 2000);

export async function startSampling() {
  onSwap((target) => { if (target.id === "overview") updateRates(); });
  updateCharts(loadSamples());
  const loop = async () => {
    await sample();
    setTimeout(loop, SAMPLE_MS);
  };
  await loop();
}
