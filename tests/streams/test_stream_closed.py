"""A client that leaves an event stream (a browser closing its EventSource) is no error: the stream ends, its
slot is free again, and nothing is logged above debug."""

from __future__ import annotations

import logging

import pytest

from agent.api import streams as streams_module
from agent_harness import running_agent, scrape
from double_helpers import save_prompt
from waiting import EVENTUALLY, until

OPEN = ("comfyui_agent_event_streams_open", ())


async def test_a_client_leaving_mid_stream_ends_it_quietly(double: str, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(streams_module, "HEARTBEAT", 0.1)  # the write after the client left is a heartbeat
    monkeypatch.setattr(streams_module, "READ_WAIT", 0.05)
    async with running_agent(comfyui_url=double) as agent:
        endless = save_prompt(0x40, delay=10 * EVENTUALLY)  # ended by its cancel
        started = await agent.post("/api/run?async=1", json=endless, headers={"task-id": "gone"})
        assert started.status == 202
        with caplog.at_level(logging.DEBUG, logger="agent"):
            response = await agent.get("/api/tasks/gone/events")
            assert response.status == 200
            await response.content.readuntil(b"\n\n")  # the first event: the stream is being served
            assert (await scrape(agent))[OPEN] == 1
            response.close()  # the connection itself goes, as when a browser tab closes

            async def ended() -> bool:
                return (await scrape(agent))[OPEN] == 0

            await until(ended, EVENTUALLY, "the stream to end once its client left")
        assert (await agent.post("/api/tasks/gone/cancel")).status == 200
    messages = [record.getMessage() for record in caplog.records]
    assert any("stream.closed" in message and "gone" in message for message in messages), messages
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
