// The cluster's pages: overview, agents, frameworks, roles, offers, maintenance.
import { html } from "./html.js";
import { ResourceChart } from "./chart.js";
import {
  ACTIVE_STATES, cpus, link, mem, percent, reservedRole, scalar, stateClass, when,
} from "./format.js";
import { TaskTable } from "./tasks.js";

export function Table({ head, rows, empty = "None", id }) {
  if (!rows.length) return html`<p class="empty">${empty}</p>`;
  return html`<table id=${id}><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead>
    <tbody>${rows}</tbody></table>`;
}

function Stat({ label, value, detail }) {
  return html`<div class="stat"><div class="stat-value">${value}</div>
    <div class="stat-label">${label}</div>${detail && html`<div class="stat-detail">${detail}</div>`}</div>`;
}

function frameworkName(store, id) {
  const f = store.frameworks.get(id) || store.completedFrameworks.get(id);
  return f ? f.framework_info.name : id;
}

export function agentName(store, id) {
  const a = store.agents.get(id);
  return a ? a.agent_info.hostname : id;
}

export function Overview({ store }) {
  const h = store.history;
  const last = (i) => (h[i].length ? h[i][h[i].length - 1] : 0);
  let active = 0;
  for (const t of store.tasks.values()) if (ACTIVE_STATES.has(t.state)) active += 1;
  return html`<section id="page-overview"><h1>Cluster</h1>
    <div class="stats">
      <${Stat} label="agents" value=${store.agents.size} />
      <${Stat} label="frameworks" value=${store.frameworks.size} />
      <${Stat} label="active tasks" value=${active} detail=${`${store.tasks.size} known`} />
      <${Stat} label="cpus used" value=${`${cpus(last(2))} / ${cpus(last(1))}`}
        detail=${`${percent(last(2), last(1))}, ${cpus(last(3))} offered`} />
      <${Stat} label="memory used" value=${`${mem(last(5))} / ${mem(last(4))}`}
        detail=${`${percent(last(5), last(4))}, ${mem(last(6))} offered`} />
    </div>
    <div class="charts">
      <${ResourceChart} title="CPUs" unit="cpus" columns=${[h[0], h[1], h[2], h[3]]} version=${store.version} />
      <${ResourceChart} title="Memory (MB)" unit="MB" columns=${[h[0], h[4], h[5], h[6]]} version=${store.version} />
    </div>
    <h2>Recent tasks</h2>
    <${TaskTable} store=${store} tasks=${[...store.tasks.values()]} limit=${10} />
  </section>`;
}

function resourceCells(entry) {
  const total = entry.total_resources;
  const used = entry.allocated_resources;
  const offered = entry.offered_resources;
  return html`
    <td>${cpus(scalar(used, "cpus"))} / ${cpus(scalar(total, "cpus"))}</td>
    <td>${mem(scalar(used, "mem"))} / ${mem(scalar(total, "mem"))}</td>
    <td>${cpus(scalar(offered, "cpus"))} cpus, ${mem(scalar(offered, "mem"))}</td>`;
}

export function Agents({ store }) {
  const rows = [...store.agents.values()].map((a) => {
    const id = a.agent_info.id.value;
    const state = a.deactivated ? "deactivated" : a.drain_info ? "draining" : a.active ? "active" : "inactive";
    return html`<tr key=${id}><td><a href=${link("agents", id)}>${id}</a></td>
      <td>${a.agent_info.hostname}</td><td>${a.pid}</td><td>${state}</td>${resourceCells(a)}
      <td>${when(a.registered_time)}</td></tr>`;
  });
  return html`<section id="page-agents"><h1>Agents</h1>
    <${Table} id="agents" head=${["ID", "Host", "Address", "State", "CPUs used", "Memory used", "Offered", "Registered"]}
      rows=${rows} empty="No agent has registered." /></section>`;
}

