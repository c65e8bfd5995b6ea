// Times in the reader's zone ("14:02:11"), ages ("3 min ago"), run times ("4.2 s"), and the
// fill of bars; ages and run times tick every second.
import { $$ } from "./dom.js";

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

function tick(root) {
  for (const t of $$("time[data-ago]", root)) t.textContent = agoText(new Date(t.dateTime));
  for (const t of $$("time[data-since]", root)) t.textContent = sinceText(new Date(t.dateTime));
}

export function decorate(root) {
  for (const t of $$("time[data-local]", root)) t.textContent = localText(new Date(t.dateTime));
  tick(root);
  for (const f of $$("[data-fill]", root)) f.style.width = Math.min(100, Number(f.dataset.fill)) + "%";
}

export function startClock() {
  setInterval(() => tick(document), 1000);
}
