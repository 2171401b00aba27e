"""``/master/tasks``: which tasks, in which order, how many (Mesos's query semantics).

``limit`` (default 100) and ``offset`` (default 0) are integers, and a negative one means "no
bound": Mesos reads them into unsigned sizes, so ``limit=-1`` (what Mesos's CLI sends for
``mesos task list``) lists every task. ``order`` is ``des`` unless it is ``asc``; tasks are sorted
by the timestamp of their first status, those with no status first, then by id so that pages are
stable. ``framework_id`` and ``task_id`` filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent_runtime.errors import BadRequest
from agent_runtime.master.book import MasterBook
from agent_runtime.master.model import Task

DEFAULT_LIMIT = 100


def _bound(query: Mapping[str, str], name: str, default: int) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise BadRequest(f"'{name}' must be an integer, got '{text[:64]}'") from exc
    return None if value < 0 else value


def _sort_key(task: Task) -> tuple[bool, float, str]:
    if not task.statuses:
        return (False, 0.0, task.task_id)
    return (True, task.statuses[0].timestamp, task.task_id)


def all_tasks(book: MasterBook, framework_id: str | None = None) -> Iterable[Task]:
    for framework in [*book.frameworks.values(), *book.completed_frameworks]:
        if framework_id not in (None, framework.id):
            continue
        yield from framework.tasks.values()
        yield from framework.completed_tasks


def select(book: MasterBook, query: Mapping[str, str]) -> list[Task]:
    limit = _bound(query, "limit", DEFAULT_LIMIT)
    offset = _bound(query, "offset", 0) or 0
    tasks = list(all_tasks(book, query.get("framework_id")))
    if "task_id" in query:
        tasks = [t for t in tasks if t.task_id == query["task_id"]]
    tasks.sort(key=_sort_key, reverse=query.get("order") != "asc")
    end = None if limit is None else offset + limit
    return tasks[offset:end]


__all__ = ["DEFAULT_LIMIT", "all_tasks", "select"]
