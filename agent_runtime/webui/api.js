// Every request of the page goes to its own origin with the browser's credentials, so with
// HTTP authentication on the master the page sends what the operator signed in with.

export class AuthError extends Error {}

// Absolute on the origin: a page opened as http://user:secret@host/ would resolve a relative
// URL with those credentials in it, which fetch() refuses; the browser's cache of them for
// this origin is what sends them.
const here = (path) => new URL(path, location.origin).href;

async function answer(response) {
  if (response.status === 401) {
    throw new AuthError("The master asks for credentials: reload the page and sign in.");
  }
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}: ${text}`);
  return text ? JSON.parse(text) : null;
}

const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };

export async function call(type, fields = {}) {
  const response = await fetch(here("/api/v1"), {
    method: "POST", credentials: "include", headers: JSON_HEADERS,
    body: JSON.stringify({ type, ...fields }),
  });
  return answer(response);
}

export async function get(url) {
  return answer(await fetch(here(url), { credentials: "include", headers: { Accept: "application/json" } }));
}

// Records of a RecordIO stream: "<length in bytes>\n<that many bytes of JSON>", repeated.
// Lengths count bytes, not characters, so the buffer is kept as bytes until a record is whole.
export class RecordIO {
  constructor() { this.buffer = new Uint8Array(0); this.decoder = new TextDecoder(); }

  push(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    this.buffer = joined;
    const records = [];
    for (;;) {
      const newline = this.buffer.indexOf(10);
      if (newline < 0) break;
      const length = Number(this.decoder.decode(this.buffer.subarray(0, newline)));
      if (!Number.isSafeInteger(length) || length < 0) throw new Error("Malformed RecordIO length");
      if (this.buffer.length < newline + 1 + length) break;
      const body = this.buffer.subarray(newline + 1, newline + 1 + length);
      records.push(JSON.parse(this.decoder.decode(body)));
      this.buffer = this.buffer.slice(newline + 1 + length);
    }
    return records;
  }
}

// Reads the operator event stream until it ends; each event goes to onEvent.
export async function subscribe(onEvent, signal) {
  const response = await fetch(here("/api/v1"), {
    method: "POST", credentials: "include", headers: JSON_HEADERS,
    body: JSON.stringify({ type: "SUBSCRIBE" }), signal,
  });
  if (!response.ok) await answer(response);
  const reader = response.body.getReader();
  const records = new RecordIO();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const event of records.push(value)) onEvent(event);
  }
}

// A sandbox file call relayed by the master to the agent (agent_runtime/master/webui.py).
export function agentFiles(agentId, callName, params) {
  const query = new URLSearchParams(params).toString();
  return get(`/ui/agents/${encodeURIComponent(agentId)}/files/${callName}?${query}`);
}
