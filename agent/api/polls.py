"""Recent answers to status polls, kept `POLL_FRESH` seconds: a task that many callers poll at once (a page, a
backend and a script on the same run; a burst of polls on FC's front) costs one store read per period, not one
each. A poll can therefore be up to `POLL_FRESH` behind the store, less than the writer's own folding of progress
(`PROGRESS_INTERVAL`, 0.25 s), so no caller can tell. Answers carrying results (base64 images) are not kept.
An answer is kept for the principal it was read for: another key asking reads the store (and gets its 404)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

POLL_FRESH = 0.1
KEPT = 1024  # answers kept at most (tasks polled within one period)
MAX_KEPT_BYTES = 64 * 1024  # larger answers are those with results


@dataclass(frozen=True)
class _Answer:
    at: float
    body: bytes
    content_type: str
    headers: dict[str, str]


class RecentPolls:
    def __init__(self, fresh: float = POLL_FRESH) -> None:
        self.fresh = fresh
        self._answers: OrderedDict[tuple[str, bool, str], _Answer] = OrderedDict()

    def answer(self, task_id: str, results: bool, reader: str) -> web.Response | None:
        kept = self._answers.get((task_id, results, reader))
        if kept is None or time.monotonic() - kept.at >= self.fresh:
            return None
        return web.Response(body=kept.body, content_type=kept.content_type, headers=kept.headers)

    def keep(self, task_id: str, results: bool, reader: str, response: web.Response) -> None:
        body = response.body
        if not isinstance(body, bytes) or len(body) > MAX_KEPT_BYTES or response.status != 200:
            return
        headers = {key: value for key, value in response.headers.items() if key.lower() != "content-type"}
        self._answers[(task_id, results, reader)] = _Answer(time.monotonic(), body, response.content_type, headers)
        self._answers.move_to_end((task_id, results, reader))
        if len(self._answers) > KEPT:
            self._answers.popitem(last=False)

    def forget(self, task_id: str) -> None:
        """After a change made here (a cancel): the next poll reads the store."""
        for kept in [kept for kept in self._answers if kept[0] == task_id]:
            del self._answers[kept]