export function AgentDetail({ store, id }) {
  const a = store.agents.get(id);
  if (!a) return html`<section><h1>Agent</h1><p class="empty">No agent ${id} (yet).</p></section>`;
  const tasks = [...store.tasks.values()].filter((t) => t.agent_id && t.agent_id.value === id);
  const attributes = (a.agent_info.attributes || []).map((x) => `${x.name}=${x.text ? x.text.value : x.scalar ? x.scalar.value : ""}`);
  return html`<section id="page-agent"><h1>Agent ${a.agent_info.hostname}</h1>
    <dl><dt>ID</dt><dd>${id}</dd><dt>Address</dt><dd>${a.pid}</dd>
      <dt>Version</dt><dd>${a.version}</dd><dt>Attributes</dt><dd>${attributes.join(", ") || "none"}</dd>
      <dt>Registered</dt><dd>${when(a.registered_time)}</dd></dl>
    <${Table} head=${["CPUs used", "Memory used", "Offered"]} rows=${[html`<tr>${resourceCells(a)}</tr>`]} />
    <h2>Tasks</h2><${TaskTable} store=${store} tasks=${tasks} /></section>`;
}

export function Frameworks({ store }) {
  store.need("frameworks");
  const row = (f, done) => {
    const id = f.framework_info.id.value;
    let running = 0;
    for (const t of store.tasks.values()) {
      if (t.framework_id.value === id && ACTIVE_STATES.has(t.state)) running += 1;
    }
    const roles = f.framework_info.roles || (f.framework_info.role ? [f.framework_info.role] : ["*"]);
    return html`<tr key=${id}><td><a href=${link("frameworks", id)}>${id}</a></td>
      <td>${f.framework_info.name}</td><td>${roles.join(", ")}</td><td>${f.framework_info.principal || ""}</td>
      <td>${done ? "completed" : f.active ? "active" : "inactive"}</td><td>${running}</td>
      <td>${cpus(scalar(f.allocated_resources, "cpus"))}</td><td>${mem(scalar(f.allocated_resources, "mem"))}</td>
      <td>${when(f.registered_time)}</td></tr>`;
  };
  const head = ["ID", "Name", "Roles", "Principal", "State", "Active tasks", "CPUs", "Memory", "Registered"];
  return html`<section id="page-frameworks"><h1>Frameworks</h1>
    <${Table} id="frameworks" head=${head} rows=${[...store.frameworks.values()].map((f) => row(f, false))}
      empty="No framework is subscribed." />
    <h2>Completed</h2>
    <${Table} head=${head} rows=${[...store.completedFrameworks.values()].map((f) => row(f, true))} /></section>`;
}

export function FrameworkDetail({ store, id }) {
  const f = store.frameworks.get(id) || store.completedFrameworks.get(id);
  if (!f) return html`<section><h1>Framework</h1><p class="empty">No framework ${id}.</p></section>`;
  const tasks = [...store.tasks.values()].filter((t) => t.framework_id.value === id);
  return html`<section id="page-framework"><h1>Framework ${f.framework_info.name}</h1>
    <dl><dt>ID</dt><dd>${id}</dd><dt>User</dt><dd>${f.framework_info.user}</dd>
      <dt>Hostname</dt><dd>${f.framework_info.hostname || ""}</dd>
      <dt>Registered</dt><dd>${when(f.registered_time)}</dd></dl>
    <h2>Tasks</h2><${TaskTable} store=${store} tasks=${tasks} /></section>`;
}

function flat(map) {
  return Object.entries(map || {}).filter(([, v]) => typeof v === "number" && v)
    .map(([k, v]) => `${k}: ${k === "mem" || k === "disk" ? mem(v) : cpus(v)}`).join(", ") || "–";
}

