// The cluster as the page knows it: the SUBSCRIBED state of the operator event stream, kept
// current by the stream's events, plus what has no event (resources in use and offered,
// offers, roles, maintenance), polled every few seconds while the tab is visible.
import { AuthError, call, get, subscribe } from "./api.js";
import { scalar } from "./format.js";

const POLL_MS = 2000;
const HISTORY = 1800; // samples kept for the charts: an hour at one per two seconds
const RETRY_MS = 2000;

export const taskKey = (frameworkId, taskId) => `${frameworkId}/${taskId}`;

export class Store {
  constructor() {
    this.agents = new Map();
    this.frameworks = new Map();
    this.completedFrameworks = new Map();
    this.tasks = new Map();
    // Columns for uPlot: time, then cpus and mem as total / used / offered.
    this.history = [[], [], [], [], [], [], []];
    this.roles = null;
    this.maintenance = null;
    this.status = "connecting";
    this.error = null;
    this.lastEvent = 0;
    this.seen = {}; // events by type since the page loaded
    this.version = 0;
    this.listeners = new Set();
    this.pending = false;
    this.needs = new Set(); // what the page on screen polls for, besides the agents
  }

  listen(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  // Renders once per frame however many events arrived in it.
  changed() {
    this.version += 1;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      for (const fn of this.listeners) fn(this.version);
    });
  }

  fail(error) {
    this.status = error instanceof AuthError ? "unauthorized" : "error";
    this.error = String(error.message || error);
    this.changed();
  }

  // The operator event stream ------------------------------------------------------------
  apply(event) {
    this.lastEvent = Date.now();
    this.seen[event.type] = (this.seen[event.type] || 0) + 1;
    const handler = HANDLERS[event.type];
    if (handler) handler(this, event);
    this.changed();
  }

  reset(state) {
    this.agents.clear(); this.frameworks.clear(); this.completedFrameworks.clear();
    this.tasks.clear();
    const tasks = state.get_tasks || {};
    for (const list of ["tasks", "unreachable_tasks", "completed_tasks"]) {
      for (const task of tasks[list] || []) this.putTask(task);
    }
    const frameworks = state.get_frameworks || {};
    for (const f of frameworks.frameworks || []) this.frameworks.set(f.framework_info.id.value, f);
    for (const f of frameworks.completed_frameworks || []) {
      this.completedFrameworks.set(f.framework_info.id.value, f);
    }
    this.setAgents((state.get_agents || {}).agents || []);
    this.status = "live";
    this.error = null;
  }

  putTask(task) { this.tasks.set(taskKey(task.framework_id.value, task.task_id.value), task); }

  setAgents(agents) {
    this.agents.clear();
    for (const a of agents) this.agents.set(a.agent_info.id.value, a);
    this.sample();
  }

  sample() {
    const agents = [...this.agents.values()];
    const sum = (field, name) => agents.reduce((n, a) => n + scalar(a[field], name), 0);
    const row = [Date.now() / 1000,
      sum("total_resources", "cpus"), sum("allocated_resources", "cpus"),
      sum("offered_resources", "cpus"),
      sum("total_resources", "mem"), sum("allocated_resources", "mem"),
      sum("offered_resources", "mem")];
    row.forEach((value, i) => {
      this.history[i].push(value);
      if (this.history[i].length > HISTORY) this.history[i].shift();
    });
  }

  async stream() {
    // A stream left open when the page goes keeps one of the browser's six connections to
    // the master: a few reloads and the next page would wait for a free one.
    const leaving = new AbortController();
    addEventListener("pagehide", () => leaving.abort());
    for (;;) {
      try {
        this.status = this.status === "live" ? "reconnecting" : this.status;
        await subscribe((event) => this.apply(event), leaving.signal);
        if (leaving.signal.aborted) return;
        this.status = "reconnecting";
        this.changed();
      } catch (error) {
        if (leaving.signal.aborted) return;
        this.fail(error);
        if (error instanceof AuthError) return;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  // Polling what has no event --------------------------------------------------------------
  async poll() {
    if (document.hidden || this.status === "unauthorized") return;
    try {
      const agents = await call("GET_AGENTS");
      this.setAgents(agents.get_agents.agents || []);
      if (this.needs.has("frameworks")) {
        const answer = await call("GET_FRAMEWORKS");
        for (const f of answer.get_frameworks.frameworks || []) {
          this.frameworks.set(f.framework_info.id.value, f);
        }
      }
      if (this.needs.has("roles")) this.roles = (await get("/master/roles")).roles;
      if (this.needs.has("maintenance")) {
        const [schedule, status] = await Promise.all(
          [call("GET_MAINTENANCE_SCHEDULE"), call("GET_MAINTENANCE_STATUS")]);
        this.maintenance = {
          schedule: schedule.get_maintenance_schedule.schedule,
          status: status.get_maintenance_status.status,
        };
      }
      this.changed();
    } catch (error) {
      this.fail(error);
    }
  }

  need(what) {
    if (this.needs.has(what)) return;
    this.needs.add(what);
    this.poll();
  }

  start() {
    this.stream();
    setInterval(() => this.poll(), POLL_MS);
  }
}

const HANDLERS = {
  SUBSCRIBED: (s, e) => s.reset(e.subscribed.get_state || {}),
  TASK_ADDED: (s, e) => s.putTask(e.task_added.task),
  TASK_UPDATED: (s, e) => {
    const update = e.task_updated;
    const status = update.status;
    const frameworkId = update.framework_id ? update.framework_id.value : "";
    const key = taskKey(frameworkId, status.task_id.value);
    const known = s.tasks.get(key);
    const task = known || { task_id: status.task_id, framework_id: { value: frameworkId },
                            agent_id: status.agent_id, name: status.task_id.value, statuses: [] };
    task.state = update.state;
    task.status_update_state = status.state;
    task.statuses = [...(task.statuses || []), status];
    s.tasks.set(key, task);
  },
  AGENT_ADDED: (s, e) => {
    s.agents.set(e.agent_added.agent.agent_info.id.value, e.agent_added.agent);
    s.sample();
  },
  AGENT_REMOVED: (s, e) => { s.agents.delete(e.agent_removed.agent_id.value); s.sample(); },
  FRAMEWORK_ADDED: (s, e) => {
    const f = e.framework_added.framework;
    s.frameworks.set(f.framework_info.id.value, f);
  },
  FRAMEWORK_UPDATED: (s, e) => {
    const f = e.framework_updated.framework;
    s.frameworks.set(f.framework_info.id.value, f);
  },
  FRAMEWORK_REMOVED: (s, e) => {
    const info = e.framework_removed.framework_info;
    const known = s.frameworks.get(info.id.value);
    s.frameworks.delete(info.id.value);
    s.completedFrameworks.set(info.id.value, known ? { ...known, active: false } : { framework_info: info });
  },
  HEARTBEAT: () => {},
};
