"""What the agent offers: the host's real resources, merged with ``--resources``.

Detection follows Mesos (``Containerizer::resources``): each of cpus, mem, disk and ports is
detected only when ``--resources`` does not name it; mem is total RAM minus 1 GB (half when
under 2 GB), disk is the work dir's filesystem minus 5 GB (half when under 10 GB), ports are
``[31000-32000]``, and gpus come from NVML when the library loads and finds devices.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import psutil

from agent_runtime.errors import BadRequest
from agent_runtime.proto import mesos_pb2
from agent_runtime.resources import Resources, parse

log = logging.getLogger(__name__)

GB_MB = 1024


def detect_gpus() -> int:
    """Number of NVIDIA GPUs NVML reports; 0 when there is no library or no device."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # NVML raises its own error types for every failure
        log.info("no GPUs: NVML is not usable here (%s)", exc)
        return 0


def detect(work_dir: str, flag: str | None, default_role: str, isolation: str) -> Resources:
    given = parse(flag, default_role) if flag else Resources()
    # Named ones, zeros included: an explicit `cpus:0` turns detection off, as in Mesos.
    names = _named(flag) if flag else set()
    detected: list[str] = []
    if "cpus" not in names:
        detected.append(f"cpus:{os.cpu_count() or 1}")
    if "mem" not in names:
        total_mb = psutil.virtual_memory().total // (1024 * 1024)
        mem = total_mb - GB_MB if total_mb >= 2 * GB_MB else total_mb // 2
        detected.append(f"mem:{mem}")
    if "disk" not in names:
        os.makedirs(work_dir, exist_ok=True)
        total_mb = shutil.disk_usage(work_dir).total // (1024 * 1024)
        disk = total_mb - 5 * GB_MB if total_mb >= 10 * GB_MB else total_mb // 2
        detected.append(f"disk:{disk}")
    if "ports" not in names:
        detected.append("ports:[31000-32000]")
    if "gpus" not in names and "gpu/nvidia" in isolation.split(","):
        gpus = detect_gpus()
        if gpus:
            detected.append(f"gpus:{gpus}")
    return given + parse(";".join(detected), default_role)


def _named(flag: str) -> set[str]:
    """Names of the resources ``--resources`` gives (already validated by ``parse``)."""
    stripped = flag.strip()
    if stripped.startswith("["):
        items = json.loads(stripped)
        return {str(item.get("name", "")) for item in items if isinstance(item, dict)}
    return {item.split(":", 1)[0].split("(", 1)[0].strip() for item in stripped.split(";")}


def parse_attributes(text: str | None) -> list[mesos_pb2.Attribute]:
    """``rack:2;zone:a;keys:[1000-1500]``: scalars, ranges, sets or text, as Mesos."""
    out = []
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, _, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not name or not value:
            # Mesos's Attributes::parse refuses a pair without a key or a value.
            raise BadRequest(f"attributes: invalid key:value pair {item!r}")
        attribute = mesos_pb2.Attribute(name=name)
        if value.startswith("["):
            attribute.type = mesos_pb2.Value.RANGES
            for span in filter(None, (s.strip() for s in value.strip("[]").split(","))):
                begin, _, end = span.partition("-")
                try:
                    attribute.ranges.range.add(begin=int(begin), end=int(end or begin))
                except ValueError as exc:
                    raise BadRequest(f"attributes: invalid range {span!r} in {item!r}") from exc
        elif value.startswith("{"):
            attribute.type = mesos_pb2.Value.SET
            attribute.set.item.extend(v.strip() for v in value.strip("{}").split(","))
        else:
            try:
                attribute.scalar.value = float(value)
                attribute.type = mesos_pb2.Value.SCALAR
            except ValueError:
                attribute.type = mesos_pb2.Value.TEXT
                attribute.text.value = value
        out.append(attribute)
    return out
