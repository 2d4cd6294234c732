"""The subscriber that sends a run's events to its webhook.

Per task, events go one at a time and in order (a receiver sees `task.started` before `task.succeeded`). Each is
retried with backoff after a connection failure, a timeout, a 429 or a 5xx, and given up after any other answer
(the receiver refused it; redirects are not followed), and never retried when the address guard refuses the
receiver's address: that answer would be the same every time. The final event is awaited before the run's request
ends, for at most `WEBHOOK_TIMEOUT`: FC freezes an instance once no request is open, and a frozen instance
sends nothing. What was never delivered is recorded on the task. A slow or dead receiver never changes a run's
outcome. Addresses pass the same guard as input URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from typing import TYPE_CHECKING

from agent.inputs.guard import AddressRefused, HostUnresolved
from agent.logs import log_event, short
from agent.metrics import Metrics
from agent.runs.events import RunEnded, RunEvent, RunProgressed, RunQueued, RunStarted
from agent.tasks.model import Task, TaskStatus, Webhook, WebhookEvent
from agent.tasks.view import task_view

if TYPE_CHECKING:
    import httpx

    from agent.config import Settings

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


class _Outbox:
    """One task's events: each send waits for the one before it. Once the run ends, what is still being retried
    stops retrying (an attempt on its way completes), so the final event has its whole `WEBHOOK_TIMEOUT`."""

    def __init__(self, sender: WebhookSender, task: Task, webhook: Webhook) -> None:
        self.sender = sender
        self.task = task
        self.webhook = webhook
        self.sent = 0
        self.last: asyncio.Future[None] | None = None
        self.ending = asyncio.Event()
        self.progress_at = 0.0
        self.progress_timer: asyncio.TimerHandle | None = None

    def put(self, kind: WebhookEvent, final: bool = False) -> None:
        if kind not in self.webhook.events:
            return
        self.sent += 1
        message = (f"msg_{self.task.task_id}_{self.sent}", kind, task_view(self.task))  # the task as it is now
        self.last = asyncio.ensure_future(self._after(self.last, *message, None if final else self.ending))

    async def _after(self, before: asyncio.Future[None] | None, message_id: str, kind: WebhookEvent,
                     data: dict[str, object], stop: asyncio.Event | None) -> None:
        if before is not None:
            await asyncio.wait({before})
        await self.sender.deliver(self.webhook, message_id, kind, data, stop)

    def progressed(self) -> None:
        """Leading and trailing: the first change goes at once, the rest at most once a second."""
        if WebhookEvent.PROGRESS not in self.webhook.events or self.progress_timer is not None:
            return
        wait = self.progress_at + PROGRESS_EVERY - time.monotonic()
        if wait <= 0:
            self._progress()
        else:
            self.progress_timer = asyncio.get_running_loop().call_later(wait, self._progress)

    def _progress(self) -> None:
        self.progress_timer = None
        self.progress_at = time.monotonic()
        self.put(WebhookEvent.PROGRESS)

    async def finish(self, kind: WebhookEvent | None, timeout: float) -> None:
        if self.progress_timer is not None:
            self.progress_timer.cancel()
        self.ending.set()
        if kind is not None:
            self.put(kind, final=True)
        if self.last is None:
            return
        done, _ = await asyncio.wait({self.last}, timeout=timeout)
        if not done:
            self.last.cancel()
            if kind is not None and kind not in self.webhook.undelivered:
                self.webhook.undelivered.append(kind)
            self.webhook.last_error = self.webhook.last_error or f"not delivered within {timeout:g} s"


class WebhookSender:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._outboxes: dict[str, _Outbox] = {}
        self._client: httpx.AsyncClient | None = None

    def notify(self, event: RunEvent) -> None:
        webhook = event.task.webhook
        if webhook is None:
            return
        task_id = event.task.task_id
        if isinstance(event, RunQueued):
            self._outboxes[task_id] = _Outbox(self, event.task, webhook)
        elif isinstance(event, RunStarted) and task_id in self._outboxes:
            self._outboxes[task_id].put(WebhookEvent.STARTED)
        elif isinstance(event, RunProgressed) and task_id in self._outboxes:
            self._outboxes[task_id].progressed()

    async def settle(self, ended: RunEnded) -> None:
        task = ended.task
        if task.webhook is None:
            return
        outbox = self._outboxes.pop(task.task_id, None) or _Outbox(self, task, task.webhook)
        await outbox.finish(FINAL.get(task.status), self.settings.webhook_timeout)

    @property
    def client(self) -> httpx.AsyncClient:
        """Made at the first webhook: httpx and its pool cost memory an agent without webhooks never needs."""
        if self._client is None:
            import httpx

            from agent.inputs.fetch import GuardedTransport
            from agent.inputs.guard import GuardedBackend

            backend = GuardedBackend(self.settings.url_allow_private, self.settings.url_allow_hosts)
            self._client = httpx.AsyncClient(transport=GuardedTransport(backend), timeout=SEND_TIMEOUT,
                                             follow_redirects=False, trust_env=False,
                                             headers={"Content-Type": "application/json"})
        return self._client

    def _signed(self, message_id: str, body: str) -> dict[str, str]:
        now = datetime.datetime.now(datetime.UTC)
        headers = {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp()))}
        if self.settings.webhook_secret is not None:
            from standardwebhooks import Webhook as Signer

            signer = Signer(self.settings.webhook_secret.get_secret_value())
            headers["webhook-signature"] = signer.sign(message_id, now, body)
        return headers

    async def deliver(self, webhook: Webhook, message_id: str, kind: WebhookEvent, data: dict[str, object],
                      stop: asyncio.Event | None = None) -> None:
        """Send one event until it is taken, refused, its time is up or `stop` is set; the outcome goes on
        the webhook."""
        import httpx

        body = json.dumps({"type": kind.value, "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
                           "data": data}, separators=(",", ":"))
        deadline = time.monotonic() + self.settings.webhook_timeout
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
