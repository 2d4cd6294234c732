"""The Redis (or Tair) backend: one key per task record, its results, cancel request, event log and each shared
document in keys of their own (`comfyui-agent:{kind}:{id}`), over one client the four concerns share.

Every key carries what is left of its task's life, refreshed on each write (a running task's heartbeat restarts
it), so a task whose instance vanished expires on its own, and a finished one `ttl` seconds after it finished, as
in every backend. A claim is atomic: of two instances claiming one id, exactly one wins. A new id, the usual case,
is claimed by one script in one round trip (`SET NX`) that also deletes the id's results, cancel request and
event log keys; an id that exists is decided under WATCH/MULTI, whose transaction deletes them likewise (all but
the results when a worker's delivery takes a handed-off task over).
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
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, WatchError

from agent.errors import StoreUnavailable
from agent.stores.bundle import Stores
from agent.stores.cancels import CancelMailbox
from agent.stores.claims import takes_over
from agent.stores.idempotency import KEY_LIFE, IdempotencyKeys, key_name
from agent.stores.jobs import JobEntry, JobIndex, new_job_id
from agent.stores.keys import ApiKeys, KeyRecord
from agent.stores.log import EventLog, LoggedEvent
from agent.stores.meters import Meters
from agent.stores.records import TaskRecords
from agent.stores.shared import SharedDocuments
from agent.stores.usage import LEDGER_DAYS, UsageEntry, UsageLedger
from agent.stores.workflows import PublishedWorkflows
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
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""
# A key's record by name in one hash, its live digest in another: adding is both or neither, revoking drops the
# digest in the same step.
_ADD_KEY = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
_REVOKE_KEY = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[3])
"""
# agent/stores/meters.py's `refill`, as one step: the bucket is (tokens, when) in a hash that lives two minutes.
_TAKE = """
local per_minute, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'w')
local tokens, last = tonumber(state[1]) or per_minute, tonumber(state[2]) or now
tokens = math.min(per_minute, tokens + math.max(0, now - last) * per_minute / 60)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) * 60 / per_minute end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'w', ARGV[2])
redis.call('EXPIRE', KEYS[1], 120)
return string.format('%.17g', wait)
"""
# Leases: task ids scored by when they lapse; lapsed ones go before counting.
_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])))
return 1
"""
_LEASED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""
# A run's entry once, and its GPU seconds added with it.
_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""
API_KEYS_KEY, API_DIGESTS_KEY = f"{PREFIX}:api-keys", f"{PREFIX}:api-key-digests"
JOBS_KEY = f"{PREFIX}:jobs"
WORKFLOW_NAMES_KEY = f"{PREFIX}:workflows"
T = TypeVar("T")
StreamReply = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None


def _key(kind: str, task_id: str) -> str:
    return f"{PREFIX}:{kind}:{check_task_id(task_id)}"


def _expiry(ttl: float) -> int:
    return max(1, int(ttl))


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except RedisError as exc:
        raise StoreUnavailable(f"Redis cannot be used: {exc}") from exc


class RedisRecords(TaskRecords):
    def __init__(self, redis: Redis, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self.redis = redis
        self._claim_new = redis.register_script(_CLAIM_NEW)  # their digests only: loaded at the first call
        self._save = redis.register_script(_SAVE)  # one command, where MULTI/EXEC is four

    def _life_left(self, task: Task) -> int:
        """Whole seconds until the task expires; 0 when it already has."""
        return max(0, math.ceil(self.ttl - (time.time() - task.lived_until)))

    def _parse(self, raw: bytes | str | None) -> Task | None:
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValidationError:
            return None

    async def claim(self, task: Task) -> Task | None:
        key = _key("task", task.task_id)
        others = [_key("results", task.task_id), _key("cancel", task.task_id), _key("events", task.task_id)]
        life = max(1, self._life_left(task))  # a hand-off lives until FC's last delivery, and `ttl` after it
        if await _call(lambda: self._claim_new(keys=[key, *others], args=[task.model_dump_json(), life])):
            return None
        return await _call(lambda: self._claim_existing(task, key, others, life))

    async def _claim_existing(self, task: Task, key: str, others: list[str], life: int) -> Task | None:
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

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json()
        task_key, results_key = _key("task", task.task_id), _key("results", task.task_id)
        life = self._life_left(task)

        if not life:
            await _call(lambda: self.redis.delete(task_key, results_key))
            return
        encoded = "" if results is None else json.dumps(results, separators=(",", ":"))
        await _call(lambda: self._save(keys=[task_key, results_key], args=[data, life, encoded]))

    async def load(self, task_id: str) -> Task | None:
        key = _key("task", task_id)
        task = self._parse(await _call(lambda: self.redis.get(key)))
        return None if task is None or self.expired(task) else task

    async def get_results(self, task_id: str) -> Results | None:
        key = _key("results", task_id)
        raw = await _call(lambda: self.redis.get(key))
        return None if raw is None else json.loads(raw)

    async def sweep(self) -> int:
        """Nothing to do: every key expires by itself."""
        return 0


class RedisCancels(CancelMailbox):
    def __init__(self, redis: Redis, ttl: float) -> None:
        self.redis = redis
        self.ttl = ttl

    async def request_cancel(self, task_id: str) -> None:
        key = _key("cancel", task_id)
        await _call(lambda: self.redis.set(key, b"1", ex=_expiry(self.ttl)))

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        ordered = list(task_ids)

        async def ask() -> list[int]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in ordered:
                    pipe.exists(_key("cancel", task_id))
                return list(await pipe.execute())

        return {task_id for task_id, found in zip(ordered, await _call(ask), strict=True) if found}


class RedisLog(EventLog):
    """A Redis stream per task: its entry ids are the events' ids, and XREAD waits for new ones."""

    def __init__(self, redis: Redis, ttl: float) -> None:
        self.redis = redis
        self.ttl = ttl
        self._append = redis.register_script(_APPEND)  # a run's entries in one command, not one each

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        key = _key("events", task_id)
        fields = [part for kind, body in events for part in (kind, json.dumps(body, separators=(",", ":")))]
        await _call(lambda: self._append(keys=[key], args=[*fields, _expiry(self.ttl)]))

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        key = _key("events", task_id)
        start = after if after is not None and STREAM_ID.fullmatch(after) else "0-0"
        block = max(1, int(min(wait, MAX_BLOCK_SECONDS) * 1000)) if wait > 0 else None
        replies: StreamReply = await _call(lambda: self.redis.xread(  # type: ignore[arg-type,return-value]
            {key: start}, count=EVENTS_PER_READ, block=block))
        return [LoggedEvent(entry_id.decode(), fields[b"kind"].decode(), json.loads(fields[b"data"]))
                for _, entries in replies or () for entry_id, fields in entries]


