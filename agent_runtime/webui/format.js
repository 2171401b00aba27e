// Small formatting helpers shared by the pages.

// The sum of a scalar resource (cpus, mem, disk, gpus) in a list of v1 Resource messages.
export function scalar(resources, name) {
  let total = 0;
  for (const r of resources || []) {
    if (r.name === name && r.scalar) total += r.scalar.value;
  }
  return total;
}

// The role a resource is reserved for (the last of its refinements), or "*".
export function reservedRole(resource) {
  const reservations = resource.reservations || [];
  if (reservations.length) return reservations[reservations.length - 1].role || "*";
  return resource.role || "*";
}

export function cpus(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

export function mem(megabytes) {
  if (megabytes >= 1024 * 1024) return `${(megabytes / 1024 / 1024).toFixed(1)} TB`;
  if (megabytes >= 1024) return `${(megabytes / 1024).toFixed(1)} GB`;
  return `${Math.round(megabytes)} MB`;
}

export function bytes(count) {
  return count >= 1024 ? mem(count / 1024 / 1024) : `${count} B`;
}

export function percent(part, whole) {
  return whole > 0 ? `${Math.round((100 * part) / whole)}%` : "–";
}

// TimeInfo {nanoseconds} or a TaskStatus timestamp in seconds, as local time.
export function when(value) {
  if (value === undefined || value === null) return "";
  const seconds = typeof value === "object" ? Number(value.nanoseconds || 0) / 1e9 : value;
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}

export function stateClass(state) {
  const s = (state || "").replace("TASK_", "").toLowerCase();
  return `state state-${s}`;
}

export const TASK_STATES = [
  "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED",
  "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
  "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
];

export const ACTIVE_STATES = new Set(["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"]);

// Where a task's sandbox is: the agent's virtual path of its executor's latest run. A command
// task's executor is named after the task.
export function sandboxPath(task) {
  const reported = (task.statuses || []).find((status) => status.executor_id);
  const executor = task.executor_id ? task.executor_id.value
    : reported ? reported.executor_id.value : task.task_id.value;
  return `/frameworks/${task.framework_id.value}/executors/${executor}/runs/latest`;
}

export function link(...parts) {
  return "#/" + parts.map(encodeURIComponent).join("/");
}
