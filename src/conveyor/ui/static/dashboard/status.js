// The connection mark in the top bar and the banner under it: what the last answer said,
// and whether this page follows the event stream or polls because it is unavailable.
import { $, $$ } from "./dom.js";
import { getKey, isKeyDismissed, streamState } from "./state.js";
import { openKeyDialog } from "./key.js";
import { FALLBACK_MS, POLL_S } from "./timing.js";

const FALLBACK_S = FALLBACK_MS / 1000;

function retryText() {
  return streamState() === "none" ? "this page retries every few seconds."
    : `this page reconnects and, meanwhile, refreshes every ${FALLBACK_S} s.`;
}

export function setLive(state, text, banner) {
  const live = $("#live");
  if (!live) return;
  if (state === "ok" && streamState() === "polling") {
    // the API answers but the event stream does not: say the page is only polling
    state = "polling";
    text = "Polling";
    banner = `Live updates are unavailable (the event stream GET /v1/events does not answer): this page refreshes every ${FALLBACK_S} s until it reconnects.`;
  }
  live.dataset.state = state;
  live.dataset.stream = streamState();
  if (streamState() === "none") live.title = `Refreshes every ${POLL_S} s`;
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

export function onStatus(status) {
  let text;
  if (status === 401) {
    const rejected = Boolean(getKey());
    text = rejected
      ? "The API rejected the API key this tab holds (401 unauthorized): set another one with the API key button."
      : "An API key is needed to show this: set one with the API key button.";
    setLive("locked", rejected ? "Key rejected" : "Key needed", text);
    if (!isKeyDismissed()) openKeyDialog(rejected ? "The API rejected that key: it is wrong or was revoked." : "");
  } else if (status === 503) {
    text = "The broker is unavailable (503): the API cannot reach Redis or the SQLite file. What you see may be out of date; " + retryText();
    setLive("down", "Broker unavailable", text);
  } else if (status === 0 || status >= 500) {
    text = status === 0
      ? "The API does not answer: it may be down or unreachable. What you see may be out of date; " + retryText()
      : `The API answered an error (${status}). ` + retryText().replace(/^t/, "T");
    setLive("down", "Disconnected", text);
  }
  if (text) sayInLoadingCards(text);
}