class RedisShared(SharedDocuments):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put_shared(self, name: str, data: bytes) -> None:
        key = _key("shared", name)
        await _call(lambda: self.redis.set(key, data))

    async def get_shared(self, name: str) -> bytes | None:
        key = _key("shared", name)
        return cast("bytes | None", await _call(lambda: self.redis.get(key)))  # no decode_responses: bytes

    async def delete_shared(self, name: str) -> bool:
        key = _key("shared", name)
        return bool(await _call(lambda: self.redis.delete(key)))


class RedisJobs(JobIndex):
    """The ids in one sorted set of equal scores, read in the ids' own (time) order; each entry a key of its own
    that expires with its life. Adding one trims the ids older than any live entry."""

    def __init__(self, redis: Redis, ttl: float) -> None:
        super().__init__(ttl)
        self.redis = redis

    async def add(self, entry: JobEntry) -> None:
        oldest_alive = new_job_id(time.time() - self.ttl)[:13]  # the millisecond part of an id: below is expired

        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(_key("job", entry.job_id), entry.model_dump_json(), ex=_expiry(self.ttl))
                pipe.zadd(JOBS_KEY, {entry.job_id: 0})
                pipe.zremrangebylex(JOBS_KEY, "-", f"({oldest_alive}")
                await pipe.execute()

        await _call(write)

    async def entry(self, job_id: str) -> JobEntry | None:
        if not self.alive(job_id):
            return None
        raw = await _call(lambda: self.redis.get(_key("job", job_id)))
        return None if raw is None else JobEntry.model_validate_json(raw)

    async def remove(self, job_id: str) -> None:
        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(_key("job", job_id))
                pipe.zrem(JOBS_KEY, job_id)
                await pipe.execute()

        await _call(write)

    async def page(self, before: str | None, limit: int) -> list[str]:
        newest = f"({before}" if before is not None else "+"
        ids = await _call(lambda: self.redis.zrevrangebylex(JOBS_KEY, newest, "-", start=0, num=limit))
        now = time.time()
        return [job_id for job_id in (_text(raw) for raw in ids) if self.alive(job_id, now)]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisIdempotency(IdempotencyKeys):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._give_back = redis.register_script(_GIVE_BACK)

    async def take(self, key: str, job_id: str) -> str | None:
        name = _key("idempotency", key_name(key))
        while not await _call(lambda: self.redis.set(name, job_id, nx=True, ex=KEY_LIFE)):
            holder = await _call(lambda: self.redis.get(name))
            if holder is not None:  # else it expired between the two commands: take it again
                return cast("bytes", holder).decode()
        return None

    async def give_back(self, key: str, job_id: str) -> None:
        name = _key("idempotency", key_name(key))
        await _call(lambda: self._give_back(keys=[name], args=[job_id]))


