// Calls to /v1 with the tab's key; a refused or failed call updates the connection mark.
import { getKey } from "./state.js";
import { onStatus, setLive } from "./status.js";

export class ApiError extends Error {
  constructor(code, message, status) { super(message); this.code = code; this.status = status; }
}

// `Authorization: Bearer <key>` when this tab keeps a key, plus `extra`.
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = getKey();
  if (key) headers.Authorization = "Bearer " + key;
  return headers;
}

export async function api(method, path, body) {
  const headers = authHeaders({ Accept: "application/json" });
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
