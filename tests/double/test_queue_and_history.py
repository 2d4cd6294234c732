"""Queue order, queue and history edits, and /free, replayed from queue_ops.json and checked directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from comfy_double.harness import DoubleClient, Frame, WsClient, control, held
from comfy_double.recordings import as_lines, exchange_views, id_labels, live_frames, load, recorded_frames
from comfy_double.replay import Replay


def empty_to_save(color: int = 0) -> dict[str, Any]:
    """EmptyImage -> SaveImage."""
    empty: dict[str, Any] = {
        "class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}
    }
    return {"1": empty, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "queue"}}}


def no_upload(field: dict[str, Any], label: str) -> bytes:
    raise AssertionError(f"no upload expected: {label}")


def executing(node: str, prompt_id: str) -> Callable[[Frame], bool]:
    return lambda f: f.type == "executing" and f.data["data"] == {
        "node": node, "display_node": node, "prompt_id": prompt_id
    }


def split_status(frames: list[Any]) -> tuple[list[Any], list[int]]:
    """(frames without status, the queue_remaining sequence): their interleaving is timing, not protocol."""
    others = [f for f in frames if not (isinstance(f, dict) and f["type"] == "status")]
    remaining = [f["data"]["status"]["exec_info"]["queue_remaining"] for f in frames if f not in others]
    return others, remaining


class QueueOpsReplay:
    """queue_ops.json step by step; the double's hold keeps the long job exactly where the recording had it."""

    def __init__(self, double: DoubleClient, main: WsClient) -> None:
        self.double = double
        self.main = main
        self.http = load("queue_ops")["http"]
        self.replayer = Replay(double, main, no_upload)
        self.pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def send(self, *indexes: int) -> None:
        for index in indexes:
            self.pairs.append((self.http[index], await self.replayer.exchange(self.http[index], wait=False)))

    def live_id(self, index: int) -> str:
        return cast(str, self.pairs[index][1]["body"]["prompt_id"])

    async def long_job_interrupted(self, post: int, queue_steps: tuple[int, ...], interrupt: int) -> str:
        """Submit the long job, do queue_steps while its node 1 is held, interrupt it held as node 100 starts."""
        async with held(self.double.url):
            await self.send(post)
            job: str = self.pairs[-1][1]["body"]["prompt_id"]
            await self.main.wait_for(executing("1", job))
            await self.send(*queue_steps)
            await control(self.double.url, step=True)
            await self.main.wait_for(executing("100", job))
            await self.send(interrupt)
        return job

    async def run(self) -> None:
        await self.long_job_interrupted(0, (1, 2, 3, 4, 5, 6, 7, 8), 9)
        await self.main.wait_done(self.live_id(4))
        await self.send(10, 11, 12)
        job = await self.long_job_interrupted(13, (14, 15, 16), 17)
        await self.main.wait_done(job)
        await self.send(18, 19, 20, 21)


async def test_queue_ops_match_recording(double: DoubleClient) -> None:
    rec = load("queue_ops")
    main, observer = await double.recorded_sockets(rec)
    assert observer is not None
    replay = QueueOpsReplay(double, main)
    await replay.run()
    await observer.wait_quiet()
    ids = id_labels(*replay.replayer.id_pairs)
    live, recorded = exchange_views(replay.pairs, ids)
    assert live == recorded
    for client, entries in ((main, rec["ws"]), (observer, rec["ws_observer"])):
        live_others, live_status = split_status(live_frames(client.frames))
        recorded_others, recorded_status = split_status(recorded_frames(entries))
        assert as_lines(live_others, ids) == as_lines(recorded_others, ids)
        assert live_status == recorded_status
    pending = replay.pairs[5][1]["body"]["queue_pending"]
    assert [item[0] for item in pending] == [-3, 2, 1, 1000.0]  # D (front), C, B, E (explicit): heap order


async def submit(double: DoubleClient, prompt: dict[str, Any], **extra: object) -> str:
    status, reply = await double.post_prompt({"prompt": prompt, **extra})
    assert status == 200, reply
    return cast(str, reply["prompt_id"])


async def test_history_is_empty_until_the_prompt_finishes(double: DoubleClient) -> None:
    client = await double.ws("waiting")
    async with held(double.url):
        prompt_id = await submit(double, empty_to_save(), client_id="waiting")
        await client.wait_for(lambda f: f.type == "executing")
        assert await double.request("GET", f"/history/{prompt_id}") == (200, {})
        _, queue = await double.request("GET", "/queue")
        assert [item[1] for item in queue["queue_running"]] == [prompt_id]
    await client.wait_done(prompt_id)
    _, history = await double.request("GET", f"/history/{prompt_id}")
    assert history[prompt_id]["status"]["status_str"] == "success"


async def test_history_windows_and_clear(double: DoubleClient) -> None:
    ids = []
    for color in range(3):
        ids.append(await submit(double, empty_to_save(color)))
        await double.wait_history(ids[-1])
    assert list((await double.request("GET", "/history?max_items=2"))[1]) == ids[1:]
    assert list((await double.request("GET", "/history?offset=1&max_items=1"))[1]) == ids[1:2]
    assert list((await double.request("GET", "/history"))[1]) == ids
    await double.request("POST", "/history", json={"clear": True})
    assert (await double.request("GET", "/history"))[1] == {}


async def test_first_front_prompt_gets_number_zero_and_explicit_numbers_are_floats(double: DoubleClient) -> None:
    _, first = await double.post_prompt({"prompt": empty_to_save(), "front": True})
    _, explicit = await double.post_prompt({"prompt": empty_to_save(), "number": 7, "prompt_id": "mine"})
    assert (first["number"], explicit["number"], explicit["prompt_id"]) == (0, 7.0, "mine")


async def test_deleting_the_last_pending_prompt_broadcasts_status_twice(double: DoubleClient) -> None:
    """PromptQueue.delete_queue_item wipes the queue (one status) and notifies again (a second one)."""
    observer = await double.ws("observer")
    async with held(double.url):
        running = await submit(double, empty_to_save())
        pending = await submit(double, empty_to_save())
        await observer.wait_quiet()
        before = len(observer.frames)
        await double.request("POST", "/queue", json={"delete": [pending]})
        await observer.wait_quiet()
    assert [f.data["data"]["status"]["exec_info"]["queue_remaining"] for f in observer.frames[before:]] == [1, 1]
    await double.wait_history(running)
    assert await double.request("GET", f"/history/{pending}") == (200, {})


async def test_free_memory_empties_the_cache(double: DoubleClient) -> None:
    client: WsClient = await double.ws("free")
    first = await submit(double, empty_to_save(), client_id="free")
    await client.wait_done(first)
    await double.request("POST", "/free", json={"free_memory": True})
    second = await submit(double, empty_to_save(), client_id="free")
    await client.wait_done(second)
    cached: list[Frame] = [f for f in client.frames if f.type == "execution_cached"]
    assert [f.data["data"]["nodes"] for f in cached] == [[], []]
