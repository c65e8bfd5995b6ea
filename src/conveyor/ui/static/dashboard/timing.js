// How often the parts that have no events ask again, in one place (the texts quote them).
export const POLL_S = 5;           // workers, webhooks and schedules pages: htmx `every 5s`
export const SAMPLE_MS = 5000;     // counts for the charts, the nav badge and the rates
export const FALLBACK_MS = 10000;  // pages that follow events, while the stream is unavailable
export const COALESCE_MS = 500;    // at most one refresh of a part per this, however many events

// `fn` at most once every `ms`, however often the result is called: the first call runs it
// at once (or as soon as `ms` has passed since the last run), later calls until then are one.
export function coalesced(fn, ms) {
  let timer = 0;
  let last = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = 0;
      last = Date.now();
      fn();
    }, Math.max(0, last + ms - Date.now()));
  };
}
