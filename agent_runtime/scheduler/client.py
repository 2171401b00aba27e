"""A minimal Mesos v1 HTTP scheduler client on aiohttp (protobuf or JSON on the wire)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp

from agent_runtime.codec import jsonpb, recordio
from agent_runtime.errors import RuntimeErrorBase
from agent_runtime.http_util import JSON, PROTOBUF
from agent_runtime.proto import mesos_pb2, scheduler_pb2
from agent_runtime.tls import PLAIN, TlsConfig

log = logging.getLogger(__name__)
Call = scheduler_pb2.Call
Event = scheduler_pb2.Event


class SchedulerError(RuntimeErrorBase):
    """The master refused a call or the subscription."""


class SchedulerClient:
    def __init__(self, master: str, framework_info: mesos_pb2.FrameworkInfo,
                 content_type: str = PROTOBUF, auth: tuple[str, str] | None = None,
                 tls: TlsConfig = PLAIN) -> None:
        master = master.removeprefix("http://").removeprefix("https://").rstrip("/")
        self.url = f"{tls.scheme}://{master}/api/v1/scheduler"
        self.tls = tls
        self.framework_info = framework_info
        self.content_type = content_type
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._subscription: aiohttp.ClientResponse | None = None
        # The framework's principal and secret (--authenticate_frameworks), on every call.
        self.headers = {"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else {}

    async def __aenter__(self) -> SchedulerClient:
        self._session = aiohttp.ClientSession(
            # Idle connections given up after 5 s: the master closes them after its
            # --http_header_timeout (10 s by default), and a call sent on one as it closes fails.
            connector=aiohttp.TCPConnector(limit=16, ssl=self.tls.client_context() or True,
                                           keepalive_timeout=5.0),
            timeout=aiohttp.ClientTimeout(total=None),
            headers=self.headers,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._session is not None:
            await self._session.close()

    def _encode(self, call: Call) -> bytes:
        if self.content_type == PROTOBUF:
            return call.SerializeToString()
        return jsonpb.dumps(call)

    def _decode(self, record: bytes) -> Event:
        if self.content_type == PROTOBUF:
            event = Event()
            event.ParseFromString(record)
            return event
        return jsonpb.parse(record, Event)

    async def events(self) -> AsyncIterator[Event]:
        """SUBSCRIBE and yield events until the stream ends."""
        assert self._session is not None
        call = Call(type=Call.SUBSCRIBE)
        call.subscribe.framework_info.CopyFrom(self.framework_info)
        if self.framework_info.HasField("id"):
            call.framework_id.CopyFrom(self.framework_info.id)
        response = await self._session.post(
            self.url, data=self._encode(call),
            headers={"Content-Type": self.content_type, "Accept": self.content_type},
        )
        if response.status != 200:
            text = await response.text()
            response.close()
            raise SchedulerError(f"SUBSCRIBE failed with {response.status}: {text}")
        self._subscription = response
        self.stream_id = response.headers["Mesos-Stream-Id"]
        decoder = recordio.Decoder()
        async for chunk in response.content.iter_any():
            for record in decoder.feed(chunk):
                event = self._decode(record)
                if event.type == Event.SUBSCRIBED:
                    self.framework_id = event.subscribed.framework_id.value
                    self.framework_info.id.value = self.framework_id
                yield event

    async def call(self, call: Call) -> None:
        assert self._session is not None and self.framework_id is not None
        call.framework_id.value = self.framework_id
        headers = {"Content-Type": self.content_type, "Mesos-Stream-Id": self.stream_id or ""}
        async with self._session.post(self.url, data=self._encode(call),
                                      headers=headers) as response:
            if response.status != 202:
                text = await response.text()
                raise SchedulerError(
                    f"{Call.Type.Name(call.type)} failed with {response.status}: {text}"
                )

    async def accept(self, offer_ids: list[str], tasks: list[mesos_pb2.TaskInfo],
                     refuse_seconds: float | None = None) -> None:
        call = Call(type=Call.ACCEPT)
        for offer_id in offer_ids:
            call.accept.offer_ids.add(value=offer_id)
        if tasks:
            operation = call.accept.operations.add(type=mesos_pb2.Offer.Operation.LAUNCH)
            operation.launch.task_infos.extend(tasks)
        if refuse_seconds is not None:
            call.accept.filters.refuse_seconds = refuse_seconds
        await self.call(call)

    async def decline(self, offer_ids: list[str], refuse_seconds: float | None = None) -> None:
        call = Call(type=Call.DECLINE)
        for offer_id in offer_ids:
            call.decline.offer_ids.add(value=offer_id)
        if refuse_seconds is not None:
            call.decline.filters.refuse_seconds = refuse_seconds
        await self.call(call)

    async def acknowledge(self, status: mesos_pb2.TaskStatus) -> None:
        if not status.uuid:
            return
        call = Call(type=Call.ACKNOWLEDGE)
        call.acknowledge.agent_id.CopyFrom(status.agent_id)
        call.acknowledge.task_id.CopyFrom(status.task_id)
        call.acknowledge.uuid = status.uuid
        await self.call(call)

    async def kill(self, task_id: str, agent_id: str | None = None) -> None:
        call = Call(type=Call.KILL)
        call.kill.task_id.value = task_id
        if agent_id:
            call.kill.agent_id.value = agent_id
        await self.call(call)

    async def teardown(self) -> None:
        await self.call(Call(type=Call.TEARDOWN))


__all__ = ["JSON", "PROTOBUF", "SchedulerClient", "SchedulerError"]
