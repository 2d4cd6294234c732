"""Runs prompts like ComfyUI's PromptExecutor and prompt_worker, with the same messages in the same order.

Routing follows ComfyUI: per-prompt messages go to the prompt's ``client_id``; without a client id,
``execution_start``/``execution_cached``/``executing``/``executed``/``execution_success``/``execution_error``
are not sent at all, while ``progress_state``, ``progress``, previews and ``execution_interrupted`` are
broadcast.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cache import NodeCache
from .config import DoubleConfig
from .faults import Faults
from .graph import ExecutionOrder, is_link
from .hub import Hub
from .nodedefs import NodeDefs, input_info
from .nodes import NODE_CLASSES, Node, NodeResult, Preview
from .progress import ProgressRegistry
from .prompt_queue import PromptQueue, QueueItem
from .validation import full_type_name
from .values import preview_frame, preview_frame_with_metadata

log = logging.getLogger("comfy_double")

_HIDDEN_VALUES = {"PROMPT": "prompt", "EXTRA_PNGINFO": "extra_pnginfo", "UNIQUE_ID": "unique_id"}


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException."""


@dataclass
class PromptRun:
    """State of the prompt being executed."""

    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    client_id: str | None
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # history's status.messages
    executed: list[str] = field(default_factory=list)

    def hooks(self, node_id: str) -> dict[str, Any]:
        """The double's test hooks of a node: ``"_meta": {"double": {...}}``, which ComfyUI ignores."""
        return (self.prompt[node_id].get("_meta") or {}).get("double") or {}


def format_value(value: Any) -> Any:
    """How execution_error shows an input: scalars as they are, anything else as str()."""
    if value is None or isinstance(value, int | float | bool | str):
        return value
    return str(value)