export function Roles({ store }) {
  store.need("roles");
  // Reservations per role as the agents report them, including dynamic ones.
  const reserved = {};
  for (const a of store.agents.values()) {
    for (const r of a.total_resources || []) {
      const role = reservedRole(r);
      if (role === "*" || !r.scalar) continue;
      reserved[role] = reserved[role] || {};
      reserved[role][r.name] = (reserved[role][r.name] || 0) + r.scalar.value;
    }
  }
  const rows = (store.roles || []).map((r) => html`<tr key=${r.name}><td>${r.name}</td><td>${r.weight}</td>
    <td>${r.frameworks.length}</td><td>${flat(r.allocated)}</td><td>${flat(r.offered)}</td>
    <td>${flat(reserved[r.name] || r.reserved)}</td>
    <td>${flat(r.quota && r.quota.guarantee)}</td><td>${flat(r.quota && r.quota.limit)}</td>
    <td>${flat(r.quota && r.quota.consumed)}</td></tr>`);
  return html`<section id="page-roles"><h1>Roles</h1>
    ${store.roles === null ? html`<p class="loading">Loading…</p>` : html`<${Table} id="roles"
      head=${["Role", "Weight", "Frameworks", "Allocated", "Offered", "Reserved", "Quota guarantee", "Quota limit", "Consumed"]}
      rows=${rows} />`}</section>`;
}

export function Offers({ store }) {
  store.need("frameworks");
  const rows = [];
  for (const f of store.frameworks.values()) {
    for (const o of f.offers || []) {
      rows.push(html`<tr key=${o.id.value}><td>${o.id.value}</td><td>${f.framework_info.name}</td>
        <td><a href=${link("agents", o.agent_id.value)}>${o.hostname || agentName(store, o.agent_id.value)}</a></td>
        <td>${cpus(scalar(o.resources, "cpus"))}</td><td>${mem(scalar(o.resources, "mem"))}</td>
        <td>${mem(scalar(o.resources, "disk"))}</td>
        <td>${[...new Set((o.resources || []).map(reservedRole))].join(", ")}</td></tr>`);
    }
  }
  return html`<section id="page-offers"><h1>Offers</h1>
    <${Table} id="offers" head=${["Offer", "Framework", "Agent", "CPUs", "Memory", "Disk", "Roles"]}
      rows=${rows} empty="No outstanding offers." /></section>`;
}

export function Maintenance({ store }) {
  store.need("maintenance");
  const m = store.maintenance;
  if (!m) return html`<section id="page-maintenance"><h1>Maintenance</h1><p class="loading">Loading…</p></section>`;
  const machine = (id) => `${id.hostname || ""}${id.ip ? ` (${id.ip})` : ""}`;
  const windows = (m.schedule.windows || []).map((w, i) => {
    const start = Number(w.unavailability.start.nanoseconds) / 1e9;
    const duration = w.unavailability.duration ? Number(w.unavailability.duration.nanoseconds) / 1e9 : 0;
    return html`<tr key=${i}><td>${(w.machine_ids || []).map(machine).join(", ")}</td>
      <td>${when(start)}</td><td>${duration ? `${Math.round(duration)} s` : "open"}</td></tr>`;
  });
  const draining = (m.status.draining_machines || []).map((d) => html`<tr><td>${machine(d.id)}</td>
    <td>${(d.statuses || []).map((s) => `${frameworkName(store, s.framework_id.value)}: ${s.status}`).join(", ") || "no answers yet"}</td></tr>`);
  const down = (m.status.down_machines || []).map((d) => html`<tr><td>${machine(d)}</td></tr>`);
  return html`<section id="page-maintenance"><h1>Maintenance</h1>
    <h2>Schedule</h2><${Table} id="windows" head=${["Machines", "Starts", "Duration"]} rows=${windows} empty="No maintenance is scheduled." />
    <h2>Draining</h2><${Table} head=${["Machine", "Frameworks' answers to the inverse offers"]} rows=${draining} />
    <h2>Down</h2><${Table} head=${["Machine"]} rows=${down} /></section>`;
}

