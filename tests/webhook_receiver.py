"""A webhook receiver for the tests, as a caller would run one: it verifies every signature with the
`standardwebhooks` package and records what it got; `answers` scripts its replies (then 200)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Delivery:
    message_id: str
    type: str
    data: dict[str, Any]
    at: float


@dataclass
class Receiver:
    secret: str = SECRET
    answers: list[int] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # the webhook-id of every request, delivered or not
    deliveries: list[Delivery] = field(default_factory=list)  # the ones answered 2xx
    bad_signatures: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:  # the library's own verification errors
            self.bad_signatures += 1
            return web.Response(status=400)
        self.attempts.append(request.headers["webhook-id"])
        status = self.answers.pop(0) if self.answers else 200
        if status < 300:
            event = json.loads(body)
            self.deliveries.append(Delivery(request.headers["webhook-id"], event["type"], event["data"],
                                            asyncio.get_running_loop().time()))
            self.arrived.set()
        return web.Response(status=status)

    def types(self) -> list[str]:
        return [delivery.type for delivery in self.deliveries]
