"""Who may call the master, and what they may do: its flags turned into the HTTP
authentication config, and the ACL checks of the calls that change the cluster.

The checks run in one middleware, before the handlers, so the handlers stay as they were and
endpoints added later are covered by path: the scheduler API (principal of the framework,
failover by the same principal only, ``register_frameworks``, ``run_tasks``), the v1 operator
API and the legacy ``/reserve``, ``/unreserve``, ``/quota``, ``/weights`` and ``/teardown``.
A request whose body does not parse is left to its handler, which answers 400 with the same
parser, so nothing reaches a handler unchecked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware
from google.protobuf.message import DecodeError, Message

from agent_runtime.auth.acls import Authorizer, load_acls
from agent_runtime.auth.credentials import Credentials, load_credentials
from agent_runtime.auth.http_auth import (
    HttpAuthConfig,
    authorize,
    basic_credentials,
    principal,
)
from agent_runtime.codec import jsonpb
from agent_runtime.errors import (
    BadRequest,
    FlagError,
    Forbidden,
    RuntimeErrorBase,
    Unauthorized,
)
from agent_runtime.http_util import PROTOBUF
from agent_runtime.master.config import MasterConfig
from agent_runtime.master.master import Master
from agent_runtime.master.model import Framework
from agent_runtime.master.operator_http import _resources_json
from agent_runtime.proto import master_pb2, mesos_pb2, quota_pb2, scheduler_pb2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SchedulerCall = scheduler_pb2.Call
OperatorCall = master_pb2.Call
SCHEDULER_PATHS = frozenset({"/api/v1/scheduler", "/master/api/v1/scheduler"})
# Where the guard leaves the call it parsed, so the handler need not parse the body again.
PARSED = "agent_runtime.master.parsed_call"
OPEN_PATHS = frozenset({"/health", "/master/health", "/version", "/master/agent_link",
                        "/master/redirect"})


def credentials(config: MasterConfig) -> Credentials | None:
    loaded = load_credentials(config.credentials, "credentials")
    needs = [name for name, on in (
        ("authenticate_frameworks", config.authenticate_frameworks),
        ("authenticate_agents", config.authenticate_agents),
        ("authenticate_http_readonly", config.authenticate_http_readonly),
        ("authenticate_http_readwrite", config.authenticate_http_readwrite)) if on]
    if needs and loaded is None:
        raise FlagError(f"--{needs[0]} needs --credentials")
    return loaded


def http_auth_config(config: MasterConfig) -> HttpAuthConfig:
    return HttpAuthConfig(
        daemon="mesos-master", credentials=credentials(config),
        readonly=config.authenticate_http_readonly, readwrite=config.authenticate_http_readwrite,
        frameworks=config.authenticate_frameworks, authorizer=load_acls(config.acls),
        acls_given=bool(config.acls), open_paths=OPEN_PATHS, scheduler_paths=SCHEDULER_PATHS)


def _reservation(resource: mesos_pb2.Resource) -> tuple[str, str]:
    """The role and the principal of a resource's latest reservation (old or new form)."""
    if resource.reservations:
        last = resource.reservations[-1]
        return last.role, last.principal
    return resource.role, resource.reservation.principal


def _each(request: web.Request, action: str, objects: Iterable[str]) -> None:
    for obj in sorted(set(objects)):
        authorize(request, action, obj)


