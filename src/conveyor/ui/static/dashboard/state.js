// The dashboard's shared state, in one place: the API key this tab keeps, whether the
// operator dismissed the key prompt, the DLQ selection, and how the event stream is doing.
// Other modules read and change it only through these exports.
const KEY = "conveyor.apiKey";

export const getKey = () => sessionStorage.getItem(KEY) || "";
export const setKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

// Once the operator dismisses the key prompt, refused requests no longer reopen it (the top
// bar's button does).
let keyDismissed = false;
export const isKeyDismissed = () => keyDismissed;
export const dismissKey = () => { keyDismissed = true; };

// The ids of the dead jobs ticked on the DLQ page.
export const selected = new Set();

// The event stream: "none" (this page follows none), "connecting", "open", "idle" (no queue
// to follow yet), or "polling" (unavailable: the page polls slowly until it reconnects).
let stream = "none";
export const streamState = () => stream;
export const setStreamState = (state) => { stream = state; };
