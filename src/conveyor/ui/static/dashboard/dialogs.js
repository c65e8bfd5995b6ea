// Toasts and the confirmation dialog.
import { $ } from "./dom.js";

export function toast(message, kind) {
  const box = document.createElement("div");
  box.className = "toast" + (kind === "error" ? " toast-error" : "");
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = message;
  $("#toasts").append(box);
  setTimeout(() => box.remove(), kind === "error" ? 8000 : 4000);
}

// Resolves true when the operator confirms. `body` is a list of DOM nodes.
export function confirmDialog({ title, body, ok, danger }) {
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
