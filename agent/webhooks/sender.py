"""The subscriber that sends a run's events to its webhook.

Per task, events go one at a time and in order (a receiver sees `task.started` before `task.succeeded`). Each is
retried with backoff after a connection failure, a timeout, a 429 or a 5xx, and given up after any other answer
(the receiver refused it; redirects are not followed), and never retried when the address guard refuses the
receiver's address: that answer would be the same every time. The final event is awaited before the run's request
ends, for at most `WEBHOOK_TIMEOUT`: FC freezes an instance once no request is open, and a frozen instance
sends nothing. The sender keeps each task's delivery record (attempts, last answer, what was never delivered) as
its own, and hands it back at the end (`report`), so it is on the task's final record, never changed in place. A
slow or dead receiver never changes a run's outcome. Addresses pass the same guard as input URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.inputs.guard import AddressRefused, HostUnresolved
from agent.logs import log_event, short
from agent.metrics import Metrics
from agent.runs.events import RunEvent, RunProgressed, RunQueued, RunStarted
from agent.runs.outbox import Outbox
from agent.tasks.model import Task, TaskStatus, Webhook, WebhookEvent
from agent.tasks.view import task_view

if TYPE_CHECKING:
    import httpx

    from agent.config import WebhookSettings

logger = logging.getLogger("agent.webhooks")

RETRY_FIRST = 0.25
RETRY_LONGEST = 4.0
PROGRESS_EVERY = 1.0  # task.progress at most this often: a receiver wants news, not every sampler step
SEND_TIMEOUT = 5.0
FINAL = {TaskStatus.SUCCEEDED: WebhookEvent.SUCCEEDED, TaskStatus.FAILED: WebhookEvent.FAILED,
         TaskStatus.CANCELED: WebhookEvent.CANCELED}


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def _pause(seconds: float, stop: asyncio.Event | None) -> bool:
    """Wait before the next attempt; False when `stop` came first."""
    if stop is None:
        await asyncio.sleep(seconds)
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


@dataclass
class _Hook:
    """One task's webhook policy: its delivery record (the sender's own, reported at the end), the task as last
    heard of, and the progress throttle."""

    record: Webhook
    task: Task
    sent: int = 0
    ending: asyncio.Event = field(default_factory=asyncio.Event)
    progress_at: float = 0.0
    progress_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class _Message:
    hook: _Hook  # whose record its delivery goes on
    message_id: str
    kind: WebhookEvent
    data: dict[str, object]
    final: bool  # retried for the whole WEBHOOK_TIMEOUT; the others stop once the run ends


def _queued(pending: list[_Message] | None, message: _Message) -> list[_Message]:
    return [*(pending or ()), message]


class WebhookSender:
    """Per task, messages go through the outbox (agent/runs/outbox.py) with no interval: one at a time, in order.
    Once the run ends, what is still being retried stops retrying (an attempt on its way completes), so the final
    event has its whole `WEBHOOK_TIMEOUT`."""

    def __init__(self, settings: WebhookSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.outbox: Outbox[_Message, list[_Message]] = Outbox(self._send, _queued, 0.0, logger, "webhook")
        self._hooks: dict[str, _Hook] = {}
        self._client: httpx.AsyncClient | None = None

    def notify(self, event: RunEvent) -> None:
        task = event.task
        hook = self._hooks.get(task.task_id)
        if hook is None:
            if not isinstance(event, RunQueued) or task.webhook is None:
                return
            hook = self._hooks[task.task_id] = _Hook(task.webhook.model_copy(deep=True), task)
        hook.task = task
        if isinstance(event, RunStarted):
            self._put(hook, WebhookEvent.STARTED)
        elif isinstance(event, RunProgressed):
            self._progressed(hook)

    async def report(self, ending: Task) -> Task:
        """Send the final event, waiting for it at most `WEBHOOK_TIMEOUT`; `ending` with the delivery record."""
        if ending.webhook is None:
            return ending
        hook = self._hooks.pop(ending.task_id, None) or _Hook(ending.webhook.model_copy(deep=True), ending)
        hook.task = ending
        if hook.progress_timer is not None:
            hook.progress_timer.cancel()
        hook.ending.set()
        kind = FINAL.get(ending.status)
        final = self._message(hook, kind, final=True) if kind is not None else None
        written = self.outbox.close(ending.task_id, *(() if final is None else (final,)))
        if written is not None:
            await self._awaited(hook, written, kind)
        return ending.model_copy(update={"webhook": hook.record.model_copy(deep=True)})  # as it was at the end

    async def _awaited(self, hook: _Hook, written: asyncio.Future[None], kind: WebhookEvent | None) -> None:
        """Past `WEBHOOK_TIMEOUT` the final event is given up, and the record says so."""
        timeout = self.settings.timeout
        done, _ = await asyncio.wait({written}, timeout=timeout)
        if done:
            return
        written.cancel()
        if kind is not None and kind not in hook.record.undelivered:
            hook.record.undelivered.append(kind)
        hook.record.last_error = hook.record.last_error or f"not delivered within {timeout:g} s"

    def _message(self, hook: _Hook, kind: WebhookEvent, final: bool = False) -> _Message | None:
        """The event as it goes out: the task as it is now, with its delivery so far."""
        if kind not in hook.record.events:
            return None
        hook.sent += 1
        task = hook.task.model_copy(update={"webhook": hook.record.model_copy(deep=True)})
        return _Message(hook, f"msg_{task.task_id}_{hook.sent}", kind, task_view(task), final)

    def _put(self, hook: _Hook, kind: WebhookEvent) -> None:
        message = self._message(hook, kind)
        if message is not None:
            self.outbox.put(hook.task.task_id, message)

    def _progressed(self, hook: _Hook) -> None:
        """Leading and trailing: the first change goes at once, the rest at most once a second."""
        if WebhookEvent.PROGRESS not in hook.record.events or hook.progress_timer is not None:
            return
        wait = hook.progress_at + PROGRESS_EVERY - time.monotonic()
        if wait <= 0:
            self._progress(hook)
        else:
            hook.progress_timer = asyncio.get_running_loop().call_later(wait, self._progress, hook)

    def _progress(self, hook: _Hook) -> None:
        hook.progress_timer = None
        hook.progress_at = time.monotonic()
        self._put(hook, WebhookEvent.PROGRESS)

    async def _send(self, _task_id: str, messages: list[_Message]) -> None:
        for message in messages:
            await self.deliver(message.hook.record, message.message_id, message.kind, message.data,
                               None if message.final else message.hook.ending)

    @property
    def client(self) -> httpx.AsyncClient:
        """Made at the first webhook: httpx and its pool cost memory an agent without webhooks never needs."""
        if self._client is None:
            import httpx

            from agent.inputs.fetch import GuardedTransport
            from agent.inputs.guard import GuardedBackend

            backend = GuardedBackend(self.settings.addresses.allow_private, self.settings.addresses.allow_hosts)
            self._client = httpx.AsyncClient(transport=GuardedTransport(backend), timeout=SEND_TIMEOUT,
                                             follow_redirects=False, trust_env=False,
                                             headers={"Content-Type": "application/json"})
        return self._client

    def _signed(self, message_id: str, body: str) -> dict[str, str]:
        now = datetime.datetime.now(datetime.UTC)
        headers = {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp()))}
        if self.settings.secret is not None:
            from standardwebhooks import Webhook as Signer

            signer = Signer(self.settings.secret.get_secret_value())
            headers["webhook-signature"] = signer.sign(message_id, now, body)
        return headers

    async def deliver(self, webhook: Webhook, message_id: str, kind: WebhookEvent, data: dict[str, object],
                      stop: asyncio.Event | None = None) -> None:
        """Send one event until it is taken, refused, its time is up or `stop` is set; the outcome goes on
        the webhook."""
        import httpx

        body = json.dumps({"type": kind.value, "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
                           "data": data}, separators=(",", ":"))
        deadline = time.monotonic() + self.settings.timeout
        delay = RETRY_FIRST
        while True:
            webhook.attempts += 1
            try:
                response = await self.client.post(webhook.url, content=body, headers=self._signed(message_id, body))
            except AddressRefused as exc:
                webhook.last_status, webhook.last_error = None, short(f"refused address: {exc}")
                break
            except (httpx.HTTPError, HostUnresolved, OSError) as exc:
                webhook.last_status, webhook.last_error = None, short(f"{exc.__class__.__name__}: {exc}")
            else:
                webhook.last_status, webhook.last_error = response.status_code, None
                if response.status_code < 300:
                    self.metrics.webhooks.labels(kind.value, "delivered").inc()
                    return
                if not _retryable(response.status_code):
                    break
            if time.monotonic() + delay > deadline or not await _pause(delay, stop):
                break
            delay = min(delay * 2, RETRY_LONGEST)
        webhook.undelivered.append(kind)
        self.metrics.webhooks.labels(kind.value, "failed").inc()
        log_event(logger, "webhook.undelivered", str(data.get("task_id")), level=logging.WARNING, type=kind.value,
                  attempts=webhook.attempts, status=webhook.last_status, error=webhook.last_error)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
