// Buttons with `data-action`: each a /v1 call (with a confirmation where it cannot be
// undone), then a refresh; `data-set` chips set a filter.
import { api } from "./api.js";
import { confirmDialog, toast } from "./dialogs.js";
import { para } from "./dom.js";
import { bulk } from "./dlq.js";
import { setFilter } from "./filters.js";
import { refreshAll } from "./refresh.js";

const path = (kind, name, verb) => `/v1/${kind}/${encodeURIComponent(name)}` + (verb ? "/" + verb : "");

const ACTIONS = {
  async retry(el) {
    await api("POST", path("jobs", el.dataset.job, "retry"));
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
    const job = await api("POST", path("jobs", el.dataset.job, "cancel"));
    toast(job && job.state === "running"
      ? "Stop requested: the worker stops the job at its next heartbeat."
      : "Job cancelled.");
  },
  async pause(el) {
    await api("POST", path("queues", el.dataset.queue, "pause"));
    toast(`Queue ${el.dataset.queue} paused: workers take no new job from it.`);
  },
  async resume(el) {
    await api("POST", path("queues", el.dataset.queue, "resume"));
    toast(`Queue ${el.dataset.queue} resumed.`);
  },
  async "schedule-pause"(el) {
    await api("POST", path("schedules", el.dataset.schedule, "pause"));
    toast(`Schedule ${el.dataset.schedule} paused: no new tick fires.`);
  },
  async "schedule-resume"(el) {
    await api("POST", path("schedules", el.dataset.schedule, "resume"));
    toast(`Schedule ${el.dataset.schedule} resumed.`);
  },
  async "schedule-trigger"(el) {
    const job = await api("POST", path("schedules", el.dataset.schedule, "trigger"));
    toast(`Enqueued ${job.id}.`);
  },
  async "schedule-delete"(el) {
    const ok = await confirmDialog({
      title: "Delete this schedule?", ok: "Delete schedule", danger: true,
      body: [para(el.dataset.schedule, "mono"), para("No more ticks fire; the jobs it made stay.", "muted")],
    });
    if (!ok) return;
    await api("DELETE", path("schedules", el.dataset.schedule));
    toast(`Schedule ${el.dataset.schedule} deleted.`);
  },
  async "delete-webhook"(el) {
    const ok = await confirmDialog({
      title: "Delete this webhook subscription?", ok: "Delete subscription", danger: true,
      body: [para(el.dataset.url, "mono"), para(el.dataset.webhook, "mono muted"),
             para("No more deliveries; those not yet sent are skipped.", "muted")],
    });
    if (!ok) return;
    await api("DELETE", path("webhooks", el.dataset.webhook));
    toast("Webhook subscription deleted.");
  },
  "redrive-selected": () => bulk("redrive", "selected"),
  "purge-selected": () => bulk("purge", "selected"),
  "redrive-matching": () => bulk("redrive", "matching"),
  "purge-matching": () => bulk("purge", "matching"),
};

export function startActions() {
  document.addEventListener("click", async (e) => {
    const el = e.target.closest("[data-action]");
    if (el && Object.hasOwn(ACTIONS, el.dataset.action)) {
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
}