class RedisWorkflows(PublishedWorkflows):
    """A hash per name: `next` (the last number given), `v:N` (version N's document), `r:N` (retired); a set of the
    names. HINCRBY numbers the versions, so two publishers at once get two."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, name: str, document: bytes) -> int:
        key = _key("workflow", name)
        number = int(await _call(lambda: self.redis.hincrby(key, "next", 1)))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, f"v:{number}", document)
            pipe.sadd(WORKFLOW_NAMES_KEY, name)
            await _call(pipe.execute)
        return number

    async def versions(self, name: str) -> dict[int, bool]:
        fields = [cast("bytes", field).decode() for field in
                  await _call(lambda: self.redis.hkeys(_key("workflow", name)))]
        retired = {field[2:] for field in fields if field.startswith("r:")}
        return {int(field[2:]): field[2:] in retired for field in sorted(
            (field for field in fields if field.startswith("v:")), key=lambda field: int(field[2:]))}

    async def read(self, name: str, version: int) -> bytes | None:
        return cast("bytes | None", await _call(lambda: self.redis.hget(_key("workflow", name), f"v:{version}")))

    async def retire(self, name: str, version: int) -> bool:
        key = _key("workflow", name)
        if not await _call(lambda: self.redis.hexists(key, f"v:{version}")):
            return False
        await _call(lambda: self.redis.hset(key, f"r:{version}", 1))
        return True

    async def names(self) -> list[str]:
        return sorted(cast("bytes", name).decode() for name in
                      await _call(lambda: self.redis.smembers(WORKFLOW_NAMES_KEY)))


class RedisApiKeys(ApiKeys):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(_ADD_KEY)
        self._revoke = redis.register_script(_REVOKE_KEY)

    async def add(self, record: KeyRecord) -> bool:
        return bool(await _call(lambda: self._add(keys=[API_KEYS_KEY, API_DIGESTS_KEY],
                                                  args=[record.name, record.model_dump_json(), record.digest])))

    async def by_digest(self, digest: str) -> KeyRecord | None:
        name = await _call(lambda: self.redis.hget(API_DIGESTS_KEY, digest))
        if name is None:
            return None
        raw = await _call(lambda: self.redis.hget(API_KEYS_KEY, cast("bytes", name)))
        return None if raw is None else KeyRecord.model_validate_json(raw)

    async def listed(self) -> list[KeyRecord]:
        records = await _call(lambda: self.redis.hvals(API_KEYS_KEY))
        return sorted((KeyRecord.model_validate_json(raw) for raw in records), key=lambda record: record.name)

    async def revoke(self, name: str, at: float) -> KeyRecord | None:
        raw = await _call(lambda: self.redis.hget(API_KEYS_KEY, name))
        if raw is None:
            return None
        record = KeyRecord.model_validate_json(raw)
        if record.revoked_at is None:
            record.revoked_at = at
            await _call(lambda: self._revoke(keys=[API_KEYS_KEY, API_DIGESTS_KEY],
                                             args=[name, record.model_dump_json(), record.digest]))
        return record


class RedisMeters(Meters):
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._lease = redis.register_script(_LEASE)
        self._leased = redis.register_script(_LEASED)

    async def take(self, name: str, per_minute: int, now: float) -> float:
        return float(await _call(lambda: self._take(keys=[_key("bucket", name)], args=[per_minute, repr(now)])))

    async def lease(self, name: str, task_id: str, most: int, until: float) -> bool:
        return bool(await _call(lambda: self._lease(keys=[_key("leases", name)],
                                                    args=[task_id, most, repr(until), repr(time.time())])))

    async def release(self, name: str, task_id: str) -> None:
        await _call(lambda: self.redis.zrem(_key("leases", name), task_id))

    async def leased(self, name: str, now: float) -> int:
        return int(await _call(lambda: self._leased(keys=[_key("leases", name)], args=[repr(now)])))


class RedisUsage(UsageLedger):
    """A hash of entries per day (by task id), and a hash per day of GPU seconds by key, added to in the same
    step as a new entry (HINCRBYFLOAT: exact across instances); both expire LEDGER_DAYS after their day."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._record = redis.register_script(_RECORD)

    async def record(self, entry: UsageEntry) -> None:
        keys = [_key("usage", entry.day), _key("gpu", entry.day)]
        args: list[str | int] = [entry.task_id, entry.model_dump_json(), entry.key, repr(entry.gpu_seconds),
                                 LEDGER_DAYS * 86400]
        await _call(lambda: self._record(keys=keys, args=args))

    async def entries(self, day: str) -> list[UsageEntry]:
        raw = await _call(lambda: self.redis.hvals(_key("usage", day)))
        return [UsageEntry.model_validate_json(item) for item in raw]

    async def gpu_seconds(self, key: str, days: list[str]) -> list[float]:
        async def read() -> list[bytes | None]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.hget(_key("gpu", day), key)
                return list(await pipe.execute())

        return [0.0 if value is None else float(value) for value in await _call(read)]


def redis_stores(url: str, ttl: float, stale_after: float) -> Stores:
    """Every concern over one client (made here, connected at the first command)."""
    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30,
                           retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                           retry_on_error=[ConnectionError, TimeoutError])
    return Stores(RedisRecords(redis, ttl, stale_after), RedisLog(redis, ttl), RedisCancels(redis, ttl),
                  RedisShared(redis), RedisJobs(redis, ttl), RedisIdempotency(redis), RedisWorkflows(redis),
                  RedisApiKeys(redis), RedisMeters(redis), RedisUsage(redis), redis.aclose)
