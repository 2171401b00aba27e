// The sandbox browser and the live log tail, through the master's relay of the agent's
// /files/browse and /files/read (agent_runtime/master/webui.py).
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { agentFiles } from "./api.js";
import { bytes, link } from "./format.js";

const TAIL_START = 64 * 1024; // bytes shown from the end when a file is opened
const CHUNK = 64 * 1024; // bytes read a poll
const KEEP = 512 * 1024; // characters kept on screen
const TAIL_MS = 1000;

// Follows a file as `tail -f` would. Offsets are bytes, the agent answers text, so each poll
// asks the size first (offset=-1) and then reads a known number of bytes from where it was.
export function LogTail({ agentId, path }) {
  const [text, setText] = useState("");
  const [error, setError] = useState(null);
  const pre = useRef(null);
  useEffect(() => {
    let offset = null;
    let stopped = false;
    let timer = null;
    const tick = async () => {
      try {
        const size = (await agentFiles(agentId, "read", { path, offset: -1 })).offset;
        if (offset === null || size < offset) offset = Math.max(0, size - TAIL_START);
        if (size > offset) {
          const length = Math.min(size - offset, CHUNK);
          const answer = await agentFiles(agentId, "read", { path, offset, length });
          offset += length;
          if (!stopped && answer.data) setText((old) => (old + answer.data).slice(-KEEP));
        }
        setError(null);
      } catch (e) {
        setError(String(e.message || e));
      }
      if (!stopped) timer = setTimeout(tick, TAIL_MS);
    };
    setText("");
    tick();
    return () => { stopped = true; clearTimeout(timer); };
  }, [agentId, path]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [text]);
  return html`<div class="tail">
    ${error && html`<p class="error">${error}</p>`}
    <pre class="log" ref=${pre} data-path=${path}>${text}</pre></div>`;
}

export function Sandbox({ agentId, query }) {
  const path = query.get("path") || "";
  const file = query.get("file") || "";
  const [entries, setEntries] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    setEntries(null);
    setError(null);
    agentFiles(agentId, "browse", { path })
      .then((list) => live && setEntries(list))
      .catch((e) => live && setError(String(e.message || e)));
    return () => { live = false; };
  }, [agentId, path]);
  const here = (params) => `${link("sandbox", agentId)}?${new URLSearchParams(params)}`;
  const parts = path.split("/").filter(Boolean);
  const up = parts.length > 1 ? "/" + parts.slice(0, -1).join("/") : null;
  return html`<section id="page-sandbox"><h1>Sandbox</h1>
    <p class="path">${path} ${up && html`<a href=${here({ path: up })}>(up)</a>`}</p>
    ${error && html`<p class="error">${error}</p>`}
    ${entries === null && !error && html`<p class="loading">Loading…</p>`}
    ${entries && html`<table id="files"><thead><tr><th>Mode</th><th>Name</th><th>Size</th><th>Modified</th></tr></thead>
      <tbody>${entries.map((e) => {
        const name = e.path.split("/").pop();
        const dir = e.mode.startsWith("d");
        const target = dir ? here({ path: `${path}/${name}` }) : here({ path, file: name });
        return html`<tr key=${name}><td><code>${e.mode}</code></td><td><a href=${target}>${name}${dir ? "/" : ""}</a></td>
          <td>${dir ? "" : bytes(e.size)}</td><td>${new Date(e.mtime * 1000).toLocaleString()}</td></tr>`;
      })}</tbody></table>`}
    ${file && html`<h2>${file}</h2>
      <${LogTail} agentId=${agentId} path=${`${path}/${file}`} />`}
  </section>`;
}
