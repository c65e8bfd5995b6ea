// The API key dialog: the key is checked against /v1 before it is kept in sessionStorage.
import { $ } from "./dom.js";
import { dismissKey, forgetKey, getKey, setKey } from "./state.js";

export function openKeyDialog(message) {
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
  setKey(key);
  $("#key-dialog").close();
  location.reload();
}

export function startKeyDialog() {
  $("#key-form").addEventListener("submit", saveKey);
  $("#key-cancel").addEventListener("click", () => {
    dismissKey();
    $("#key-dialog").close();
  });
  $("#key-forget").addEventListener("click", () => {
    forgetKey();
    $("#key-dialog").close();
    location.reload();
  });
  $("#key-button").addEventListener("click", () => openKeyDialog(""));
  $("#key-button").textContent = getKey() ? "Key set" : "API key";
}
