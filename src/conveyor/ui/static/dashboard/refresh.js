// htmx: every request carries the key; a hidden tab asks nothing (it catches up when shown);
// an unchanged answer is not swapped in (text selections, scroll and open tracebacks stay);
// `refreshSoon` refreshes a live part at most once every COALESCE_MS however many events ask.
import { $$ } from "./dom.js";
import { getKey } from "./state.js";
import { onStatus, setLive } from "./status.js";
import { COALESCE_MS, coalesced } from "./timing.js";

const swapHooks = [];
// `fn(target)` after each swap of a part (dates, selection, rates, the job page's logs)
export const onSwap = (fn) => { swapHooks.push(fn); };

export function refreshAll() {
  for (const el of $$("[data-live]")) htmx.trigger(el, "refresh");
}

const pending = new WeakMap();
export function refreshSoon(el) {
  let run = pending.get(el);
  if (!run) {
    run = coalesced(() => htmx.trigger(el, "refresh"), COALESCE_MS);
    pending.set(el, run);
  }
  run();
}

export function startHtmx() {
  document.addEventListener("htmx:configRequest", (e) => {
    const key = getKey();
    if (key) e.detail.headers.Authorization = "Bearer " + key;
  });
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
    for (const fn of swapHooks) fn(target);
  });
}
