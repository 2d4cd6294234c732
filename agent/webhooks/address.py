"""A webhook a request names is checked before its run starts: an address the guard refuses, or a host that does
not resolve, is the caller's mistake to hear about at once (a 400), not a run whose reply waits out retries to a
receiver that can never be reached."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from agent.config import WebhookSettings
from agent.errors import RequestParamsError
from agent.inputs.guard import AddressRefused, GuardedBackend, HostUnresolved, Resolver, resolve
from agent.tasks.model import Webhook

RESOLVE_TIMEOUT = 5.0  # a resolver that has not answered by then will not answer the sender either


async def check_webhook(webhook: Webhook | None, webhooks: WebhookSettings, resolver: Resolver = resolve) -> None:
    """Refuse a webhook named by the request whose host the sender could never reach; the agent's own
    WEBHOOK_URL is the operator's choice and is left to the sender."""
    if webhook is None or webhook.url == webhooks.default_url:
        return
    parts = urlsplit(webhook.url)
    host = parts.hostname or ""
    guard = GuardedBackend(webhooks.addresses.allow_private, webhooks.addresses.allow_hosts, resolver)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await guard.addresses(host, parts.port or (443 if parts.scheme == "https" else 80))
    except AddressRefused as exc:
        raise RequestParamsError(f"option webhook.url: refused address: {exc}") from None
    except HostUnresolved as exc:
        raise RequestParamsError(f"option webhook.url: host not found: {exc}") from None
    except TimeoutError:
        raise RequestParamsError(f"option webhook.url: {host} did not resolve within {RESOLVE_TIMEOUT:g} s") from None
