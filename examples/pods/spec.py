"""Pod specs as users write them (JSON or YAML), checked as input a stranger controls.

A pod, in the shape of a Kubernetes pod spec cut down to what this example runs::

    name: web
    nodeName: host1              # optional: this node only
    nodeSelector: {zone: a}      # optional: nodes whose agent attributes match
    containers:
      - name: server
        command: "python3 -m http.server $PORT"
        image: alpine            # optional (Mesos containerizer image)
        resources: {cpus: 0.1, mem: 32}
        ports: [{containerPort: 8080, hostPort: 31080}]
        healthCheck: {command: "true", intervalSeconds: 5, consecutiveFailures: 3}

Everything is bounded (sizes, counts, numbers finite and positive, names valid Mesos ids), and
a problem is a :class:`SpecError` naming the field, which the API answers with a 400.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from agent_runtime.errors import BadRequest
from agent_runtime.ids import id_error
from agent_runtime.scheduler.placement import PodRequest

MAX_SPEC_BYTES = 64 * 1024
MAX_CONTAINERS = 16
MAX_PORTS = 16
MAX_COMMAND = 4096
MAX_CPUS = 1024.0
MAX_MEM = 4 * 1024 * 1024.0  # MB


class SpecError(BadRequest):
    """The pod spec is not one we can run; the message names the field."""


@dataclass(frozen=True)
class HealthCheckSpec:
    command: str
    interval: float = 10.0
    timeout: float = 20.0
    delay: float = 15.0
    consecutive_failures: int = 3


@dataclass(frozen=True)
class Container:
    name: str
    command: str
    cpus: float
    mem: float
    image: str | None = None
    host_ports: tuple[int, ...] = ()
    health_check: HealthCheckSpec | None = None


@dataclass(frozen=True)
class PodSpec:
    name: str
    containers: tuple[Container, ...]
    node_name: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)

    def request(self) -> PodRequest:
        """What placement needs: the containers' sums, their host ports, the node rules."""
        return PodRequest(
            self.name,
            cpus=sum(round(c.cpus * 1000) for c in self.containers),
            mem=sum(round(c.mem * 1000) for c in self.containers),
            host_ports=tuple(p for c in self.containers for p in c.host_ports),
            node_name=self.node_name,
            node_selector=tuple(sorted(self.node_selector.items())),
        )


def parse_pod(body: bytes, content_type: str = "") -> PodSpec:
    """A pod from JSON or YAML (YAML unless the type says JSON; JSON is YAML too)."""
    if len(body) > MAX_SPEC_BYTES:
        raise SpecError(f"pod spec is larger than {MAX_SPEC_BYTES} bytes")
    try:
        if "json" in content_type:
            document = json.loads(body)
        else:
            # safe_load: no Python objects from tags; anchors are bounded by the size cap.
            document = yaml.safe_load(body.decode("utf-8"))
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"pod spec is not valid JSON or YAML: {str(exc)[:200]}") from exc
    return pod_from(document)


def pod_from(document: Any) -> PodSpec:
    doc = _mapping(document, "pod")
    name = _name(doc.get("name"), "name")
    containers = doc.get("containers")
    if not isinstance(containers, list) or not containers:
        raise SpecError("'containers' must be a non-empty list")
    if len(containers) > MAX_CONTAINERS:
        raise SpecError(f"'containers' holds more than {MAX_CONTAINERS} containers")
    parsed = tuple(_container(c, f"containers[{i}]") for i, c in enumerate(containers))
    names = [c.name for c in parsed]
    if len(set(names)) != len(names):
        raise SpecError("container names must be unique within the pod")
    ports = [p for c in parsed for p in c.host_ports]
    if len(set(ports)) != len(ports):
        raise SpecError("a host port is asked for twice in the pod")
    node_name = doc.get("nodeName")
    if node_name is not None and not isinstance(node_name, str):
        raise SpecError("'nodeName' must be a string")
    selector = _mapping(doc.get("nodeSelector") or {}, "nodeSelector")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise SpecError("'nodeSelector' must map strings to strings")
    return PodSpec(name, parsed, node_name, dict(selector))


def _container(raw: Any, where: str) -> Container:
    doc = _mapping(raw, where)
    name = _name(doc.get("name"), f"{where}.name")
    command = doc.get("command")
    if not isinstance(command, str) or not command or len(command) > MAX_COMMAND:
        raise SpecError(f"'{where}.command' must be a shell command of 1..{MAX_COMMAND} chars")
    resources = _mapping(doc.get("resources") or {}, f"{where}.resources")
    cpus = _number(resources.get("cpus", 0.1), f"{where}.resources.cpus", MAX_CPUS)
    mem = _number(resources.get("mem", 32), f"{where}.resources.mem", MAX_MEM)
    image = doc.get("image")
    if image is not None and (not isinstance(image, str) or not image or len(image) > 512):
        raise SpecError(f"'{where}.image' must be an image name")
    ports = doc.get("ports") or []
    if not isinstance(ports, list) or len(ports) > MAX_PORTS:
        raise SpecError(f"'{where}.ports' must be a list of at most {MAX_PORTS}")
    host_ports = []
    for index, port in enumerate(ports):
        entry = _mapping(port, f"{where}.ports[{index}]")
        if "hostPort" in entry:
            host_ports.append(_port(entry["hostPort"], f"{where}.ports[{index}].hostPort"))
    check = doc.get("healthCheck")
    health = _health(check, f"{where}.healthCheck") if check is not None else None
    return Container(name, command, cpus, mem, image, tuple(host_ports), health)


def _health(raw: Any, where: str) -> HealthCheckSpec:
    doc = _mapping(raw, where)
    command = doc.get("command")
    if not isinstance(command, str) or not command or len(command) > MAX_COMMAND:
        raise SpecError(f"'{where}.command' must be a shell command")
    return HealthCheckSpec(
        command,
        interval=_number(doc.get("intervalSeconds", 10), f"{where}.intervalSeconds", 86400),
        timeout=_number(doc.get("timeoutSeconds", 20), f"{where}.timeoutSeconds", 86400),
        delay=_number(doc.get("delaySeconds", 15), f"{where}.delaySeconds", 86400, zero=True),
        consecutive_failures=int(_number(doc.get("consecutiveFailures", 3),
                                         f"{where}.consecutiveFailures", 1000)),
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"'{where}' must be a mapping")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"'{where}' must be a string")
    problem = id_error(value) or (None if "." not in value else "must not contain '.'")
    if problem is not None or len(value) > 63:
        raise SpecError(f"'{where}' is not a valid name: {problem or 'longer than 63'}")
    return value


def _number(value: Any, where: str, most: float, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"'{where}' must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero) or number > most:
        raise SpecError(f"'{where}' must be a positive number no more than {most:g}")
    return number


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SpecError(f"'{where}' must be a port number (1..65535)")
    return value


__all__ = ["Container", "HealthCheckSpec", "PodSpec", "SpecError", "parse_pod", "pod_from"]
