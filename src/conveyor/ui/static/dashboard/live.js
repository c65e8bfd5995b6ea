// Live parts from the job event stream (GET /v1/events, issue 17) instead of polling.
//
// A part follows events when it carries `data-follow`; `data-follow-queue` (one queue),
// `data-follow-job` (one job) and `data-follow-events` (event names, space-separated) narrow
// what refreshes it. The page holds one stream (fetch() with the tab's key: EventSource
// cannot send it, see docs/decisions.md); each matching event asks for a refresh, at most
// one per part every COALESCE_MS. After a drop the stream reconnects with Last-Event-ID
// (the API resumes right after the last event received: nothing is missed); an `event: gap`
// or a stream started without a cursor refreshes the parts once (a stream of every queue
// follows new queues by itself: no reconnect for them). While it cannot connect, the parts
// refresh every FALLBACK_MS and the top bar says the page is polling.
import { api, authHeaders } from "./api.js";
import { $, $$ } from "./dom.js";
import { onSwap, refreshSoon } from "./refresh.js";
import { onQueues, sampleSoon, startSampling } from "./samples.js";
import { setStreamState, streamState } from "./state.js";
import { onStatus, setLive } from "./status.js";
import { FALLBACK_MS } from "./timing.js";
import { readEvents } from "./sse.js";

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 10000;
// how often a running job's page looks for new log lines (they are not events)
const LOGS_MS = 3000;

const followers = () => $$("[data-follow]");
const queueOf = (jobId) => jobId.slice(0, jobId.lastIndexOf(":"));

// {params, everyQueue}: the stream the page's parts need
function streamQuery(parts) {
  const params = new URLSearchParams();
  const jobs = parts.map((p) => p.dataset.followJob).filter(Boolean);
  const queues = parts.map((p) => p.dataset.followQueue).filter(Boolean);
  const everyQueue = parts.some((p) => !p.dataset.followJob && !p.dataset.followQueue);
  if (!everyQueue) {
    if (jobs.length === parts.length && new Set(jobs).size === 1) params.set("job_id", jobs[0]);
    else for (const q of new Set([...queues, ...jobs.map(queueOf)])) params.append("queue", q);
  }
  return { params, everyQueue };
}

function wants(part, ev) {
  const d = part.dataset;
  return (!d.followQueue || d.followQueue === ev.queue)
    && (!d.followJob || d.followJob === ev.job_id)
    && (!d.followEvents || d.followEvents.split(/\s+/).includes(ev.event));
}

const refreshFollowers = () => { for (const part of followers()) refreshSoon(part); };

let generation = 0;       // each connection's number: a replaced one stops quietly
let controller = null;
let lastId = "";          // Last-Event-ID: the cursor after the last event received
let mustRefresh = true;   // the next connection cannot resume: refresh once it is open
let retryMs = RETRY_MIN_MS;
let fallbackTimer = 0;
let knownQueues = [];

function markStream(state) {
  setStreamState(state);
  const live = $("#live");
  if (!live) return;
  live.dataset.stream = state;
  live.title = state === "open" ? "Follows the job event stream"
    : state === "idle" ? "Follows the job event stream once a queue exists"
    : `Refreshes every ${FALLBACK_MS / 1000} s until the event stream answers`;
  if (live.dataset.state === "ok" || live.dataset.state === "polling") setLive("ok", "Live");
}

function opened() {
  markStream("open");
  setLive("ok", "Live"); // the stream answered: the API and its broker are up
  clearInterval(fallbackTimer);
  fallbackTimer = 0;
  retryMs = RETRY_MIN_MS;
  if (mustRefresh || !lastId) refreshFollowers();
  mustRefresh = false;
}

function dropped(status) {
  if (status) onStatus(status);
  markStream("polling");
  if (!fallbackTimer) {
    refreshFollowers();
    fallbackTimer = setInterval(refreshFollowers, FALLBACK_MS);
  }
  // a refused stream (bad key, bad filter) stays refused: only the poll goes on
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return;
  const wait = retryMs;
  retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  const mine = generation;
  setTimeout(() => { if (mine === generation) connect(); }, wait);
}

function handle(message) {
  if (message.type === "gap") {
    refreshFollowers();
    sampleSoon();
    return;
  }
  if (message.type !== "job") return;
  let ev;
  try { ev = JSON.parse(message.data); } catch (err) { return; }
  for (const part of followers()) if (wants(part, ev)) refreshSoon(part);
  sampleSoon();
}

async function connect() {
  const mine = ++generation;
  if (controller) controller.abort();
  controller = new AbortController();
  const { params } = streamQuery(followers());
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (lastId) headers["Last-Event-ID"] = lastId;
  const query = params.toString();
  try {
    const res = await fetch("/v1/events" + (query ? "?" + query : ""),
                            { headers, cache: "no-store", signal: controller.signal });
    if (mine !== generation) return;
    if (!res.ok) {
      res.body?.cancel().catch(() => {});
      dropped(res.status);
      return;
    }
    opened();
    for await (const message of readEvents(res.body)) {
      if (mine !== generation) return;
      lastId = message.id;
      handle(message);
    }
  } catch (err) {
    if (mine !== generation) return; // replaced by a newer connection
  }
  if (mine === generation) dropped(0);
}

// A stream of every queue follows the queues that appear after it started by itself (the
// API looks every 2 s and reads a new one from its start), so an open stream is kept. With
// no queue yet there is nothing to follow: the page waits, "idle", for the counts to list
// one, then connects.
function onQueueNames(names) {
  knownQueues = names;
  if (streamState() === "idle" && names.length && streamQuery(followers()).everyQueue) {
    connect();
  }
}

// The job page: log lines are not events; while the job runs, look for new ones and
// refresh when the newest differs from what the page shows.
let logsTimer = 0;
function watchLogs(target) {
  const jobId = target.dataset.followJob;
  if (!jobId) return;
  clearTimeout(logsTimer);
  const state = $("[data-job-state]", target);
  if (!state || state.dataset.jobState !== "running") return;
  logsTimer = setTimeout(async () => {
    if (document.hidden) { watchLogs(target); return; }
    try {
      const doc = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}/logs`);
      const shown = $$("#job-logs li .log-message", target);
      const last = doc.lines.length ? doc.lines[doc.lines.length - 1].message : null;
      const lastShown = shown.length ? shown[shown.length - 1].textContent : null;
      if (doc.lines.length !== shown.length || last !== lastShown) refreshSoon(target);
      else watchLogs(target);
    } catch (err) {
      watchLogs(target);
    }
  }, LOGS_MS);
}

export async function startLive() {
  onSwap(watchLogs);
  onQueues(onQueueNames);
  const sampling = startSampling();
  if (!followers().length) return; // this page polls (workers, webhooks, schedules)
  markStream("connecting");
  if (streamQuery(followers()).everyQueue) {
    await sampling; // know the queues first
    if (!knownQueues.length) { markStream("idle"); return; }
  }
  connect();
}
