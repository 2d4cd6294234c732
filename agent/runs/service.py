"""The run service: every run of this instance goes through `submit`, which admits it, claims its task id and
starts it; `cancel`, `drain` and `close` reach the runs it holds.

Admission: at most `max_active` runs are in flight (inputs, ComfyUI's queue, ComfyUI itself); a held run beyond
that is refused at once with `Overloaded`, before anything is stored or uploaded. A run asked for in the
background instead waits in this instance, holding no socket and no connection, up to `max_waiting` of them,
and starts when a place frees. A place is reserved before the claim's first await, so a burst can never admit
more than the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError, Canceled, ComfyUICrashed, ComfyUIUnavailable, Overloaded
from agent.logs import log_event
from agent.runs.events import RunEvents, RunQueued
from agent.runs.run import ComfyParts, Run, RunOutcome
from agent.stores.cancels import CancelMailbox
from agent.stores.records import TaskRecords
from agent.tasks.model import Task, request_hash, when_long
from agent.tasks.options import RunOptions

if TYPE_CHECKING:
    from agent.outputs.delivery import OutputStore

logger = logging.getLogger("agent.run")

RETRY_AFTER_STARTING = 5  # seconds a caller is told to wait while ComfyUI starts
RETRY_AFTER_STOPPING = 1  # another instance takes the run
RETRY_AFTER_FULL = 1  # places free as ComfyUI finishes prompts, several a second for small ones
CANCEL_WAIT = 10.0  # a cancel request waits this long to answer with the task's end
WATCH_TICK = 1.0  # how often cancel requests left in the store by other instances are looked for


class RunService:
    def __init__(self, comfy: ComfyParts, records: TaskRecords, cancels: CancelMailbox, events: RunEvents, *,
                 instance_id: str, run_timeout: float, max_active: int, max_waiting: int,
                 output_store: OutputStore | None = None) -> None:
        self.comfy = comfy
        self.output_store = output_store
        self.records = records
        self.cancels = cancels
        self.events = events
        self.instance_id = instance_id
        self.run_timeout = run_timeout
        self.max_active = max_active
        self.max_waiting = max_waiting
        self._runs: dict[str, Run] = {}
        self._active = 0  # places taken, reserved ones included
        self._waiting: deque[Run] = deque()
        self._reserved_waiting = 0
        self._work: set[asyncio.Future[Any]] = set()
        self._cancel_watch: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    @property
    def full(self) -> bool:
        """No held run can be taken now."""
        return self._active >= self.max_active

    @property
    def active_runs(self) -> int:
        return self._active

    @property
    def waiting_runs(self) -> int:
        return len(self._waiting)

    async def submit(self, task_id: str, prompt: dict[str, Any], options: RunOptions, *,
                     background: bool = False, key: str | None = None) -> Run:
        """The run, started or waiting its turn; a retried delivery of a task that succeeded comes back ended."""
        starts_now = self.check_room(background)
        self._reserve(starts_now, +1)
        try:
            digest = await when_long(request_hash, prompt)
        except BaseException:
            self._reserve(starts_now, -1)
            raise
        run = Run(task_id, prompt, options, owner=self.instance_id, timeout=self.run_timeout, events=self.events,
                  digest=digest, key=key)
        began = time.monotonic()
        try:
            replay = await self.records.claim(run.task)
        except BaseException:
            self._reserve(starts_now, -1)
            raise
        run.task.timings.claim = round(time.monotonic() - began, 4)
        if replay is not None:
            self._reserve(starts_now, -1)
            log_event(logger, "run.replayed", task_id)
            run.replayed(replay, await self.records.get_results(task_id))
            return run
        self._runs[task_id] = run
        self._idle.clear()
        self.events.publish(RunQueued(task=run.snapshot()))
        if starts_now:
            self._keep(asyncio.ensure_future(self._execute(run)))
        else:
            self._reserved_waiting -= 1
            self._waiting.append(run)
            self._start_waiting()  # a place may have freed while the claim was written
        self._watch_cancels()
        return run

    def running(self, task_id: str) -> Run | None:
        """The run of this id on this instance, while it has not ended."""
        return self._runs.get(task_id)

    def check_room(self, background: bool) -> bool:
        """Whether a run would start now (True) or wait (False); raises when it would be refused. Cheap, so the
        API asks before it even reads a request's body."""
        if self.draining:
            raise ComfyUIUnavailable("this instance is stopping; send the run to another one",
                                     retry_after=RETRY_AFTER_STOPPING)
        if not self.comfy.host.ready:
            raise ComfyUIUnavailable("ComfyUI is starting or restarting; try again shortly",
                                     retry_after=RETRY_AFTER_STARTING)
        if not self.full:
            return True
        if background and len(self._waiting) + self._reserved_waiting < self.max_waiting:
            return False
        raise Overloaded(f"this instance has {self._active} runs in flight, as many as it takes "
                         f"(MAX_ACTIVE_RUNS={self.max_active}); try again shortly", retry_after=RETRY_AFTER_FULL)

    def _reserve(self, starts_now: bool, count: int) -> None:
        if starts_now:
            self._active += count
        else:
            self._reserved_waiting += count
        if count < 0:
            self._start_waiting()  # the place held for a claim that came to nothing

    async def _execute(self, run: Run) -> RunOutcome:
        try:
            return await run.execute(self.comfy, self.output_store)
        finally:
            self._active -= 1
            self._release(run)
            self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and not self.full:
            self._active += 1
            self._keep(asyncio.ensure_future(self._execute(self._waiting.popleft())))

    def _release(self, run: Run) -> None:
        if self._runs.get(run.task_id) is run:
            del self._runs[run.task_id]
        if not self._runs:
            self._idle.set()

    def _keep(self, work: asyncio.Future[Any]) -> None:
        """Background work is referenced until done (the loop keeps only weak references to tasks)."""
        self._work.add(work)
        work.add_done_callback(self._work.discard)

    async def cancel(self, task_id: str) -> Task:
        """Stop a task wherever it runs: at once if it runs here, else through word left in the store for its
        owner; answers with the task once it ended, or as it is after CANCEL_WAIT seconds."""
        task = await self.records.find(task_id)
        if task.status.finished:
            return task
        run = self._runs.get(task_id)
        log_event(logger, "run.cancel_requested", task_id, owner=task.owner, here=run is not None)
        if run is not None:
            self._cancel_here(run)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_WAIT):
                    return (await run.outcome()).task
            return run.task
        await self.cancels.request_cancel(task_id)
        return await self.records.ended_within(task, CANCEL_WAIT)

    def _cancel_here(self, run: Run) -> None:
        if run in self._waiting:
            self._waiting.remove(run)
            self._keep(asyncio.ensure_future(self._abandon(run, Canceled(
                "the run was canceled before it started", comfyui_released=True))))
        else:
            run.cancel()

    async def _abandon(self, run: Run, error: AgentError) -> RunOutcome:
        try:
            return await run.abandon(error)
        finally:
            self._release(run)

    def _watch_cancels(self) -> None:
        if self._cancel_watch is None or self._cancel_watch.done():
            self._cancel_watch = asyncio.ensure_future(self._cancels_from_the_store())

    async def _cancels_from_the_store(self) -> None:
        """Cancel requests other instances left in the store for runs held here: one question for all of them."""
        while self._runs:
            await asyncio.sleep(WATCH_TICK)
            with contextlib.suppress(AgentError):  # a store outage delays a cancel, it does not stop the runs
                for task_id in await self.cancels.cancels_requested(list(self._runs)):
                    run = self._runs.get(task_id)
                    if run is not None and not run.ended:
                        self._cancel_here(run)

    async def drain(self, grace: float) -> int:
        """Take no new run; wait up to `grace` seconds for the open ones. Returns how many are still open."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        log_event(logger, "agent.drained", open_runs=len(self._runs))
        return len(self._runs)

    def resume(self) -> None:
        """A new initialization (FC thawing an instance it had asked to stop) takes runs again."""
        self.draining = False

    async def close(self) -> None:
        """Agent shutdown: runs still going end now, their tasks written as failed."""
        if self._cancel_watch is not None:
            self._cancel_watch.cancel()
        going = list(self._work)
        for work in going:
            work.cancel()
        waiting, self._waiting = list(self._waiting), deque()
        stopped = ComfyUICrashed("the agent stopped before the run started")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*going, *(self._abandon(run, stopped) for run in waiting), return_exceptions=True)
