"""Many clients at once: every prompt completes and every client sees only its own prompt's messages."""

from __future__ import annotations

import asyncio
from typing import Any

from comfy_double.harness import DoubleClient, WsClient

CLIENTS = 64


def prompt_for(index: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": index}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"client{index}"}},
    }


def prompt_ids_seen(client: WsClient) -> set[str]:
    return {m["data"]["prompt_id"] for m in client.messages() if "prompt_id" in m["data"]}


async def run_client(double: DoubleClient, index: int) -> tuple[WsClient, str]:
    client = await double.ws(f"client-{index}")
    await client.wait_for(lambda f: f.type == "status")
    status, reply = await double.post_prompt({"prompt": prompt_for(index), "client_id": f"client-{index}"})
    assert status == 200, reply
    await client.wait_done(reply["prompt_id"], timeout=30.0)
    return client, reply["prompt_id"]


async def test_64_clients_each_get_only_their_own_prompt(double: DoubleClient) -> None:
    results = await asyncio.gather(*(run_client(double, index) for index in range(CLIENTS)))
    for index, (client, prompt_id) in enumerate(results):
        assert prompt_ids_seen(client) == {prompt_id}
        executed = client.messages("executed")[0]["data"]["output"]["images"]
        assert executed == [{"filename": f"client{index}_00001_.png", "subfolder": "", "type": "output"}]
    _, history = await double.request("GET", "/history")
    assert len(history) == CLIENTS
    assert {entry["status"]["status_str"] for entry in history.values()} == {"success"}
    output_dir = double.server.config.output_dir
    assert len(list(output_dir.glob("client*_00001_.png"))) == CLIENTS
