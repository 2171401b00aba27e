"""The master's v1 operator calls beyond sharing the cluster (``operator_http.py`` has those):
state (GET_STATE and its parts, GET_ROLES, GET_METRICS, GET_OPERATIONS), logging, the master's
log files (LIST_FILES, READ_FILE), maintenance and agent control. Each takes the parsed Call and
returns a Response, or None for a call that answers 200 with no body."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable

from agent_runtime.errors import BadRequest, NotFound
from agent_runtime.master import operator_state
from agent_runtime.master.master import Master
from agent_runtime.master.model import Timer
from agent_runtime.proto import master_pb2, mesos_pb2

Call = master_pb2.Call
Response = master_pb2.Response
CallHandler = Callable[[Call, str | None], Response | None]
MAX_READ = 1024 * 1024
LOG_PATH = "/master/log"


def _time(seconds: float) -> mesos_pb2.TimeInfo:
    return mesos_pb2.TimeInfo(nanoseconds=int(seconds * 1e9))


class OperatorCalls:
    def __init__(self, master: Master) -> None:
        self.master = master
        self._revert: Timer | None = None
        self._original = logging.NOTSET

    def calls(self) -> dict[int, CallHandler]:
        m = self.master
        state_calls: dict[int, tuple[Response.Type.ValueType, str,
                                     Callable[[Master], object]]] = {
            Call.GET_STATE: (Response.GET_STATE, "get_state", operator_state.get_state),
            Call.GET_AGENTS: (Response.GET_AGENTS, "get_agents", operator_state.get_agents),
            Call.GET_FRAMEWORKS: (Response.GET_FRAMEWORKS, "get_frameworks",
                                  operator_state.get_frameworks),
            Call.GET_TASKS: (Response.GET_TASKS, "get_tasks", operator_state.get_tasks),
            Call.GET_EXECUTORS: (Response.GET_EXECUTORS, "get_executors",
                                 operator_state.get_executors),
            Call.GET_ROLES: (Response.GET_ROLES, "get_roles", operator_state.get_roles),
            Call.GET_METRICS: (Response.GET_METRICS, "get_metrics", operator_state.get_metrics),
        }
        out: dict[int, CallHandler] = {
            kind: self._state_call(*entry) for kind, entry in state_calls.items()}
        out.update({
            Call.GET_OPERATIONS: self._get_operations,
            Call.GET_LOGGING_LEVEL: self._get_logging_level,
            Call.SET_LOGGING_LEVEL: self._set_logging_level,
            Call.LIST_FILES: self._list_files,
            Call.READ_FILE: self._read_file,
            Call.GET_MAINTENANCE_SCHEDULE: self._get_schedule,
            Call.GET_MAINTENANCE_STATUS: self._get_status,
            Call.UPDATE_MAINTENANCE_SCHEDULE: lambda c, p: m.maintenance.update_schedule(
                c.update_maintenance_schedule.schedule),
            Call.START_MAINTENANCE: lambda c, p: m.maintenance.start(c.start_maintenance.machines),
            Call.STOP_MAINTENANCE: lambda c, p: m.maintenance.stop(c.stop_maintenance.machines),
            Call.DRAIN_AGENT: self._drain,
            Call.DEACTIVATE_AGENT: lambda c, p: m.maintenance.deactivate(
                _agent_id(c.deactivate_agent.agent_id, "deactivate_agent")),
            Call.REACTIVATE_AGENT: lambda c, p: m.maintenance.reactivate(
                _agent_id(c.reactivate_agent.agent_id, "reactivate_agent")),
            Call.MARK_AGENT_GONE: self._mark_gone,
        })
        return out

    def _state_call(self, kind: Response.Type.ValueType, field: str,
                    build: Callable[[Master], object]) -> CallHandler:
        def handler(call: Call, principal: str | None) -> Response:
            response = Response(type=kind)
            getattr(response, field).CopyFrom(build(self.master))
            return response

        return handler

    # Logging ---------------------------------------------------------------------------------
    def _get_logging_level(self, call: Call, principal: str | None) -> Response:
        # glog's verbosity: 0 is our INFO, 1 and above our DEBUG.
        level = 1 if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else 0
        response = Response(type=Response.GET_LOGGING_LEVEL)
        response.get_logging_level.level = level
        return response

    def _get_operations(self, call: Call, principal: str | None) -> Response:
        # No resource providers here, so no operations to list; the field is still present.
        response = Response(type=Response.GET_OPERATIONS)
        response.get_operations.SetInParent()
        return response

    def _set_logging_level(self, call: Call, principal: str | None) -> None:
        params = call.set_logging_level
        if not params.HasField("level") or not params.HasField("duration"):
            raise BadRequest("Expecting 'set_logging_level.level' and '.duration'")
        seconds = params.duration.nanoseconds / 1e9
        if seconds <= 0:
            raise BadRequest("'set_logging_level.duration' must be positive")
        root = logging.getLogger()
        original = root.level if self._revert is None else self._original
        if self._revert is not None:
            self._revert.cancel()
        self._original = original
        root.setLevel(logging.DEBUG if params.level >= 1 else logging.INFO)

        def revert() -> None:
            root.setLevel(self._original)
            self._revert = None

        # As Mesos: the level holds for `duration`, then the original comes back.
        self._revert = self.master.effects.call_later(seconds, revert)

    # The master's log ------------------------------------------------------------------------
    def _log_file(self, path: str) -> str:
        if path.rstrip("/") != LOG_PATH:
            raise NotFound(f"No file or directory found at path '{path[:200]}'")
        log_dir = self.master.config.log_dir
        if not log_dir:
            raise NotFound("The master logs to stderr (no --log_dir): no log file to serve")
        return os.path.join(log_dir, "mesos-master.log")

    def _list_files(self, call: Call, principal: str | None) -> Response:
        name = self._log_file(call.list_files.path)
        response = Response(type=Response.LIST_FILES)
        try:
            st = os.stat(name)
        except OSError as exc:
            raise NotFound(f"The master's log is missing: {exc.strerror}") from exc
        response.list_files.file_infos.add(
            path=LOG_PATH, nlink=st.st_nlink, size=st.st_size, mtime=_time(st.st_mtime),
            mode=stat.S_IMODE(st.st_mode) | stat.S_IFMT(st.st_mode),
            uid=str(st.st_uid), gid=str(st.st_gid))
        return response

    def _read_file(self, call: Call, principal: str | None) -> Response:
        params = call.read_file
        name = self._log_file(params.path)
        length = min(params.length, MAX_READ) if params.HasField("length") else MAX_READ
        try:
            with open(name, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                data = os.pread(handle.fileno(), length, params.offset) \
                    if params.offset < size else b""
        except OSError as exc:
            raise NotFound(f"The master's log is missing: {exc.strerror}") from exc
        response = Response(type=Response.READ_FILE)
        response.read_file.size = size
        response.read_file.data = data
        return response

    # Maintenance and agents ------------------------------------------------------------------
    def _get_schedule(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_MAINTENANCE_SCHEDULE)
        response.get_maintenance_schedule.schedule.CopyFrom(self.master.maintenance.schedule)
        return response

    def _get_status(self, call: Call, principal: str | None) -> Response:
        response = Response(type=Response.GET_MAINTENANCE_STATUS)
        response.get_maintenance_status.status.CopyFrom(self.master.maintenance.status())
        return response

    def _drain(self, call: Call, principal: str | None) -> None:
        drain = call.drain_agent
        grace = drain.max_grace_period.nanoseconds if drain.HasField("max_grace_period") \
            else None
        if grace is not None and grace < 0:
            raise BadRequest("'drain_agent.max_grace_period' must not be negative")
        self.master.maintenance.drain(_agent_id(drain.agent_id, "drain_agent"), grace,
                                      drain.mark_gone)
        self.master.agent_gone.check_soon()  # an agent with nothing to drain is drained now

    def _mark_gone(self, call: Call, principal: str | None) -> None:
        self.master.agent_gone.mark_gone(
            _agent_id(call.mark_agent_gone.agent_id, "mark_agent_gone"))


def _agent_id(agent_id: mesos_pb2.AgentID, field: str) -> str:
    if not agent_id.value:
        raise BadRequest(f"Expecting '{field}.agent_id' to be present")
    return str(agent_id.value)


__all__ = ["OperatorCalls"]
