"""`comfyui-agent run|status|watch|cancel|workflows`: the agent from the shell, on the Python client.

A run shows a progress bar per node as it goes (on stderr, from the task's event stream), saves its outputs in
`--out` named after the task and node, and exits non-zero with one line on failure; `--json` prints the task
(or the list) as JSON on stdout for scripts. Exit statuses: 0 done, 1 the run failed, 2 the request was refused
(a bad graph, parameter or input), 3 no such task or workflow, 4 canceled, 5 the agent or ComfyUI is
unavailable, 6 timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from agent.client.client import AsyncClient
from agent.client.errors import error_for
from agent.client.files import save_outputs
from agent.errors import AgentError
from agent.tasks.view import TaskView

EXIT_BY_KIND = {"RequestParamsError": 2, "InputImageError": 2, "PromptValidationError": 2, "TaskConflict": 2,
                "Unauthorized": 2, "TaskNotFound": 3, "NotFound": 3, "Canceled": 4, "ComfyUIUnavailable": 5,
                "Overloaded": 5, "StoreUnavailable": 5, "WorkerUnavailable": 5, "Timeout": 6,
                "NotDelivered": 6}
err = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfyui-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)  # after the command: the bare word is the server's
    common.add_argument("--url", help="the agent (default: COMFYUI_AGENT_URL, else http://127.0.0.1:9000)")
    common.add_argument("--token", help="its AGENT_TOKEN (default: the AGENT_TOKEN variable)")
    common.add_argument("--json", action="store_true", help="print JSON on stdout, nothing else")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", parents=[common], help="run a graph (a JSON file) or a workflow (by name)")
    run.add_argument("target", help="GRAPH.json, or the name of one of the agent's workflows")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a workflow's parameter")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="a graph's input")
    run.add_argument("--async", dest="background", action="store_true", help="print the task id and return")
    run.add_argument("--out", type=Path, help="save the outputs in this folder")
    run.add_argument("--task-id")
    run.add_argument("--timeout", type=float, help="seconds the run may take (capped by the agent's RUN_TIMEOUT)")
    for name in ("status", "watch", "cancel"):
        commands.add_parser(name, parents=[common], help=f"{name} a task").add_argument("task_id")
    commands.add_parser("workflows", parents=[common], help="the agent's workflows and their parameters")
    return parser


def _value(raw: str) -> Any:
    """JSON where it reads as JSON (numbers, true, null, objects), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _pairs(items: Sequence[str], what: str) -> dict[str, Any]:
    pairs = {}
    for item in items:
        name, equals, raw = item.partition("=")
        if not equals or not name:
            raise SystemExit(f"comfyui-agent: {what} takes NAME=VALUE, not {item!r}")
        pairs[name] = _value(raw)
    return pairs


def _graph(path: Path, sets: dict[str, Any]) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(path.read_text())
    graph = graph.get("graph", graph.get("prompt", graph))  # a definition's, or an envelope's
    for target, value in sets.items():
        node, _, field = target.partition(".")
        if node not in graph or not field:
            raise SystemExit(f"comfyui-agent: --set {target}: the graph has no node {node}")
        graph[node].setdefault("inputs", {})[field] = value
    return graph


class Bars:
    """A progress bar per node, fed by the event stream's `progress` entries."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bars: dict[str, TaskID] = {}

    def show(self, nodes: dict[str, Any]) -> None:
        for node, state in nodes.items():
            if node not in self.bars:
                self.bars[node] = self.progress.add_task(f"node {node}", total=max(1, state.get("max") or 1))
            self.progress.update(self.bars[node], total=max(1, state.get("max") or 1),
                                 completed=state.get("value") or 0)


async def _follow(client: AsyncClient, task_id: str, quiet: bool) -> TaskView:
    """The task's events until its end, with bars unless `quiet`; the task as it ended."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
        bars = Bars(progress)
        async for kind, data in client.events(task_id):
            if kind == "progress":
                bars.show(data.get("nodes") or {})
            elif kind == "end":
                bars.show(data.get("progress") or {})
                break
    return await client.task(task_id, results=True)


def _print(data: Any, as_json: bool, line: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(line)


async def _ended(client: AsyncClient, task: TaskView, out: Path | None, as_json: bool) -> None:
    if task.status != "succeeded":
        if as_json:
            print(json.dumps(task.model_dump(), indent=2))
        raise error_for(0, task.error or {"message": "Canceled", "error": f"the task is {task.status}"})
    saved = await save_outputs(task.progress, task.task_id, out, client.fetch) if out is not None else []
    took = (task.finished_at or 0) - task.created_at
    _print(task.model_dump(), as_json, f"{task.task_id} succeeded in {took:.1f} s"
           + "".join(f"\n  {path}" for path in saved))


def _is_graph(path: Path) -> bool:
    """A file (`GRAPH.json`), not the name of one of the agent's workflows."""
    return path.suffix == ".json" or path.exists()


async def _run(client: AsyncClient, args: argparse.Namespace) -> None:
    path = Path(args.target)
    options = {"timeout": args.timeout} if args.timeout else {}
    if _is_graph(path):
        reply = await client.run(_graph(path, _pairs(args.set, "--set")), options, task_id=args.task_id,
                                 background=True)
    else:
        reply = await client.run_workflow(args.target, _pairs(args.param, "--param"), options,
                                          task_id=args.task_id, background=True)
    if args.background:
        _print(reply, args.json, reply["task_id"])
        return
    await _ended(client, await _follow(client, reply["task_id"], args.json), args.out, args.json)


async def _command(args: argparse.Namespace) -> None:
    async with AsyncClient(args.url, args.token) as client:
        if args.command == "run":
            await _run(client, args)
        elif args.command == "watch":
            await _ended(client, await _follow(client, args.task_id, args.json), None, args.json)
        elif args.command in ("status", "cancel"):
            task = await (client.task(args.task_id) if args.command == "status" else client.cancel(args.task_id))
            _print(task.model_dump(), args.json, f"{task.task_id} {task.status}")
        else:
            listed = await client.workflows()
            _print(listed, args.json, "\n".join(
                f"{workflow['name']}: {workflow['title']} ({', '.join(workflow['parameters']['properties'])})"
                for workflow in listed))


def main(argv: Sequence[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_command(args))
    except AgentError as exc:
        body = exc.body()
        err.print(f"comfyui-agent: {body['message']}: {exc.error if isinstance(exc.error, str) else body['error']}",
                  markup=False, highlight=False)
        raise SystemExit(EXIT_BY_KIND.get(body["message"], 1)) from None
    except httpx.HTTPError as exc:
        err.print(f"comfyui-agent: cannot reach the agent at {args.url or 'its URL'}: {exc}", markup=False)
        raise SystemExit(5) from None
    except OSError as exc:  # a graph file that cannot be read, an output folder that cannot be written
        err.print(f"comfyui-agent: {exc}", markup=False)
        raise SystemExit(2) from None