def gather_inputs(
    prompt: dict[str, Any],
    node_id: str,
    types: dict[str, Any],
    resolve: Callable[[list[Any]], Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """ComfyUI's get_input_data: links resolved, undeclared literals dropped, hidden inputs added."""
    data = {}
    for name, value in prompt[node_id]["inputs"].items():
        if is_link(value):
            data[name] = resolve(value)
        elif input_info(types, name)[1] is not None:
            data[name] = value
    context = {"prompt": prompt, "extra_pnginfo": extra.get("extra_pnginfo"), "unique_id": node_id}
    for name, kind in types.get("hidden", {}).items():
        # ComfyUI 0.33.0's schema-based (v3) nodes declare a hidden input as a list: ["PROMPT"]
        data[name] = context[_HIDDEN_VALUES[kind[0] if isinstance(kind, list) else kind]]
    return data


class Executor:
    """Executes queued prompts one at a time; keeps ComfyUI's classic cache between them."""

    def __init__(self, config: DoubleConfig, defs: NodeDefs, hub: Hub) -> None:
        self._config = config
        self._defs = defs
        self._hub = hub
        self._faults = Faults(hub, config.exit_process)
        self._interrupt = asyncio.Event()
        self.holding = False  # the ``hold`` knob
        self.held: str | None = None  # the prompt whose node waits at the hold, if any
        self._way_on: asyncio.Future[None] | None = None  # what the node at the hold waits for
        self.cache = NodeCache()

    def interrupt(self) -> None:
        """nodes.interrupt_processing(): the running node stops at its next check."""
        self._interrupt.set()

    def hold(self, on: bool) -> None:
        """The ``hold`` knob: while on, every node waits as it starts and after each progress step it reports, so
        a run lasts until the test ends it."""
        self.holding = on
        if not on:
            self.step()

    def step(self) -> None:
        """What waits at the hold goes on, to the next place it waits while the hold is on."""
        if self._way_on is not None and not self._way_on.done():
            self._way_on.set_result(None)

    async def worker(self, queue: PromptQueue) -> None:
        """prompt_worker: run prompts in queue order, then honour ``/free`` flags.

        Like ComfyUI's worker thread it stops for good on an unexpected error (say, an unreachable node
        without ``inputs``); the double at least says so in its log."""
        try:
            while True:
                got = await queue.get()
                if got is not None:
                    await self._run_queued(queue, *got)
                if queue.take_flags().get("free_memory"):
                    self.cache = NodeCache()
        except Exception:
            log.exception("prompt worker died; no further prompt will run")
            raise

    async def _run_queued(self, queue: PromptQueue, item: QueueItem, task_id: int) -> None:
        started = time.perf_counter()
        history_result, status = await self.execute(item)
        queue.task_done(task_id, history_result, status)
        if self._hub.client_id is not None:
            self._hub.send("executing", {"node": None, "prompt_id": item[1]}, self._hub.client_id)
        log.info("Prompt executed in %.2f seconds", time.perf_counter() - started)

    async def execute(self, item: QueueItem) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run one prompt; returns its /history ``outputs``+``meta`` and its ``status``."""
        _, prompt_id, prompt, extra_data, outputs = item
        self._interrupt.clear()
        run = PromptRun(prompt_id, prompt, extra_data, extra_data.get("client_id"))
        self._hub.client_id = run.client_id
        self._add_message(run, "execution_start", {"prompt_id": prompt_id})
        progress = ProgressRegistry(prompt_id, lambda data: self._hub.send("progress_state", data, run.client_id))
        self.cache.set_prompt(prompt, lambda node_id: self._is_changed(run, node_id))
        cached = [node_id for node_id in prompt if self.cache.output(node_id) is not None]
        self._add_message(run, "execution_cached", {"nodes": cached, "prompt_id": prompt_id})
        current_outputs = self.cache.node_ids()
        failure = await self._run_outputs(run, outputs, progress)
        if failure is None:
            self._add_message(run, "execution_success", {"prompt_id": prompt_id})
        else:
            self._report_failure(run, current_outputs, *failure)
        self._hub.last_node_id = None
        ok = failure is None
        status = {"status_str": "success" if ok else "error", "completed": ok, "messages": run.messages}
        return self._history_result(prompt), status

    def _add_message(self, run: PromptRun, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        run.messages.append((event, data))
        if run.client_id is not None or broadcast:
            self._hub.send(event, data, run.client_id)

    def _is_changed(self, run: PromptRun, node_id: str) -> Any:
        """IS_CHANGED from literal inputs only; a failure makes the node uncacheable (NaN)."""
        class_type = run.prompt[node_id]["class_type"]
        check = getattr(NODE_CLASSES[class_type], "is_changed", None)
        if check is None:
            return False
        types = self._defs.input_types(class_type)
        try:
            return check(self._config, **gather_inputs(run.prompt, node_id, types, lambda _: None, run.extra_data))
        except Exception as ex:
            log.warning("WARNING: %s", ex)
            return float("nan")

    async def _run_outputs(
        self, run: PromptRun, outputs: list[str], progress: ProgressRegistry
    ) -> tuple[dict[str, Any], Exception] | None:
        order = ExecutionOrder(
            run.prompt,
            is_output=lambda node_id: self._defs.is_output_node(run.prompt[node_id]["class_type"]),
            is_cached=lambda node_id: self.cache.output(node_id) is not None,
        )
        for output in outputs:
            order.add_node(output)
        while not order.is_empty():
            node_id = order.next_node()
            failure = await self._run_node(run, node_id, progress)
            if failure is not None:
                return failure
            order.complete(node_id)
        return None

    async def _run_node(
        self, run: PromptRun, node_id: str, progress: ProgressRegistry
    ) -> tuple[dict[str, Any], Exception] | None:
        """execution.execute(): one node, or its cached result; returns (error details, exception) on failure."""
        if self.cache.output(node_id) is not None:
            self._replay_cached_ui(run, node_id)
            progress.finish(node_id)
            return None
        inputs = None
        try:
            progress.start(node_id)
            inputs = self._input_data(run, node_id)
            if run.client_id is not None:
                self._hub.last_node_id = node_id
                executing = {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id}
                self._hub.send("executing", executing, run.client_id)
            self._store(run, node_id, await self._call(run, node_id, inputs, progress))
        except Interrupted as ex:
            return {"node_id": node_id}, ex
        except Exception as ex:
            return _error_details(node_id, inputs, ex), ex
        progress.finish(node_id)
        run.executed.append(node_id)
        return None

    def _replay_cached_ui(self, run: PromptRun, node_id: str) -> None:
        """A cached node gets no ``executing``, but ``executed`` repeats its earlier UI output (or null)."""
        if run.client_id is not None:
            output = (self.cache.ui(node_id) or {}).get("output")
            executed = {"node": node_id, "display_node": node_id, "output": output, "prompt_id": run.prompt_id}
            self._hub.send("executed", executed, run.client_id)

    def _input_data(self, run: PromptRun, node_id: str) -> dict[str, Any]:
        types = self._defs.input_types(run.prompt[node_id]["class_type"])
        return gather_inputs(run.prompt, node_id, types, self._resolve_link, run.extra_data)

    def _resolve_link(self, link: list[Any]) -> Any:
        outputs = self.cache.output(link[0])
        return None if outputs is None or link[1] >= len(outputs) else outputs[link[1]]

    async def _call(
        self, run: PromptRun, node_id: str, inputs: dict[str, Any], progress: ProgressRegistry
    ) -> NodeResult:
        class_type = run.prompt[node_id]["class_type"]
        node: Node = self.cache.node_object(node_id, class_type, lambda: NODE_CLASSES[class_type](self._config))
        self._check_interrupt()
        await self._wait_at_hold(run)
        hooks = run.hooks(node_id)
        await self._faults.node_started(hooks.get("fault"), run.client_id)
        steps = node.steps(inputs) if hasattr(node, "steps") else []
        if not steps and hooks.get("progress"):
            total = int(hooks["progress"])
            steps = [(value, total, None) for value in range(1, total + 1)]
        delay = float(hooks.get("delay", self._config.node_delay.get(class_type, 0)))
        for value, maximum, preview in steps:
            await self._sleep(delay / len(steps))
            self._report(run, node_id, (value, maximum), preview, progress)
            await self._wait_at_hold(run)
        if not steps:
            await self._sleep(delay)
        return await asyncio.to_thread(node.run, **inputs)

    def _store(self, run: PromptRun, node_id: str, result: NodeResult) -> None:
        if result.ui:
            self.cache.set_ui(node_id, result.ui)
            if run.client_id is not None:
                executed = {"node": node_id, "display_node": node_id, "output": result.ui, "prompt_id": run.prompt_id}
                self._hub.send("executed", executed, run.client_id)
        self.cache.set_output(node_id, result.outputs)

    def _check_interrupt(self) -> None:
        if self._interrupt.is_set():
            raise Interrupted

    async def _wait_at_hold(self, run: PromptRun) -> None:
        """While the hold is on, wait until it is turned off or stepped past; an interrupt ends the wait, as it
        ends a delay."""
        if not self.holding:
            return
        way_on: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._way_on, self.held = way_on, run.prompt_id
        interrupted = asyncio.ensure_future(self._interrupt.wait())
        try:
            waits: list[asyncio.Future[Any]] = [way_on, interrupted]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.held = self._way_on = None
            interrupted.cancel()
        self._check_interrupt()

    async def _sleep(self, seconds: float) -> None:
        """Wait while the node "works"; an interrupt ends the wait at once."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._interrupt.wait(), seconds)
        except TimeoutError:
            return
        raise Interrupted

    def _report(
        self,
        run: PromptRun,
        node_id: str,
        value_max: tuple[int, int],
        preview: Preview | None,
        progress: ProgressRegistry,
    ) -> None:
        """The progress hook: ``progress_state``, then a type-4 preview if negotiated, ``progress``, else type 1."""
        self._check_interrupt()
        progress.update(node_id, *value_max)
        metadata = self._hub.supports_preview_metadata(run.client_id)
        if preview is not None and metadata:
            meta: dict[str, str | None] = {"node_id": node_id, "prompt_id": run.prompt_id, "display_node_id": node_id}
            meta |= {"parent_node_id": None, "real_node_id": node_id}
            self._hub.send_frame(preview_frame_with_metadata(*preview, meta), run.client_id)
        value, maximum = value_max
        message = {"value": value, "max": maximum, "prompt_id": run.prompt_id, "node": node_id}
        self._hub.send("progress", message, run.client_id)
        if preview is not None and not metadata:
            self._hub.send_frame(preview_frame(*preview), run.client_id)

    def _report_failure(
        self, run: PromptRun, current_outputs: list[str], details: dict[str, Any], ex: Exception
    ) -> None:
        node_id = details["node_id"]
        base = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": run.prompt[node_id]["class_type"],
            "executed": list(run.executed),
        }
        if isinstance(ex, Interrupted):
            self._add_message(run, "execution_interrupted", base, broadcast=True)
            return
        error = {key: details[key] for key in ("exception_message", "exception_type", "traceback", "current_inputs")}
        self._add_message(run, "execution_error", {**base, **error, "current_outputs": current_outputs})

    def _history_result(self, prompt: dict[str, Any]) -> dict[str, Any]:
        entries: dict[str, Any] = {node_id: self.cache.ui(node_id) for node_id in prompt}
        entries = {node_id: entry for node_id, entry in entries.items() if entry is not None}
        return {
            "outputs": {node_id: entry["output"] for node_id, entry in entries.items()},
            "meta": {node_id: entry["meta"] for node_id, entry in entries.items()},
        }


def _error_details(node_id: str, inputs: dict[str, Any] | None, ex: Exception) -> dict[str, Any]:
    current_inputs = {name: [format_value(value)] for name, value in (inputs or {}).items()}
    return {
        "node_id": node_id,
        "exception_message": f"{ex}\n",
        "exception_type": full_type_name(type(ex)),
        "traceback": traceback.format_tb(ex.__traceback__),
        "current_inputs": current_inputs,
    }