class MasterGuard:
    """The ACL and principal checks of the master's state-changing calls."""

    def __init__(self, master: Master, auth: HttpAuthConfig) -> None:
        self.master = master
        self.auth = auth

    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method not in ("GET", "HEAD"):
                try:
                    await self._check(request, request.path.rstrip("/"))
                except Forbidden:
                    raise
                except (RuntimeErrorBase, ValueError):
                    pass  # not parseable: the handler answers 400 with the same parser
            return await handler(request)

        return guard

    async def _message(self, request: web.Request, cls: type[Message]) -> Message:
        body = await request.read()  # kept by aiohttp: the handler reads it again
        media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media == PROTOBUF:
            message = cls()
            try:
                message.ParseFromString(body)
            except DecodeError as exc:
                raise BadRequest(str(exc)) from exc
        else:
            message = jsonpb.parse(body, cls)
        request[PARSED] = (cls, media, message)
        return message

    async def _check(self, request: web.Request, path: str) -> None:
        short = path.removeprefix("/master")
        if path in SCHEDULER_PATHS:
            call = await self._message(request, SchedulerCall)
            assert isinstance(call, SchedulerCall)
            self.scheduler_call(request, call)
        elif short == "/api/v1":
            call = await self._message(request, OperatorCall)
            assert isinstance(call, OperatorCall)
            self.operator_call(request, call)
        elif short in ("/reserve", "/unreserve"):
            form = await request.post()
            text = form.get("resources")
            if isinstance(text, str):
                resources = _resources_json(text, "resources").to_proto()
                self._reservations(request, short == "/reserve", resources)
        elif short == "/quota" and request.method == "POST":
            quota = jsonpb.parse(await request.read(), quota_pb2.QuotaRequest)
            authorize(request, "update_quotas", quota.role)
        elif short.startswith("/quota/") and request.method == "DELETE":
            authorize(request, "update_quotas", request.match_info.get("role", ""))
        elif short == "/weights" and request.method == "PUT":
            data = jsonpb.loads_json(await request.read())
            if isinstance(data, list):
                _each(request, "update_weights",
                      (str(item.get("role", "")) for item in data if isinstance(item, dict)))
        elif short == "/teardown":
            framework_id = (await request.post()).get("frameworkId")
            if isinstance(framework_id, str):
                self._teardown(request, framework_id)

    def _reservations(self, request: web.Request, reserve: bool,
                      resources: Iterable[mesos_pb2.Resource]) -> None:
        for resource in resources:
            role, reserver = _reservation(resource)
            if reserve:
                authorize(request, "reserve_resources", role)
            else:
                authorize(request, "unreserve_resources", reserver)

    def _teardown(self, request: web.Request, framework_id: str) -> None:
        framework = self.master.book.frameworks.get(framework_id)
        if framework is not None:
            authorize(request, "teardown_frameworks", framework.info.principal or None)

    def operator_call(self, request: web.Request, call: master_pb2.Call) -> None:
        kind = call.type
        if kind == OperatorCall.RESERVE_RESOURCES:
            self._reservations(request, True, call.reserve_resources.resources)
        elif kind == OperatorCall.UNRESERVE_RESOURCES:
            self._reservations(request, False, call.unreserve_resources.resources)
        elif kind == OperatorCall.UPDATE_QUOTA:
            _each(request, "update_quotas", (c.role for c in call.update_quota.quota_configs))
        elif kind == OperatorCall.SET_QUOTA:
            authorize(request, "update_quotas", call.set_quota.quota_request.role)
        elif kind == OperatorCall.REMOVE_QUOTA:
            authorize(request, "update_quotas", call.remove_quota.role)
        elif kind == OperatorCall.UPDATE_WEIGHTS:
            _each(request, "update_weights", (w.role for w in call.update_weights.weight_infos))
        elif kind == OperatorCall.TEARDOWN:
            self._teardown(request, call.teardown.framework_id.value)
        elif kind == OperatorCall.GET_FLAGS:
            authorize(request, "view_flags")
        elif kind in (OperatorCall.LIST_FILES, OperatorCall.READ_FILE):
            authorize(request, "access_mesos_logs")  # the master's files are its logs

    def scheduler_call(self, request: web.Request, call: scheduler_pb2.Call) -> None:
        caller = principal(request)
        if call.type == SchedulerCall.SUBSCRIBE:
            info = call.subscribe.framework_info
            if self.auth.frameworks and info.principal != caller:
                raise Forbidden(f"Framework principal '{info.principal}' does not match the "
                                f"authenticated principal '{caller}'")
            existing = self.master.book.frameworks.get(info.id.value) if info.id.value else None
            if existing is not None and existing.info.principal != info.principal:
                # Only the framework's own principal may fail it over: anyone else could
                # otherwise take its tasks and tear it down.
                raise Forbidden(f"Framework {existing.id} is registered by another principal; "
                                "a failover must come from the same principal")
            _each(request, "register_frameworks", list(info.roles) or [info.role or "*"])
            return
        framework = self.master.book.frameworks.get(call.framework_id.value)
        if framework is None:
            return  # the handler answers "Framework cannot be found"
        if self.auth.frameworks and framework.info.principal != caller:
            raise Forbidden(f"Principal '{caller}' may not call for framework {framework.id}")
        if call.type == SchedulerCall.ACCEPT:
            # A task group runs whole or not at all; a single task refused by run_tasks is a
            # TASK_ERROR of its own (run_tasks_refusal), the rest of the ACCEPT goes on.
            _each(request, "run_tasks", self._group_users(framework.info, call.accept))

    @staticmethod
    def _group_users(info: mesos_pb2.FrameworkInfo, accept: scheduler_pb2.Call.Accept
                     ) -> list[str]:
        """The OS users the accepted task groups would run tasks as."""
        return [task_user(info, task) for operation in accept.operations
                for task in operation.launch_group.task_group.tasks]


def task_user(info: mesos_pb2.FrameworkInfo, task: mesos_pb2.TaskInfo) -> str:
    """The OS user a task runs as: its command's, else its executor's, else the framework's."""
    command = task.command if task.HasField("command") else task.executor.command
    return command.user if command.HasField("user") and command.user else info.user


def run_tasks_refusal(authorizer: Authorizer
                      ) -> Callable[[Framework, mesos_pb2.TaskInfo], str | None]:
    """Why a task may not run (as Mesos: the framework's principal runs tasks as a user)."""
    def refusal(framework: Framework, task: mesos_pb2.TaskInfo) -> str | None:
        user, principal = task_user(framework.info, task), framework.info.principal or None
        if authorizer.allowed("run_tasks", principal, user):
            return None
        who = f"principal '{principal}'" if principal else "a framework without a principal"
        return f"Not authorized to launch task: {who} may not run_tasks as user '{user}'"

    return refusal


def agent_principal(config: MasterConfig, known: Credentials | None,
                    metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The principal an agent's link presents (``--credential`` on the agent), checked against
    ``--credentials``: Unauthorized when it is wrong, or absent with ``--authenticate_agents``."""
    header = next((str(value) for key, value in metadata if key == "authorization"), None)
    if header is None:
        if config.authenticate_agents:
            raise Unauthorized("agents must authenticate (--authenticate_agents): start the "
                               "agent with --credential")
        return None
    pair = basic_credentials(header)
    if pair is None or known is None or not known.check(*pair):
        raise Unauthorized("agent authentication failed: wrong principal or secret")
    return pair[0]
