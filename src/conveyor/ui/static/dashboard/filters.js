// Filter forms: kept in the URL, applied 300 ms after typing stops, chips set one filter.
import { $ } from "./dom.js";
import { updateBulkbar } from "./dlq.js";

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

export function setFilter(name, value) {
  const form = $("#filters");
  if (!form || !form.elements[name]) return;
  const field = form.elements[name];
  if (field.tagName === "SELECT" && value && !Array.from(field.options).some((o) => o.value === value)) {
    field.append(new Option(value, value));
  }
  field.value = value;
  refreshFilters(form, name === "cursor");
}

export function startFilters() {
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
}
