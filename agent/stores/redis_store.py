"""Tasks in Redis (or Tair): one key per task, results and cancel requests in keys of their own.

Every key carries what is left of its task's life, refreshed on each write (a running task's heartbeat restarts
it), so a task whose instance vanished expires on its own, and a finished one `ttl` seconds after it finished, as
in every store. A claim is atomic: of two instances claiming one id, exactly one wins. A new id, the usual case,
is claimed by one script in one round trip (`SET NX`); an id that exists is decided under WATCH/MULTI.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar, cast

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from agent.errors import StoreUnavailable
from agent.stores.base import LoggedEvent, TaskStore
from agent.stores.claims import takes_over
from agent.tasks.model import Results, Task, check_task_id

PREFIX = "comfyui-agent"
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
MAX_BLOCK_SECONDS = 4.0  # below the client's socket timeout (5 s): a blocked XREAD must not read as a dead Redis
EVENTS_PER_READ = 500
CLAIM_ATTEMPTS = 10
_CLAIM_NEW = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return 1
end
return 0
"""
_SAVE = """
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2]) end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
"""
_APPEND = """
for i = 1, #ARGV - 1, 2 do redis.call('XADD', KEYS[1], '*', 'kind', ARGV[i], 'data', ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
"""
T = TypeVar("T")
StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None


class RedisStore(TaskStore):
    def __init__(self, url: str, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self.redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30,
                                    retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                                    retry_on_error=[ConnectionError, TimeoutError])
        self._claim_new = self.redis.register_script(_CLAIM_NEW)  # their digests only: loaded at the first call
        self._save = self.redis.register_script(_SAVE)  # one command, where MULTI/EXEC is four
        self._append = self.redis.register_script(_APPEND)  # a run's entries in one command, not one each

    @staticmethod
    def _key(kind: str, task_id: str) -> str:
        return f"{PREFIX}:{kind}:{check_task_id(task_id)}"

    @property
    def _expiry(self) -> int:
        return max(1, int(self.ttl))

    def _life_left(self, task: Task) -> int:
        """Whole seconds until the task expires; 0 when it already has."""
        return max(0, math.ceil(self.ttl - (time.time() - task.lived_until)))

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except RedisError as exc:
            raise StoreUnavailable(f"Redis cannot be used: {exc}") from exc

    def _parse(self, raw: bytes | str | None) -> Task | None:
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValidationError:
            return None

    async def claim(self, task: Task) -> Task | None:
        key = self._key("task", task.task_id)
        others = [self._key("results", task.task_id), self._key("cancel", task.task_id),
                  self._key("events", task.task_id)]
        life = max(1, self._life_left(task))  # a hand-off lives until FC's last delivery, and `ttl` after it
        if await self._call(lambda: self._claim_new(keys=[key, *others], args=[task.model_dump_json(), life])):
            return None

        async def attempt() -> Task | None:
            async with self.redis.pipeline(transaction=True) as pipe:
                for _ in range(CLAIM_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        existing = self._parse(await pipe.get(key))
                        replay = self.decide_claim(existing, task)
                        if replay is not None:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return replay
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, task.model_dump_json(), ex=life)
                        pipe.delete(*(others[:1] if takes_over(existing, task) else others))
                        await pipe.execute()
                        return None
                    except WatchError:
                        continue
            raise StoreUnavailable(f"could not claim task {task.task_id}: it kept changing under the claim")

        return await self._call(attempt)

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json()
        task_key, results_key = self._key("task", task.task_id), self._key("results", task.task_id)
        life = self._life_left(task)

        if not life:
            await self._call(lambda: self.redis.delete(task_key, results_key))
            return
        encoded = "" if results is None else json.dumps(results, separators=(",", ":"))
        await self._call(lambda: self._save(keys=[task_key, results_key], args=[data, life, encoded]))

    async def load(self, task_id: str) -> Task | None:
        key = self._key("task", task_id)
        task = self._parse(await self._call(lambda: self.redis.get(key)))
        return None if task is None or self.expired(task) else task

    async def get_results(self, task_id: str) -> Results | None:
        key = self._key("results", task_id)
        raw = await self._call(lambda: self.redis.get(key))
        return None if raw is None else json.loads(raw)

    async def request_cancel(self, task_id: str) -> None:
        key = self._key("cancel", task_id)
        await self._call(lambda: self.redis.set(key, b"1", ex=self._expiry))

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        ordered = list(task_ids)

        async def ask() -> list[int]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in ordered:
                    pipe.exists(self._key("cancel", task_id))
                return list(await pipe.execute())

        return {task_id for task_id, found in zip(ordered, await self._call(ask), strict=True) if found}

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """A Redis stream per task: its entry ids are the events' ids, and XREAD waits for new ones."""
        key = self._key("events", task_id)
        fields = [part for kind, body in events for part in (kind, json.dumps(body, separators=(",", ":")))]
        await self._call(lambda: self._append(keys=[key], args=[*fields, self._expiry]))

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        key = self._key("events", task_id)
        start = after if after is not None and STREAM_ID.fullmatch(after) else "0-0"
        block = max(1, int(min(wait, MAX_BLOCK_SECONDS) * 1000)) if wait > 0 else None
        replies: StreamReply = await self._call(lambda: self.redis.xread(  # type: ignore[arg-type,return-value]
            {key: start}, count=EVENTS_PER_READ, block=block))
        return [LoggedEvent(entry_id.decode(), fields[b"kind"].decode(), json.loads(fields[b"data"]))
                for _, entries in replies or () for entry_id, fields in entries]

    async def put_shared(self, name: str, data: bytes) -> None:
        key = self._key("shared", name)
        await self._call(lambda: self.redis.set(key, data))

    async def get_shared(self, name: str) -> bytes | None:
        key = self._key("shared", name)
        return cast("bytes | None", await self._call(lambda: self.redis.get(key)))  # no decode_responses: bytes

    async def close(self) -> None:
        await self.redis.aclose()
