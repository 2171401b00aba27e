"""Command-container launch latency, throughput and memory per task, against doing it by hand.

A real master and agent (``tests/cluster.py``), the agent with ISOLATION (below), a cgroups root
of its own and ``GLOG_v=1`` (it logs when a task reaches it and when its TASK_RUNNING does):
(a) ``--runs`` sequential launches: the agent's LAUNCH->TASK_RUNNING against, interleaved, the
    same by hand (mkdir the cgroups, write cpu.shares and memory.limit_in_bytes, a shell joins
    them and execs ``unshare --pid --mount --fork -- sh -c 'printf x; CMD'``, until the byte);
(b) ``--tasks`` tasks as fast as offers allow: containers/s to the last RUNNING and FINISHED;
(c) ``--sleepers`` ``sleep 600`` tasks running: the executors' PSS plus the PSS growth of the
    master, agent and fork server, per task (MemAvailable as a cross-check); then all killed.
Run as root: ``.venv/bin/python bench/container_launch.py [--runs 40] [--tasks 200]
[--sleepers 100] [--json out.json]``; a non-zero exit means the bench broke, not a target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any
from unittest import mock

BENCH = os.path.dirname(os.path.abspath(__file__))
# bench/ is no package: its launch.py is the module "launch" (as mypy, given bench/, names it).
sys.path[:0] = [path for path in (os.path.dirname(BENCH), BENCH) if path not in sys.path]

import launch  # noqa: E402
import psutil  # noqa: E402

from agent_runtime.containerizer.cgroups import CgroupsV1  # noqa: E402
from agent_runtime.proto import mesos_pb2  # noqa: E402
from agent_runtime.scheduler.client import SchedulerClient  # noqa: E402
from tests.harness.cluster import Cluster  # noqa: E402

ISOLATION = "cgroups/cpu,cgroups/mem,filesystem/linux,namespaces/pid"
HIERARCHY = "/sys/fs/cgroup"
MAX_RATIO, MIN_RATE, MAX_MB = 3, 50, 5  # x baseline, containers/s, MB
MB = 1024 * 1024
SETTLE = 0.2  # seconds of quiet before each timed launch
LOG_TIME = re.compile(r"task (\S+): (run|TASK_RUNNING from its executor) at (\d+\.\d+)")
# The by-hand container: join both cgroups, then new pid and mount namespaces, then the command.
JOIN = 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec unshare --pid --mount --fork -- "$@"'
RUNNING, FINISHED = launch.RUNNING, launch.FINISHED
p50, percentile = launch.p50, launch.percentile
TPUT_FIELDS = ("finished", "other", "accepts", "max_per_accept")


async def settle() -> None:
    """Start each timed launch from the same state: the previous one's teardown (executor
    exit, cgroup removal, status updates) done, the machine idle. Without it the teardown of
    ours lands on the next by-hand launch (measured: 12 ms instead of 4). An idle vCPU is slow
    to wake (the by-hand launch takes 3.3 ms back to back, 9.6 ms after 0.2 s idle), so both
    sides pay that, equally."""
    await asyncio.sleep(SETTLE)


def remove_root(root: str) -> None:
    """Kill whatever is left in ``root``'s cgroups, in every controller, and remove them."""
    cgroups = CgroupsV1(HIERARCHY)
    for controller in sorted(os.listdir(HIERARCHY)):
        if os.path.isdir(cgroups.path(controller, root)):
            for cgroup in [f"{root}/{c}" for c in cgroups.children(controller, root)] + [root]:
                with contextlib.suppress(Exception):
                    cgroups.kill_all(controller, cgroup)
                    cgroups.remove(controller, cgroup)


def containers(root: str) -> list[str]:
    return CgroupsV1(HIERARCHY).children("memory", root)


