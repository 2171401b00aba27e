"""An agent's maintenance window comes from the schedule's index (hostname, else IP), as the
walk of the schedule it replaced found it: first scheduled machine wins, hostnames match in
any case, a machine given by IP alone matches the agent's address."""

from __future__ import annotations

from agent_runtime.master.maintenance import Maintenance
from agent_runtime.proto import maintenance_pb2
from tests.unit.master.fakes import add_agent, parts


def _window(schedule: maintenance_pb2.Schedule, start_ns: int, *machines: tuple[str, str]
            ) -> None:
    window = schedule.windows.add()
    window.unavailability.start.nanoseconds = start_ns
    for hostname, ip in machines:
        machine = window.machine_ids.add()
        if hostname:
            machine.hostname = hostname
        if ip:
            machine.ip = ip


def test_windows_are_found_by_hostname_then_ip_in_schedule_order() -> None:
    p = parts()
    maintenance = Maintenance(p.book, p.effects, p.allocator, p.offers)
    named = add_agent(p, "S1")  # hostname "h", address 127.0.0.1
    other = add_agent(p, "S2")
    other.info.hostname = "elsewhere"
    other.pid = "slave(1)@10.0.0.9:5051"
    assert maintenance.unavailability(named) is None  # no schedule

    schedule = maintenance_pb2.Schedule()
    _window(schedule, 1, ("", "127.0.0.1"))  # by address, first
    _window(schedule, 2, ("H", ""))  # by hostname, later: the first match wins
    p.book.registry.schedule = schedule
    found = maintenance.unavailability(named)
    assert found is not None and found.start.nanoseconds == 1
    assert maintenance.unavailability(other) is None

    reordered = maintenance_pb2.Schedule()
    _window(reordered, 2, ("H", ""))
    _window(reordered, 3, ("", "10.0.0.9"))
    p.book.registry.schedule = reordered  # replaced: indexed anew
    found = maintenance.unavailability(named)
    assert found is not None and found.start.nanoseconds == 2
    elsewhere = maintenance.unavailability(other)
    assert elsewhere is not None and elsewhere.start.nanoseconds == 3
    assert maintenance.mode_of(other) == maintenance.mode_of(named)
