// A Server-Sent Events reader over a fetch() body (EventSource cannot send the
// Authorization header). Follows the parsing rules of the HTML standard: lines end with
// CRLF, LF or CR; `field: value` (one leading space dropped); `:` starts a comment; a blank
// line dispatches. Yields {type, data, id}, `id` being the last event id seen so far.
function* lines(text) {
  let start = 0;
  for (;;) {
    const end = text.indexOf("\n", start);
    if (end < 0) return text.slice(start);
    yield text.slice(start, end);
    start = end + 1;
  }
}

export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let carriageReturn = false; // a chunk ended with CR: the next may start with its LF
  let type = "", data = [], id = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let text = (carriageReturn ? "\r" : "") + value;
      carriageReturn = text.endsWith("\r");
      if (carriageReturn) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      const it = lines(buffer);
      for (let step = it.next(); ; step = it.next()) {
        if (step.done) { buffer = step.value; break; }
        const line = step.value;
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), id };
          type = ""; data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) id = val;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // the consumer stopped: close the connection
  }
}
