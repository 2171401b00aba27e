"""What one subscriber of the operator event stream may see: the ``view_frameworks`` and
``view_tasks`` ACLs applied to each event, as the state answers apply them
(:mod:`agent_runtime.auth.views`) and as Mesos filters its stream per subscriber.

SUBSCRIBED carries the state pruned as GET_STATE is. TASK_ADDED and TASK_UPDATED go only to a
subscriber that may view both the task (its user, else its framework's) and its framework;
FRAMEWORK_ADDED, FRAMEWORK_UPDATED and FRAMEWORK_REMOVED only to one that may view the framework
(its ``FrameworkInfo.user``). Agent events and heartbeats go to everyone. When the daemon has no
view rules, there is no view: every event goes out as it is, without a look.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from agent_runtime.auth import views
from agent_runtime.auth.http_auth import AUTH_KEY, principal
from agent_runtime.codec import jsonpb
from agent_runtime.master.book import MasterBook
from agent_runtime.proto import master_pb2

Event = master_pb2.Event
Viewer = Callable[[Event], Event | None]


def viewer(request: web.Request, book: MasterBook) -> Viewer | None:
    """The view of the subscriber making ``request``; None when it may see everything."""
    config = request.config_dict.get(AUTH_KEY)
    if config is None or not views.needed(config.authorizer):
        return None
    caller, authorizer = principal(request), config.authorizer

    def allowed(action: str, obj: str | None) -> bool:
        return authorizer.allowed(action, caller, obj)

    return FeedView(book, allowed).visible


class FeedView:
    def __init__(self, book: MasterBook, allowed: views.Allowed) -> None:
        self.book = book
        self.allowed = allowed

    def visible(self, event: Event) -> Event | None:
        """``event`` as this subscriber may see it, or None when it may not see it at all."""
        kind = event.type
        if kind == Event.SUBSCRIBED:
            out = Event()
            out.CopyFrom(event)
            state = views.prune(jsonpb.to_dict(event.subscribed.get_state), self.allowed)
            out.subscribed.get_state.CopyFrom(
                jsonpb.parse_dict(state, master_pb2.Response.GetState))
            return out
        if kind == Event.TASK_ADDED:
            task = event.task_added.task
            return event if self._task(task.framework_id.value, task.user or None) else None
        if kind == Event.TASK_UPDATED:
            framework_id = event.task_updated.framework_id.value
            user = self._task_user(framework_id, event.task_updated.status.task_id.value)
            return event if self._task(framework_id, user) else None
        if kind in (Event.FRAMEWORK_ADDED, Event.FRAMEWORK_UPDATED, Event.FRAMEWORK_REMOVED):
            if kind == Event.FRAMEWORK_REMOVED:
                info = event.framework_removed.framework_info
            elif kind == Event.FRAMEWORK_ADDED:
                info = event.framework_added.framework.framework_info
            else:
                info = event.framework_updated.framework.framework_info
            return event if self.allowed("view_frameworks", info.user or None) else None
        return event

    def _framework_user(self, framework_id: str) -> str | None:
        framework = self.book.frameworks.get(framework_id) or \
            self.book.completed_framework(framework_id)
        return (framework.info.user or None) if framework is not None else None

    def _task_user(self, framework_id: str, task_id: str) -> str | None:
        framework = self.book.frameworks.get(framework_id) or \
            self.book.completed_framework(framework_id)
        if framework is None:
            return None
        task = framework.tasks.get(task_id) or next(
            (t for t in reversed(framework.completed_tasks) if t.task_id == task_id), None)
        return (task.user or None) if task is not None else None

    def _task(self, framework_id: str, task_user: str | None) -> bool:
        framework_user = self._framework_user(framework_id)
        return (self.allowed("view_frameworks", framework_user)
                and self.allowed("view_tasks", task_user or framework_user))


__all__ = ["FeedView", "Viewer", "viewer"]
