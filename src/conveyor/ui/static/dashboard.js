// Conveyor dashboard: the API key, live refresh, actions through /v1, and count sampling.
//
// Every request, htmx's and ours, carries `Authorization: Bearer <key>` when a key is kept
// in sessionStorage. Nothing here builds HTML from data: text goes in with textContent.
(() => {
  "use strict";
  const KEY = "conveyor.apiKey";
  const SAMPLES = "conveyor.samples";
  const POLL_MS = 2000;
  const KEEP_MS = 15 * 60 * 1000;
  // the queues sampled for the charts: the first ones by name, as the overview lists them
  // (samples of every queue of a large install would not fit in sessionStorage)
  const SAMPLE_QUEUES = 200;
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  const getKey = () => sessionStorage.getItem(KEY) || "";

  // ---- connection mark -------------------------------------------------------------
  function setLive(state, text, banner) {
    const live = $("#live");
    if (!live) return;
    live.dataset.state = state;
    $(".live-text", live).textContent = text;
    // the banner says, on every page, why what it shows no longer changes
    const box = $("#status-banner");
    if (box) {
      box.dataset.state = state;
      box.textContent = banner || "";
      box.hidden = state === "ok" || !banner;
    }
  }

  // What a card still loading says when its first answer is an error (instead of "Loading…"
  // forever); a card already filled keeps its last answer, and the top bar's mark says why
  // it no longer changes.
  function sayInLoadingCards(text) {
    for (const card of $$("[data-live] > .loading")) {
      card.textContent = text;
      card.classList.add("loading-failed");
    }
  }

  function onStatus(status) {
    let text;
    if (status === 401) {
      const rejected = Boolean(getKey());
      text = rejected
        ? "The API rejected the API key this tab holds (401 unauthorized): set another one with the API key button."
        : "An API key is needed to show this: set one with the API key button.";
      setLive("locked", rejected ? "Key rejected" : "Key needed", text);
      if (!keyDismissed) openKeyDialog(rejected ? "The API rejected that key: it is wrong or was revoked." : "");
    } else if (status === 503) {
      text = "The broker is unavailable (503): the API cannot reach Redis or the SQLite file. What you see may be out of date; this page retries every 2 s.";
      setLive("down", "Broker unavailable", text);
    } else if (status === 0 || status >= 500) {
      text = status === 0
        ? "The API does not answer: it may be down or unreachable. What you see may be out of date; this page retries every 2 s."
        : `The API answered an error (${status}). This page retries every 2 s.`;
      setLive("down", "Disconnected", text);
    }
    if (text) sayInLoadingCards(text);
  }

  // ---- API key ---------------------------------------------------------------------
  // Once the operator dismisses the prompt, refused polls no longer reopen it (the top
  // bar's button does).
  let keyDismissed = false;

  function openKeyDialog(message) {
    const dialog = $("#key-dialog");
    const error = $("#key-error");
    error.textContent = message || "";
    error.hidden = !message;
    if (!dialog.open) {
      $("#key-input").value = "";
      $("#key-forget").hidden = !getKey();
      dialog.showModal();
    }
  }

  async function saveKey(event) {
    event.preventDefault();
    const key = $("#key-input").value.trim();
    if (!key) return;
    const res = await fetch("/v1/queues", { headers: { Authorization: "Bearer " + key } })
      .catch(() => null);
    if (!res) { openKeyDialog("The API did not answer: try again."); return; }
    if (res.status === 401) { openKeyDialog("The API rejected that key: check it and try again."); return; }
    sessionStorage.setItem(KEY, key);
    $("#key-dialog").close();
    location.reload();
  }

  // ---- requests ----------------------------------------------------------------------
  class ApiError extends Error {
    constructor(code, message, status) { super(message); this.code = code; this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = getKey();
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      onStatus(0);
      throw new ApiError("network", "The API did not answer.", 0);
    }
    const text = await res.text();
    let doc = null;
    try { doc = text ? JSON.parse(text) : null; } catch (err) { doc = null; }
    if (!res.ok) {
      onStatus(res.status);
      const e = (doc && doc.error) || {};
      throw new ApiError(e.code || "http_" + res.status, e.message || res.statusText, res.status);
    }
    setLive("ok", "Live");
    return doc;
  }

  document.addEventListener("htmx:configRequest", (e) => {
    const key = getKey();
    if (key) e.detail.headers.Authorization = "Bearer " + key;
  });
  // A tab nobody looks at asks nothing; it catches up when shown again.
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (document.hidden) e.preventDefault();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshAll();
  });
  document.addEventListener("htmx:responseError", (e) => onStatus(e.detail.xhr.status));
  document.addEventListener("htmx:sendError", () => onStatus(0));
  document.addEventListener("htmx:afterRequest", (e) => {
    if (e.detail.successful) setLive("ok", "Live");
  });

  // An unchanged answer is not swapped in: text selections, scroll and open tracebacks stay.
  const lastBody = new WeakMap();
  document.addEventListener("htmx:beforeSwap", (e) => {
    const target = e.detail.target;
    if (!e.detail.shouldSwap) return;
    if (lastBody.get(target) === e.detail.serverResponse) {
      e.detail.shouldSwap = false;
      return;
    }
    lastBody.set(target, e.detail.serverResponse);
    target._open = $$("details[open][data-key]", target).map((d) => d.dataset.key);
  });
  document.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    for (const key of target._open || []) {
      const d = target.querySelector(`details[data-key="${CSS.escape(key)}"]`);
      if (d) d.open = true;
    }
    decorate(target);
    if (target.matches("[data-selectable]")) applySelection(target);
    if (target.id === "overview") updateRates();
  });

  function refreshAll() {
    for (const el of $$("[data-live]")) htmx.trigger(el, "refresh");
  }

  // ---- times --------------------------------------------------------------------------
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

  function localText(date) {
    const today = new Date();
    return date.toDateString() === today.toDateString() ? timeFmt.format(date) : dateFmt.format(date);
  }

  function agoText(date) {
    const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }

  // how long something has been going on: "4.2 s", "3 min 05 s", "2 h 10 min"
  function sinceText(date) {
    const s = Math.max(0, (Date.now() - date.getTime()) / 1000);
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function decorate(root) {
    for (const t of $$("time[data-local]", root)) t.textContent = localText(new Date(t.dateTime));
    for (const t of $$("time[data-ago]", root)) t.textContent = agoText(new Date(t.dateTime));
    for (const t of $$("time[data-since]", root)) t.textContent = sinceText(new Date(t.dateTime));
    for (const f of $$("[data-fill]", root)) f.style.width = Math.min(100, Number(f.dataset.fill)) + "%";
  }
  setInterval(() => {
    for (const t of $$("time[data-ago]")) t.textContent = agoText(new Date(t.dateTime));
    for (const t of $$("time[data-since]")) t.textContent = sinceText(new Date(t.dateTime));
  }, 1000);

  // ---- toasts and confirmation ---------------------------------------------------------
  function toast(message, kind) {
    const box = document.createElement("div");
    box.className = "toast" + (kind === "error" ? " toast-error" : "");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = message;
    $("#toasts").append(box);
    setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
  }

  // Resolves true when the operator confirms. `body` is a list of DOM nodes.
  function confirmDialog({ title, body, ok, danger }) {
    const dialog = $("#confirm-dialog");
    $("#confirm-title").textContent = title;
    $("#confirm-body").replaceChildren(...body);
    const okButton = $("#confirm-ok");
    okButton.textContent = ok;
    okButton.className = "btn " + (danger ? "btn-danger" : "btn-primary");
    okButton.disabled = false;
    return new Promise((resolve) => {
      const done = (value) => {
        okButton.onclick = null; $("#confirm-cancel").onclick = null; dialog.onclose = null;
        if (dialog.open) dialog.close();
        resolve(value);
      };
      okButton.onclick = () => done(true);
      $("#confirm-cancel").onclick = () => done(false);
      dialog.onclose = () => done(false);
      dialog.showModal();
      okButton.focus();
    });
  }

  function para(text, className) {
    const p = document.createElement("p");
    if (className) p.className = className;
    p.textContent = text;
    return p;
  }

  function idList(ids, total) {
    const ul = document.createElement("ul");
    ul.className = "preview-list";
    for (const id of ids.slice(0, 50)) {
      const li = document.createElement("li");
      li.textContent = id;
      ul.append(li);
    }
    if (total > Math.min(ids.length, 50)) {
      const li = document.createElement("li");
      li.textContent = `… and ${(total - Math.min(ids.length, 50)).toLocaleString()} more`;
      ul.append(li);
    }
    return ul;
  }

  // ---- DLQ selection and bulk actions ----------------------------------------------
  const selected = new Set();

  function applySelection(root) {
    const boxes = $$("input[data-select]", root);
    const present = new Set(boxes.map((b) => b.value));
    for (const id of Array.from(selected)) if (!present.has(id)) selected.delete(id);
    for (const b of boxes) b.checked = selected.has(b.value);
    updateBulkbar();
  }

  function updateBulkbar() {
    const count = $("#selected-count");
    if (!count) return;
    const n = selected.size;
    count.textContent = n ? `${n} selected` : "No job selected";
    for (const b of $$('[data-action$="-selected"]')) b.disabled = n === 0;
    const all = $("input[data-select-all]");
    if (all) {
      const boxes = $$("input[data-select]");
      all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
      all.indeterminate = n > 0 && !all.checked;
    }
    const filters = $("#filters");
    const filtered = filters && ["queue", "type", "error_code"].some((k) => filters.elements[k] && filters.elements[k].value);
    for (const b of $$('[data-action$="-matching"]')) {
      b.disabled = !filtered;
      b.title = filtered ? "" : "Pick a queue, a type or an error code first";
    }
  }

  document.addEventListener("change", (e) => {
    const t = e.target;
    if (t.matches("input[data-select]")) {
      if (t.checked) selected.add(t.value); else selected.delete(t.value);
      updateBulkbar();
    } else if (t.matches("input[data-select-all]")) {
      for (const b of $$("input[data-select]")) {
        b.checked = t.checked;
        if (t.checked) selected.add(b.value); else selected.delete(b.value);
      }
      updateBulkbar();
    }
  });

  function selectionBody(kind) {
    const f = $("#filters");
    if (kind === "selected") return { ids: Array.from(selected) };
    const body = {};
    for (const k of ["queue", "type", "error_code"]) if (f.elements[k].value) body[k] = f.elements[k].value.trim();
    return body;
  }

  async function bulk(verb, kind) {
    const body = selectionBody(kind);
    const path = "/v1/dlq/" + verb;
    const preview = await api("POST", path, { ...body, dry_run: true });
    const count = verb === "redrive" ? preview.would_move : preview.would_purge;
    const nodes = [];
    if (!count) {
      nodes.push(para("No dead job matches: nothing would change."));
    } else {
      nodes.push(para(verb === "redrive"
        ? `${count.toLocaleString()} dead job${count === 1 ? "" : "s"} would go back to ${count === 1 ? "its" : "their"} queue, attempts reset:`
        : `${count.toLocaleString()} dead job${count === 1 ? "" : "s"} would be deleted:`));
      nodes.push(idList(preview.ids, count));
      if (verb === "purge") nodes.push(para("Purging cannot be undone.", "preview-warn"));
    }
    if (preview.skipped && preview.skipped.length) {
      nodes.push(para(`${preview.skipped.length} selected job${preview.skipped.length === 1 ? " is" : "s are"} no longer dead and will be skipped.`, "muted"));
    }
    const title = verb === "redrive" ? "Redrive dead jobs?" : "Purge dead jobs?";
    const okLabel = count ? `${verb === "redrive" ? "Redrive" : "Purge"} ${count.toLocaleString()} job${count === 1 ? "" : "s"}` : "Close";
    const go = await confirmDialog({ title, body: nodes, ok: okLabel, danger: verb === "purge" });
    if (!go || !count) return;
    const done = await api("POST", path, body);
    const n = verb === "redrive" ? done.moved : done.purged;
    toast(`${verb === "redrive" ? "Redrove" : "Purged"} ${n.toLocaleString()} job${n === 1 ? "" : "s"}.`);
    if (kind === "selected") selected.clear();
    updateBulkbar();
    refreshAll();
  }

  // ---- actions ---------------------------------------------------------------------------
  const ACTIONS = {
    async retry(el) {
      await api("POST", `/v1/jobs/${encodeURIComponent(el.dataset.job)}/retry`);
      toast("Job queued again.");
    },
    async cancel(el) {
      const running = el.dataset.running === "1";
      const ok = await confirmDialog({
        title: running ? "Stop this running job?" : "Cancel this job?",
        ok: running ? "Stop job" : "Cancel job", danger: true,
        body: [para(el.dataset.job, "mono"), para(running
          ? "Its worker is asked to stop it at its next heartbeat (an async handler is cancelled, a sync one sees ctx.cancelled); it then ends cancelled. You can retry it later."
          : "It will not run; you can retry it later.", "muted")],
      });
      if (!ok) return;
      const job = await api("POST", `/v1/jobs/${encodeURIComponent(el.dataset.job)}/cancel`);
      toast(job && job.state === "running"
        ? "Stop requested: the worker stops the job at its next heartbeat."
        : "Job cancelled.");
    },
    async pause(el) {
      await api("POST", `/v1/queues/${encodeURIComponent(el.dataset.queue)}/pause`);
      toast(`Queue ${el.dataset.queue} paused: workers take no new job from it.`);
    },
    async resume(el) {
      await api("POST", `/v1/queues/${encodeURIComponent(el.dataset.queue)}/resume`);
      toast(`Queue ${el.dataset.queue} resumed.`);
    },
    async "schedule-pause"(el) {
      await api("POST", `/v1/schedules/${encodeURIComponent(el.dataset.schedule)}/pause`);
      toast(`Schedule ${el.dataset.schedule} paused: no new tick fires.`);
    },
    async "schedule-resume"(el) {
      await api("POST", `/v1/schedules/${encodeURIComponent(el.dataset.schedule)}/resume`);
      toast(`Schedule ${el.dataset.schedule} resumed.`);
    },
    async "schedule-trigger"(el) {
      const job = await api("POST", `/v1/schedules/${encodeURIComponent(el.dataset.schedule)}/trigger`);
      toast(`Enqueued ${job.id}.`);
    },
    async "schedule-delete"(el) {
      const ok = await confirmDialog({
        title: "Delete this schedule?", ok: "Delete schedule", danger: true,
        body: [para(el.dataset.schedule, "mono"), para("No more ticks fire; the jobs it made stay.", "muted")],
      });
      if (!ok) return;
      await api("DELETE", `/v1/schedules/${encodeURIComponent(el.dataset.schedule)}`);
      toast(`Schedule ${el.dataset.schedule} deleted.`);
    },
    async "delete-webhook"(el) {
      const ok = await confirmDialog({
        title: "Delete this webhook subscription?", ok: "Delete subscription", danger: true,
        body: [para(el.dataset.url, "mono"), para(el.dataset.webhook, "mono muted"),
               para("No more deliveries; those not yet sent are skipped.", "muted")],
      });
      if (!ok) return;
      await api("DELETE", `/v1/webhooks/${encodeURIComponent(el.dataset.webhook)}`);
      toast("Webhook subscription deleted.");
    },
    "redrive-selected": () => bulk("redrive", "selected"),
    "purge-selected": () => bulk("purge", "selected"),
    "redrive-matching": () => bulk("redrive", "matching"),
    "purge-matching": () => bulk("purge", "matching"),
  };

  document.addEventListener("click", async (e) => {
    const el = e.target.closest("[data-action]");
    if (el && ACTIONS[el.dataset.action]) {
      e.preventDefault();
      el.classList.add("busy");
      try {
        await ACTIONS[el.dataset.action](el);
        refreshAll();
      } catch (err) {
        if (err.status !== 401) toast(err.message || String(err), "error");
      } finally {
        el.classList.remove("busy");
      }
      return;
    }
    const setter = e.target.closest("[data-set]");
    if (setter) {
      e.preventDefault();
      setFilter(setter.dataset.set, setter.dataset.value);
    }
  });

  // ---- filters ---------------------------------------------------------------------------
  function syncUrl(form) {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v && k !== "cursor") params.set(k, String(v));
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  function refreshFilters(form, keepCursor) {
    if (!keepCursor && form.elements.cursor) form.elements.cursor.value = "";
    syncUrl(form);
    updateBulkbar();
    htmx.trigger($(form.dataset.target), "refresh");
  }

  function setFilter(name, value) {
    const form = $("#filters");
    if (!form || !form.elements[name]) return;
    const field = form.elements[name];
    if (field.tagName === "SELECT" && value && !Array.from(field.options).some((o) => o.value === value)) {
      field.append(new Option(value, value));
    }
    field.value = value;
    refreshFilters(form, name === "cursor");
  }

  let filterTimer = 0;
  document.addEventListener("input", (e) => {
    const form = e.target.form;
    if (!form || !form.matches("[data-filters]")) return;
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => refreshFilters(form), 300);
  });
  document.addEventListener("submit", (e) => {
    if (e.target.matches("[data-filters]")) {
      e.preventDefault();
      refreshFilters(e.target);
    }
  });

  // ---- sampling: counts over time for the charts, the nav badge and the queue list -------
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
      const r = ConveyorChart.recent(samples, 60 * 1000, cell.dataset.rateQueue);
      cell.textContent = r ? ConveyorChart.fmtRate(r.rate) + "/s" : "—";
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
        api("GET", "/v1/queues/" + encodeURIComponent(name) + "/series?minutes=11")));
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
    const data = fromBroker ? ConveyorChart.fromSeries(seriesDocs) : ConveyorChart.buckets(samples);
    ConveyorChart.drawThroughput(through, data);
    ConveyorChart.drawFailure($("#chart-failure"), data);
    const r = fromBroker ? ConveyorChart.recentSeries(data) : ConveyorChart.recent(samples, 60 * 1000);
    $('[data-stat="rate"]').textContent = r ? ConveyorChart.fmtRate(r.rate) : "—";
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

  async function sample() {
    if (document.hidden) { setTimeout(sample, POLL_MS); return; }
    try {
      const doc = await api("GET", "/v1/queues?limit=" + SAMPLE_QUEUES);
      const samples = record(doc.items);
      updateCharts(samples);
      refreshSeries(doc.items);
      updateRates(samples);
      updateQueueOptions(doc.items);
      updateBadge(doc.items);
    } catch (err) {
      /* the mark in the top bar says what is wrong */
    } finally {
      setTimeout(sample, POLL_MS);
    }
  }

  // ---- start --------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("#key-form").addEventListener("submit", saveKey);
    $("#key-cancel").addEventListener("click", () => {
      keyDismissed = true;
      $("#key-dialog").close();
    });
    $("#key-forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      $("#key-dialog").close();
      location.reload();
    });
    $("#key-button").addEventListener("click", () => openKeyDialog(""));
    $("#key-button").textContent = getKey() ? "Key set" : "API key";
    decorate(document);
    updateBulkbar();
    updateCharts(loadSamples());
    sample();
  });
})();
