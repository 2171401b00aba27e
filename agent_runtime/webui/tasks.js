// Tasks: the table every page uses, the tasks page (filtered by state, paged) and one task.
import { html } from "./html.js";
import { useState } from "preact/hooks";
import { TASK_STATES, cpus, link, mem, sandboxPath, scalar, stateClass, when } from "./format.js";
import { LogTail } from "./sandbox.js";

const PAGE = 100; // rows a page: a table of thousands is slow to draw and to read

function latest(task) {
  const statuses = task.statuses || [];
  return statuses.length ? statuses[statuses.length - 1].timestamp || 0 : 0;
}

function started(task) {
  const running = (task.statuses || []).find((s) => s.state === "TASK_RUNNING");
  return running ? running.timestamp : undefined;
}

export function sortTasks(tasks) {
  return tasks.sort((a, b) => latest(b) - latest(a));
}

function hostOf(store, task) {
  const agent = task.agent_id && store.agents.get(task.agent_id.value);
  return agent ? agent.agent_info.hostname : task.agent_id ? task.agent_id.value : "";
}

function frameworkOf(store, task) {
  const id = task.framework_id.value;
  const f = store.frameworks.get(id) || store.completedFrameworks.get(id);
  return f ? f.framework_info.name : id;
}

export function TaskTable({ store, tasks, limit = PAGE, offset = 0 }) {
  const shown = sortTasks(tasks).slice(offset, offset + limit);
  if (!shown.length) return html`<p class="empty">No tasks.</p>`;
  return html`<table class="tasks"><thead><tr><th>ID</th><th>Name</th><th>State</th><th>Framework</th>
    <th>Agent</th><th>CPUs</th><th>Memory</th><th>Started</th><th>Sandbox</th></tr></thead><tbody>
    ${shown.map((t) => {
      const f = t.framework_id.value;
      const id = t.task_id.value;
      const agent = t.agent_id ? t.agent_id.value : "";
      return html`<tr key=${`${f}/${id}`} data-task=${id}>
        <td><a href=${link("tasks", f, id)}>${id}</a></td><td>${t.name}</td>
        <td><span class=${stateClass(t.state)}>${t.state}</span></td>
        <td><a href=${link("frameworks", f)}>${frameworkOf(store, t)}</a></td>
        <td>${agent && html`<a href=${link("agents", agent)}>${hostOf(store, t)}</a>`}</td>
        <td>${cpus(scalar(t.resources, "cpus"))}</td><td>${mem(scalar(t.resources, "mem"))}</td>
        <td>${when(started(t))}</td>
        <td>${agent && html`<a href=${`${link("sandbox", agent)}?path=${encodeURIComponent(sandboxPath(t))}`}>files</a>`}</td>
      </tr>`;
    })}</tbody></table>`;
}

export function Tasks({ store, query }) {
  const [filter, setFilter] = useState("");
  const state = query.get("state") || "";
  const page = Math.max(0, Number(query.get("page")) || 0);
  const counts = {};
  for (const t of store.tasks.values()) counts[t.state] = (counts[t.state] || 0) + 1;
  const needle = filter.toLowerCase();
  const tasks = [...store.tasks.values()].filter((t) => (!state || t.state === state)
    && (!needle || t.task_id.value.toLowerCase().includes(needle) || (t.name || "").toLowerCase().includes(needle)));
  const pages = Math.max(1, Math.ceil(tasks.length / PAGE));
  const to = (params) => `#/tasks?${new URLSearchParams(params)}`;
  return html`<section id="page-tasks"><h1>Tasks</h1>
    <nav class="chips">
      <a class=${state ? "chip" : "chip chip-on"} href="#/tasks">all ${store.tasks.size}</a>
      ${TASK_STATES.filter((s) => counts[s]).map((s) => html`<a class=${s === state ? "chip chip-on" : "chip"}
        href=${to({ state: s })}><span class=${stateClass(s)}>${s}</span> ${counts[s]}</a>`)}
    </nav>
    <input class="filter" placeholder="filter by id or name" value=${filter}
      onInput=${(e) => setFilter(e.currentTarget.value)} />
    <${TaskTable} store=${store} tasks=${tasks} offset=${page * PAGE} />
    ${pages > 1 && html`<nav class="pager">
      ${page > 0 && html`<a href=${to({ state, page: page - 1 })}>← newer</a>`}
      <span>page ${page + 1} of ${pages}</span>
      ${page + 1 < pages && html`<a href=${to({ state, page: page + 1 })}>older →</a>`}</nav>`}
  </section>`;
}

export function TaskDetail({ store, frameworkId, taskId }) {
  const t = store.tasks.get(`${frameworkId}/${taskId}`);
  if (!t) return html`<section><h1>Task</h1><p class="empty">No task ${taskId} known.</p></section>`;
  const agent = t.agent_id ? t.agent_id.value : "";
  const sandbox = sandboxPath(t);
  return html`<section id="page-task"><h1>Task ${t.name} <span class=${stateClass(t.state)}>${t.state}</span></h1>
    <dl><dt>ID</dt><dd>${taskId}</dd><dt>Framework</dt><dd><a href=${link("frameworks", frameworkId)}>${frameworkOf(store, t)}</a></dd>
      <dt>Agent</dt><dd>${agent && html`<a href=${link("agents", agent)}>${hostOf(store, t)}</a>`}</dd>
      <dt>Resources</dt><dd>${cpus(scalar(t.resources, "cpus"))} cpus, ${mem(scalar(t.resources, "mem"))}</dd>
      <dt>Sandbox</dt><dd>${agent && html`<a href=${`${link("sandbox", agent)}?path=${encodeURIComponent(sandbox)}`}>${sandbox}</a>`}</dd></dl>
    <h2>Statuses</h2>
    <table><thead><tr><th>State</th><th>Time</th><th>Source</th><th>Reason</th><th>Message</th></tr></thead><tbody>
      ${(t.statuses || []).map((s, i) => html`<tr key=${i}><td><span class=${stateClass(s.state)}>${s.state}</span></td>
        <td>${when(s.timestamp)}</td><td>${s.source || ""}</td><td>${s.reason || ""}</td><td>${s.message || ""}</td></tr>`)}
    </tbody></table>
    ${agent && html`<h2>stdout</h2><${LogTail} agentId=${agent} path=${`${sandbox}/stdout`} />
      <h2>stderr</h2><${LogTail} agentId=${agent} path=${`${sandbox}/stderr`} />`}
  </section>`;
}
