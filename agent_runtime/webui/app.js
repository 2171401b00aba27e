// The page: a store fed by the operator event stream, a hash router, and the pages.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";
import { Store } from "./store.js";
import { TaskDetail, Tasks } from "./tasks.js";
import { Sandbox } from "./sandbox.js";
import {
  AgentDetail, Agents, FrameworkDetail, Frameworks, Maintenance, Offers, Overview, Roles,
} from "./views.js";

const NAV = [
  ["", "Overview"], ["agents", "Agents"], ["frameworks", "Frameworks"], ["roles", "Roles"],
  ["tasks", "Tasks"], ["offers", "Offers"], ["maintenance", "Maintenance"],
];

function route() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search || "") };
}

function Page({ store, parts, query }) {
  const [top, a, b] = parts;
  switch (top) {
    case "agents": return a ? html`<${AgentDetail} store=${store} id=${a} />` : html`<${Agents} store=${store} />`;
    case "frameworks": return a ? html`<${FrameworkDetail} store=${store} id=${a} />` : html`<${Frameworks} store=${store} />`;
    case "roles": return html`<${Roles} store=${store} />`;
    case "tasks": return a && b ? html`<${TaskDetail} store=${store} frameworkId=${a} taskId=${b} />`
      : html`<${Tasks} store=${store} query=${query} />`;
    case "sandbox": return html`<${Sandbox} agentId=${a} query=${query} />`;
    case "offers": return html`<${Offers} store=${store} />`;
    case "maintenance": return html`<${Maintenance} store=${store} />`;
    default: return html`<${Overview} store=${store} />`;
  }
}

const STATUS = {
  connecting: "connecting…", live: "live", reconnecting: "reconnecting…",
  error: "error", unauthorized: "sign-in needed",
};

function App({ store }) {
  const [, setVersion] = useState(0);
  const [where, setWhere] = useState(route());
  useEffect(() => store.listen(setVersion), []);
  useEffect(() => {
    const onHash = () => setWhere(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  useEffect(() => {
    // The first render that shows the cluster: what the browser test and the bench time.
    if (store.status === "live" && !performance.getEntriesByName("cluster-rendered").length) {
      performance.mark("cluster-rendered");
    }
  });
  const top = where.parts[0] || "";
  return html`<header><a class="brand" href="#/">mesos</a>
      <nav>${NAV.map(([key, label]) => html`<a class=${top === key ? "on" : ""} href=${`#/${key}`}>${label}</a>`)}</nav>
      <span id="status" class=${`conn conn-${store.status}`} title=${store.error || ""}>${STATUS[store.status]}</span>
    </header>
    ${store.error && html`<p class="banner" id="error">${store.error}</p>`}
    <main>${store.status === "connecting" && !store.error ? html`<p class="loading">Loading the cluster…</p>`
      : html`<${Page} store=${store} parts=${where.parts} query=${where.query} />`}</main>`;
}

const store = new Store();
window.clusterStore = store; // for the console and the browser test
const root = document.getElementById("app");
root.textContent = ""; // the static "Loading" line: Preact leaves DOM it did not make
render(html`<${App} store=${store} />`, root);
store.start();