def baseline_launch(root: str, name: str, command: str, mem_mb: int, cpus: float,
                    cwd: str) -> float:
    """Seconds from the first mkdir to reading the command's first byte; then clean up."""
    cgroups, cgroup = CgroupsV1(HIERARCHY), f"{root}/{name}"
    started = time.perf_counter()
    for controller, control, value in (("cpu", "cpu.shares", max(2, int(1024 * cpus))),
                                       ("memory", "memory.limit_in_bytes", max(32, mem_mb) * MB)):
        cgroups.create(controller, cgroup)
        cgroups.write(controller, cgroup, control, str(value))
    procs = [cgroups.path(c, f"{cgroup}/cgroup.procs") for c in ("cpu", "memory")]
    process = subprocess.Popen(
        ["/bin/sh", "-c", JOIN, "sh", *procs, "/bin/sh", "-c", f"printf x; {command}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, cwd=cwd, start_new_session=True,
        close_fds=True)
    assert process.stdout is not None
    try:
        byte = os.read(process.stdout.fileno(), 1)
        elapsed = time.perf_counter() - started
        if byte != b"x":
            raise RuntimeError(f"baseline container wrote {byte!r}, exit {process.wait()}")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        process.wait()
        process.stdout.close()
        for controller in ("cpu", "memory"):
            cgroups.kill_all(controller, cgroup)
            cgroups.remove(controller, cgroup)
    return elapsed


def smaps(pid: int) -> dict[str, int]:
    """Pss, Rss and private (USS) bytes of a process; zeros when it is gone."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[key] = int(rest.split()[0]) * 1024
    return {"pss": fields.get("Pss", 0), "rss": fields.get("Rss", 0),
            "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)}


def mem_available() -> int:
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle
                    if line.startswith("MemAvailable:"))


def container_pids(root: str) -> tuple[list[int], list[int]]:
    """(runtime, task) pids: a container's process with its parent outside it is the executor."""
    runtime: list[int] = []
    tasks: list[int] = []
    for name in containers(root):
        pids = set(CgroupsV1(HIERARCHY).procs("memory", f"{root}/{name}"))
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                (tasks if psutil.Process(pid).ppid() in pids else runtime).append(pid)
    return runtime, tasks


def daemon_pss(cluster: Cluster, exclude: set[int]) -> dict[str, int]:
    """PSS of the master, the agent and the agent's descendants not in ``exclude``."""
    agent = psutil.Process(cluster.processes["agent0"].pid)
    others = [p.pid for p in agent.children(recursive=True) if p.pid not in exclude]
    return {"master": smaps(cluster.processes["master"].pid)["pss"],
            "agent": smaps(agent.pid)["pss"],
            "fork server (agent's other children)": sum(smaps(pid)["pss"] for pid in others)}


def agent_log_times(path: str) -> dict[str, tuple[float, float]]:
    """task id -> (the agent's run_task, its executor's TASK_RUNNING reaching the agent)."""
    runs, running = dict[str, float](), dict[str, float]()
    with open(path, errors="replace") as handle:
        for match in LOG_TIME.finditer(handle.read()):
            (runs if match[2] == "run" else running).setdefault(match[1], float(match[3]))
    return {task: (runs[task], running[task]) for task in runs if task in running}


async def wait_containers_gone(root: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while containers(root):
        if time.monotonic() > deadline:
            raise TimeoutError(f"containers {containers(root)} still there after {timeout:g}s")
        await asyncio.sleep(0.01)


async def run_latency(sched: launch.BenchScheduler, args: argparse.Namespace,
                      out: dict[str, Any], scratch: str) -> None:
    for index in range(args.warmup + args.runs):
        # Each side starts on a quiet machine: the previous launch's teardown (executor exit,
        # cgroup removal, status updates) would otherwise land on the next one, and it lands
        # harder on the by-hand side (measured: 12 ms instead of 4 ms without the pause).
        await settle()
        base = baseline_launch(args.base_root, f"b{index}", args.command, args.mem, args.cpus,
                               scratch)  # A: by hand, while the cluster is idle
        await settle()
        offers = await sched.take_offers(args.timeout)
        (task_id,) = await sched.launch(offers, 1, "lat")  # B: ours
        times = sched.tasks[task_id]
        await sched.wait_until(times.is_done, args.timeout, f"task {task_id} to finish")
        if times.terminal != FINISHED or RUNNING not in times.received:
            raise RuntimeError(f"task {task_id} ended {launch.state_name(times.terminal)}"
                               f" ({times.message})")
        await wait_containers_gone(args.root, args.timeout)  # launches never overlap
        if index >= args.warmup:
            out["latency_ids"].append(task_id)
            out["baseline_ms"].append(base * 1000)


async def run_memory(cluster: Cluster, sched: launch.BenchScheduler, args: argparse.Namespace,
                     out: dict[str, Any]) -> None:
    await asyncio.sleep(1.0)  # the last latency run's executor is reaped, the daemons idle
    before, avail_before = daemon_pss(cluster, set()), mem_available()
    ids: list[str] = []
    while len(ids) < args.sleepers:
        offers = await sched.take_offers(args.timeout)  # too small ones are declined
        agent_id = offers[0].agent_id.value
        ids += await sched.launch(offers, min(sched.fit(offers), args.sleepers - len(ids)), "mem")
    tasks = [sched.tasks[t] for t in ids]
    await sched.wait_until(lambda: all(RUNNING in t.received or t.is_done() for t in tasks),
                           args.timeout, f"{args.sleepers} sleepers to run")
    if bad := [t for t in tasks if t.is_done()]:
        raise RuntimeError(f"{len(bad)} sleepers ended: {launch.state_name(bad[0].terminal)}"
                           f" ({bad[0].message})")
    await asyncio.sleep(1.0)  # every executor settles after its TASK_RUNNING
    runtime, task_pids = container_pids(args.root)
    after = daemon_pss(cluster, set(runtime) | set(task_pids))
    executors = [smaps(pid) for pid in runtime]
    usage = [CgroupsV1(HIERARCHY).read("memory", f"{args.root}/{c}", "memory.usage_in_bytes")
             for c in containers(args.root)]
    out["memory"] = mem = {
        "tasks": args.sleepers, "containers": len(usage),
        "runtime_processes": len(runtime), "task_processes": len(task_pids),
        **{f"executors_{k}_mb": sum(e[k] for e in executors) / MB for k in ("pss", "uss", "rss")},
        "tasks_pss_mb": sum(smaps(pid)["pss"] for pid in task_pids) / MB,
        "daemon_growth_mb": {k: (after[k] - before[k]) / MB for k in after},
        "daemon_before_mb": {k: v / MB for k, v in before.items()},
        "cgroups_usage_mb": sum(int(u) for u in usage) / MB,
        "mem_available_drop_mb": (avail_before - mem_available()) / MB,
    }
    for task_id in ids:
        await sched.client.kill(task_id, agent_id)
    await sched.wait_until(lambda: all(t.is_done() for t in tasks), args.timeout, "the kills")
    mem["killed"] = dict(Counter(launch.state_name(t.terminal) for t in tasks))
    await wait_containers_gone(args.root, args.timeout)


async def drive(cluster: Cluster, args: argparse.Namespace, out: dict[str, Any],
                scratch: str) -> launch.BenchScheduler:
    info = mesos_pb2.FrameworkInfo(user=getpass.getuser(), name="bench-container-launch")
    async with SchedulerClient(cluster.master, info) as client:
        sched = launch.BenchScheduler(client, args.cpus, args.mem, args.command)
        pump = asyncio.get_running_loop().create_task(sched.pump())
        try:
            await sched.wait_subscribed(args.timeout)
            await run_latency(sched, args, out, scratch)
            sched.command = "sleep 600"  # (c) before (b): no daemon's heap grown by (b) yet
            await run_memory(cluster, sched, args, out)
            sched.command = args.command
            await launch.run_throughput(sched, out["throughput"], args.tasks, args.timeout)
            await wait_containers_gone(args.root, args.timeout)
            await sched.close()
            with contextlib.suppress(Exception):
                await client.teardown()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
    return sched


def figures(sched: launch.BenchScheduler, out: dict[str, Any], log_path: str) -> dict[str, Any]:
    """Everything the report prints: the agent's side from its log, the rest from ``sched``."""
    agent = agent_log_times(log_path)
    ids = [t for t in out["latency_ids"] if t in agent]
    if len(ids) < len(out["latency_ids"]):
        raise RuntimeError(f"{log_path} times {len(ids)} of {len(out['latency_ids'])} launches")
    times = {t: sched.tasks[t] for t in ids}
    stages: dict[str, list[float]] = {
        "ACCEPT -> agent run_task": [(agent[t][0] - times[t].accept_sent) * 1000 for t in ids],
        "agent run_task -> executor stamps RUNNING": [
            (times[t].stamped[RUNNING] - agent[t][0]) * 1000 for t in ids
            if RUNNING in times[t].stamped]}
    for name, stage in launch.STAGES:
        for t in ids:
            with contextlib.suppress(KeyError):
                stages.setdefault(name, []).append(stage(times[t]) * 1000)
    tput: launch.Results = out["throughput"]
    launched = {t: v for t, v in sched.tasks.items() if t.startswith("tput-")}
    first = min(v.accept_sent for v in launched.values())
    to_running = max(v.received.get(RUNNING, math.nan) for v in launched.values()) - first
    spans = [agent[t] for t in launched if t in agent]
    agent_span = max(r for _, r in spans) - min(s for s, _ in spans) if spans else math.nan
    mem = out["memory"]
    n = mem["tasks"]
    return {
        "agent_ms": [(agent[t][1] - agent[t][0]) * 1000 for t in ids],
        "sched_ms": [(times[t].received[RUNNING] - times[t].accept_sent) * 1000 for t in ids],
        "baseline_ms": out["baseline_ms"], "stages_ms": stages,
        "throughput": {"tasks": len(launched), "to_running_s": to_running,
                       "to_finished_s": tput.throughput_s, "agent_run_to_running_s": agent_span,
                       **{k: getattr(tput, f"throughput_{k}") for k in TPUT_FIELDS}},
        "rate_to_running": len(launched) / to_running,
        "rate_to_finished": len(launched) / tput.throughput_s,
        "rate_agent_side": len(spans) / agent_span,
        "memory": mem,
        "mb_per_task": (mem["executors_pss_mb"] + sum(mem["daemon_growth_mb"].values())) / n,
        "avail_mb_per_task": mem["mem_available_drop_mb"] / n,
        "ack_errors": sched.ack_errors,
    }


def row(name: str, ours: float, base: float = math.nan, target: str = "",
        ok: bool | None = None, fmt: str = ".1f") -> str:
    ratio = "" if math.isnan(base) or not base else f"{ours / base:.1f}x"
    base_text = "" if math.isnan(base) else f"{base:{fmt}}"
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    return f"{name:<40}{ours:>9{fmt}}{base_text:>10}{ratio:>7}  {target:<14}{verdict}"


def report(args: argparse.Namespace, fig: dict[str, Any]) -> str:
    lat, base, sched = fig["agent_ms"], fig["baseline_ms"], fig["sched_ms"]
    mem, tput, n, per = fig["memory"], fig["throughput"], fig["memory"]["tasks"], fig["mb_per_task"]
    rate, rate_fin, at_least = fig["rate_to_running"], fig["rate_to_finished"], f">= {MIN_RATE}/s"
    lines = [
        f"container launch benchmark: --isolation={ISOLATION}, command {args.command!r},"
        f" task cpus:{args.cpus:g};mem:{args.mem:g}, {os.cpu_count()} CPUs,"
        f" load average at start {args.load_at_start:.2f}",
        f"{'metric':<40}{'ours':>9}{'baseline':>10}{'ratio':>7}  {'target':<14}result",
        row(f"agent LAUNCH->RUNNING p50 ms (n={len(lat)})", p50(lat), p50(base),
            f"<= {MAX_RATIO:g}x", p50(lat) <= MAX_RATIO * p50(base)),
        row("agent LAUNCH->RUNNING p99 ms", percentile(lat, 99), percentile(base, 99)),
        row("sched ACCEPT->RUNNING p50 ms", p50(sched), p50(base), "(context)"),
        row("sched ACCEPT->RUNNING p99 ms", percentile(sched, 99), percentile(base, 99)),
        row(f"containers/s, {tput['tasks']} to last RUNNING", rate, ok=rate >= MIN_RATE,
            target=at_least),
        row("containers/s, to last FINISHED", rate_fin, target=at_least, ok=rate_fin >= MIN_RATE),
        row("containers/s, agent run->RUNNING", fig["rate_agent_side"], target="(context)"),
        row(f"runtime MB per running task (n={n})", per, target=f"<= {MAX_MB:g} MB",
            ok=per <= MAX_MB, fmt=".2f"),
        row("MemAvailable drop MB per task", fig["avail_mb_per_task"], target="(cross-check)",
            fmt=".2f"),
        f"throughput: {tput['finished']}/{tput['tasks']} TASK_FINISHED"
        + (f", others {tput['other']}" if tput["other"] else "")
        + f", {tput['accepts']} ACCEPTs (up to {tput['max_per_accept']} tasks each),"
        f" {tput['to_running_s']:.2f} s to last RUNNING, {tput['to_finished_s']:.2f} s to last"
        " FINISHED" + (f"; {len(fig['ack_errors'])} failed ACKs" if fig["ack_errors"] else ""),
        "", f"{'where LAUNCH->RUNNING goes (ms)':<46}{'p50':>8}{'p99':>8}",
    ]
    for name, samples in fig["stages_ms"].items():
        lines.append(f"  {name:<44}{p50(samples):>8.1f}{percentile(samples, 99):>8.1f}")
    lines += [
        "", f"memory, {n} x 'sleep 600' running ({mem['containers']} containers,"
        f" {mem['runtime_processes']} executor and {mem['task_processes']} task processes):",
        f"  executors' PSS {mem['executors_pss_mb']:.1f} MB ({mem['executors_pss_mb'] / n:.2f}"
        f" MB each; USS {mem['executors_uss_mb'] / n:.2f}, RSS {mem['executors_rss_mb'] / n:.2f})",
        "  daemons' PSS growth: " + ", ".join(
            f"{k} {v:+.1f} MB (from {mem['daemon_before_mb'][k]:.1f})"
            for k, v in mem["daemon_growth_mb"].items()),
        f"  => runtime {per:.2f} MB per task; the tasks' own PSS {mem['tasks_pss_mb'] / n:.2f}"
        f" MB each; containers' memory.usage_in_bytes {mem['cgroups_usage_mb'] / n:.2f} MB each;"
        f" MemAvailable fell {mem['mem_available_drop_mb']:.1f} MB in all",
        f"  after KILL: {mem['killed']}",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    for flag, kind, default, text in (
            ("--runs", int, 40, "sequential launches timed"), ("--warmup", int, 3, "untimed first"),
            ("--tasks", int, 200, "throughput run"), ("--sleepers", int, 100, "memory run"),
            ("--command", str, "sleep 0", "the task's shell command (latency, throughput)"),
            ("--cpus", float, 0.01, "per task"), ("--mem", int, 32, "MB per task"),
            ("--timeout", float, 120.0, "seconds per wait")):
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.runs, args.tasks, args.sleepers) < 1 or args.warmup < 0:
        parser.error("--runs, --tasks and --sleepers must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    if os.geteuid() != 0 or os.path.exists(os.path.join(HIERARCHY, "cgroup.controllers")):
        print("needs root and cgroup v1 at /sys/fs/cgroup", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleans up as ^C
    args.root = f"bench-ctr-{uuid.uuid4().hex[:8]}"
    args.base_root, work_dir = f"{args.root}-baseline", tempfile.mkdtemp(prefix="bench-container-")
    os.makedirs(scratch := os.path.join(work_dir, "baseline"))
    cluster = Cluster(work_dir, agent_flags=[
        f"--isolation={ISOLATION}", f"--cgroups_root={args.root}",
        f"--resources=cpus:{max(4, args.tasks * args.cpus * 2):g};"
        f"mem:{max(args.tasks, args.sleepers) * args.mem * 2};disk:4096"])
    out: dict[str, Any] = {"latency_ids": [], "baseline_ms": [], "throughput": launch.Results()}
    try:
        cluster.start_master()
        with mock.patch.dict(os.environ, {"GLOG_v": "1"}):  # its debug lines time the launches
            cluster.start_agent(0)
        cluster.wait_agents(1)
        try:
            sched = asyncio.run(drive(cluster, args, out, scratch))
        except Exception:
            print(cluster.logs(), file=sys.stderr)
            raise
        fig = figures(sched, out, os.path.join(work_dir, "agent0.log"))
        print(report(args, fig))
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(fig, handle, indent=2)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        remove_root(args.root)
        remove_root(args.base_root)
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
