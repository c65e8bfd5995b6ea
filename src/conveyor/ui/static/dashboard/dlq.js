// The DLQ page: ticked jobs, the bulk bar, and bulk redrive / purge (a dry-run preview first).
import { api } from "./api.js";
import { confirmDialog, toast } from "./dialogs.js";
import { $, $$, idList, para } from "./dom.js";
import { onSwap, refreshAll } from "./refresh.js";
import { selected } from "./state.js";

function applySelection(root) {
  const boxes = $$("input[data-select]", root);
  const present = new Set(boxes.map((b) => b.value));
  for (const id of Array.from(selected)) if (!present.has(id)) selected.delete(id);
  for (const b of boxes) b.checked = selected.has(b.value);
  updateBulkbar();
}

export function updateBulkbar() {
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

function selectionBody(kind) {
  const f = $("#filters");
  if (kind === "selected") return { ids: Array.from(selected) };
  const body = {};
  for (const k of ["queue", "type", "error_code"]) if (f.elements[k].value) body[k] = f.elements[k].value.trim();
  return body;
}

export async function bulk(verb, kind) {
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

export function startSelection() {
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
  onSwap((target) => { if (target.matches("[data-selectable]")) applySelection(target); });
  updateBulkbar();
}
