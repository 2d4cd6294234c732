"""`comfyui-agent run|status|watch|cancel|workflows|keys|usage`: the agent from the shell, on the Python client.

`workflows publish FILE --name NAME` publishes a workflow: FILE as ComfyUI's editor saves it, its API export,
a definition file, or an image ComfyUI saved (its workflow is in its metadata); `workflows retire NAME[@VERSION]`
takes one out of service.

`keys create --name NAME` makes an API key (shown this once: the agent keeps only its hash), `keys` lists them
and `keys revoke --name NAME` ends one: they take AGENT_TOKEN or a key with the admin scope. `usage` tells what
the keys ran up, by day or by key (`--csv` for a spreadsheet); a key without that scope reads its own. A key is
passed as `--token`, as AGENT_TOKEN is.

A run shows a progress bar per node as it goes (on stderr, from the task's event stream), saves its outputs in
`--out` named after the task and node, and exits non-zero with one line on failure; `--json` prints the task
(or the list) as JSON on stdout for scripts. Exit statuses: 0 done, 1 the run failed, 2 the request was refused
(a bad graph, parameter or input, or a token or key that may not), 3 no such task, workflow or key, 4 canceled,
5 the agent or ComfyUI is unavailable (or the key is over one of its limits), 6 timed out. Output cut short by
its reader (`| head`) ends the command quietly, as in Unix tools.

The bare `comfyui-agent` (or `comfyui-agent serve`) is the server itself, and `comfyui-agent gateway` a gateway:
`comfyui-agent serve --help` lists their settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from agent.client.client import DEFAULT_SCOPES, LIMITS, AsyncClient
from agent.client.failures import error_for
from agent.client.files import save_outputs
from agent.errors import AgentError
from agent.tasks.view import TaskView
from agent.workflows.editor import is_editor_graph

EXIT_BY_KIND = {"RequestParamsError": 2, "InputImageError": 2, "PromptValidationError": 2, "TaskConflict": 2,
                "WorkflowFormatError": 2, "KeyConflict": 2,
                "Unauthorized": 2, "Forbidden": 2, "TaskNotFound": 3, "NotFound": 3, "Canceled": 4,
                "ComfyUIUnavailable": 5, "Overloaded": 5, "LimitExceeded": 5, "StoreUnavailable": 5,
                "WorkerUnavailable": 5, "Timeout": 6, "NotDelivered": 6}
# A shell's status for a command its reader stopped reading (128 + SIGPIPE), as `yes | head` gives.
EXIT_PIPE_CLOSED = 141
TASK_COMMANDS = {"status": "print a task's status", "watch": "follow a task to its end, a bar per node",
                 "cancel": "cancel a task"}
SERVER_COMMANDS = {  # run by agent/main.py, never here: listed so that the top-level help names them
    "serve": "the server (the default); its settings: `serve --help`",
    "gateway": "the server as a gateway, without ComfyUI"}
IMAGE_SUFFIXES = {".png"}  # ComfyUI writes the workflow into a PNG as text (into a WebP as EXIF)
SCOPES = ("run", "read", "admin")
LIMIT_UNITS = dict(zip(LIMITS, ("/min", " at once", " GPU s/day", " GPU s/month"), strict=True))
USAGE_COLUMNS = {"tasks": "{:.0f}", "queue_seconds": "{:.3f}", "gpu_seconds": "{:.3f}", "model_seconds": "{:.3f}",
                 "input_bytes": "{:.0f}", "output_bytes": "{:.0f}", "cost": "{:.6g}"}
err = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfyui-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)  # after the command: the bare word is the server's
    common.add_argument("--url", help="the agent (default: COMFYUI_AGENT_URL, else http://127.0.0.1:9000)")
    common.add_argument("--token", help="its AGENT_TOKEN, or an API key (default: the AGENT_TOKEN variable)")
    common.add_argument("--json", action="store_true", help="print JSON on stdout, nothing else")
    commands = parser.add_subparsers(dest="command", required=True, title="commands")
    run = commands.add_parser("run", parents=[common], help="run a graph (GRAPH.json) or a workflow (by name)")
    run.add_argument("target", help="GRAPH.json, or the name of one of the agent's workflows")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a workflow's parameter")
    run.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="a graph's input")
    run.add_argument("--async", dest="background", action="store_true", help="print the task id and return")
    run.add_argument("--out", type=Path, help="save the outputs in this folder")
    run.add_argument("--task-id")
    run.add_argument("--timeout", type=float, help="seconds the run may take (capped by the agent's RUN_TIMEOUT)")
    for name, line in TASK_COMMANDS.items():
        commands.add_parser(name, parents=[common], help=line).add_argument("task_id")
    workflows = commands.add_parser("workflows", parents=[common], help="list, publish or retire workflows")
    actions = workflows.add_subparsers(dest="action", title="actions")
    publish = actions.add_parser("publish", parents=[common], help="publish FILE as the next version of --name")
    publish.add_argument("file", type=Path, help="a workflow saved by ComfyUI (.json, or an image it saved)")
    publish.add_argument("--name", required=True, help="what it is run by: /api/workflows/NAME")
    publish.add_argument("--title")
    publish.add_argument("--description")
    publish.add_argument("--dry-run", action="store_true", help="show the parameters it would take; keep nothing")
    actions.add_parser("retire", parents=[common], help="retire NAME@VERSION, or every version of NAME"
                       ).add_argument("reference")
    _keys_parser(commands.add_parser("keys", parents=[common], help="list, create or revoke API keys"), common)
    usage = commands.add_parser("usage", parents=[common], help="what the keys ran up, by day or by key")
    usage.add_argument("--key", metavar="NAME", help="this key's only (default: every key)")
    usage.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="the first day")
    usage.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="the last day")
    usage.add_argument("--group", choices=("day", "key"), help="a row per key and day, or per key (the default)")
    usage.add_argument("--csv", action="store_true", help="print the agent's CSV (instead of a table or JSON)")
    for name, line in SERVER_COMMANDS.items():
        commands.add_parser(name, help=line, add_help=False)
    return parser


def _keys_parser(keys: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="action", title="actions")
    actions.add_parser("list", parents=[common], help="every key, revoked ones too (as `keys` alone)")
    create = actions.add_parser("create", parents=[common], help="a new key, printed this once")
    create.add_argument("--name", required=True, help="what the key is known by (usage, revoke)")
    create.add_argument("--scope", action="append", choices=SCOPES,
                        help=f"what it may do, repeated for more (default: {' and '.join(DEFAULT_SCOPES)})")
    for limit, unit in LIMIT_UNITS.items():  # a count is whole; seconds need not be
        metavar, kind = ("S", float) if "seconds" in limit else ("N", int)
        create.add_argument(f"--{limit.replace('_', '-')}", dest=limit, metavar=metavar, type=kind,
                            help=f"at most {metavar}{unit} (default: no limit)")
    actions.add_parser("revoke", parents=[common], help="refuse the key from now on (within seconds)"
                       ).add_argument("--name", required=True)


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
    if sets and is_editor_graph(graph):
        raise SystemExit("comfyui-agent: --set takes the API format's NODE.INPUT; publish a workflow saved by the "
                         "editor (workflows publish) and run it with --param")
    for target, value in sets.items():
        node, _, field = target.partition(".")
        if node not in graph or not field:
            raise SystemExit(f"comfyui-agent: --set {target}: the graph has no node {node}")
        graph[node].setdefault("inputs", {})[field] = value
    return graph


def node_titles(graph: dict[str, Any]) -> dict[str, str]:
    """Each node's name on its bar: its title in ComfyUI's editor (`_meta.title`), else its class, and its id."""
    if is_editor_graph(graph):
        return {str(node.get("id")): f"{node.get('title') or node.get('type') or 'node'} ({node.get('id')})"
                for node in graph["nodes"] if isinstance(node, dict)}
    titles = {}
    for node, entry in graph.items():
        if isinstance(entry, dict):
            meta = entry.get("_meta")
            title = meta.get("title") if isinstance(meta, dict) else None
            titles[node] = f"{title or entry.get('class_type') or 'node'} ({node})"
    return titles


class Bars:
    """A progress bar per node, fed by the event stream's `progress` entries, named by `titles` where the graph
    is known (a task that is only watched is not: its nodes go by their ids)."""

    def __init__(self, progress: Progress, titles: dict[str, str]) -> None:
        self.progress = progress
        self.titles = titles
        self.bars: dict[str, TaskID] = {}

    def show(self, nodes: dict[str, Any]) -> None:
        for node, state in nodes.items():
            if node not in self.bars:
                self.bars[node] = self.progress.add_task(self.titles.get(node, f"node {node}"),
                                                         total=max(1, state.get("max") or 1))
            self.progress.update(self.bars[node], total=max(1, state.get("max") or 1),
                                 completed=state.get("value") or 0)


async def _follow(client: AsyncClient, task_id: str, quiet: bool, titles: dict[str, str]) -> TaskView:
    """The task's events until its end, with bars unless `quiet`; the task as it ended."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
        bars = Bars(progress, titles)
        async for kind, data in client.events(task_id):
            if kind == "progress":
                bars.show(data.get("nodes") or {})
            elif kind == "lost":
                err.print(f"comfyui-agent: {task_id}: {(data.get('error') or {}).get('error')}; waiting up to "
                          f"{client.lost_grace:g} s for it to be heard from again", markup=False, highlight=False)
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
    graph: dict[str, Any] | None = None
    if _is_graph(path):
        graph = _graph(path, _pairs(args.set, "--set"))
        reply = await client.run(graph, options, task_id=args.task_id, background=True)
    else:
        reply = await client.run_workflow(args.target, _pairs(args.param, "--param"), options,
                                          task_id=args.task_id, background=True)
    if args.background:
        _print(reply, args.json, reply["task_id"])
        return
    if graph is None:  # the workflow's, for its nodes' titles
        graph = (await client.workflow(args.target))["graph"]
    await _ended(client, await _follow(client, reply["task_id"], args.json, node_titles(graph)), args.out,
                 args.json)


async def _command(args: argparse.Namespace) -> None:
    async with AsyncClient(args.url, args.token) as client:
        if args.command == "run":
            await _run(client, args)
        elif args.command == "watch":
            await _ended(client, await _follow(client, args.task_id, args.json, {}), None, args.json)
        elif args.command in ("status", "cancel"):
            task = await (client.task(args.task_id) if args.command == "status" else client.cancel(args.task_id))
            _print(task.model_dump(), args.json, f"{task.task_id} {task.status}")
        elif args.command == "workflows" and args.action is not None:
            await _workflows(client, args)
        elif args.command == "keys":
            await _keys(client, args)
        elif args.command == "usage":
            await _usage(client, args)
        else:
            listed = await client.workflows()
            _print(listed, args.json, "\n".join(
                f"{workflow['name']}: {workflow['title']} ({', '.join(workflow['parameters']['properties'])})"
                for workflow in listed))


def _saved_workflow(path: Path) -> dict[str, Any]:
    """A definition as `POST /api/workflows` takes it from a file: a definition file, a graph in either format,
    or an image ComfyUI saved (the editor's workflow in its metadata, else the prompt)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        with Image.open(path) as image:
            text = image.info
        saved = text.get("workflow") or text.get("prompt")
        if not isinstance(saved, str):
            raise SystemExit(f"comfyui-agent: {path} carries no workflow in its metadata (not saved by ComfyUI?)")
        return {"graph": json.loads(saved)}
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise SystemExit(f"comfyui-agent: {path} holds no workflow (a JSON object)")
    return raw if isinstance(raw.get("graph"), dict) else {"graph": raw}


async def _workflows(client: AsyncClient, args: argparse.Namespace) -> None:
    if args.action == "retire":
        retired = await client.retire(args.reference)
        _print({"retired": retired}, args.json, f"retired {args.reference.partition('@')[0]}@"
               + ", @".join(map(str, retired)))
        return
    definition = {**_saved_workflow(args.file), "name": args.name}
    definition.update({key: value for key in ("title", "description") if (value := getattr(args, key))})
    published = await client.publish(definition, dry_run=args.dry_run)
    reference = f"{args.name}@{published['version']}" if published["version"] else f"{args.name} (not kept)"
    lines = [f"{reference}: {', '.join(published['parameters']['properties']) or 'no parameters'}"]
    lines += [f"  {parameter['name']} ({parameter['type']}) -> {', '.join(parameter['target'])}"
              for parameter in published["definition"]["parameters"]]
    _print(published, args.json, "\n".join(lines))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as wide as their widest cell, for reading: scripts take `--json` (or `usage --csv`)."""
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in (header, *rows))


def _when(value: Any) -> str:
    """A time as the agent gave it: seconds since the epoch (as a task's), or already written out."""
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _limits(limits: dict[str, Any]) -> str:
    shown = [f"{value:g}{LIMIT_UNITS.get(name, ' ' + name)}" for name, value in limits.items() if value is not None]
    return ", ".join(shown) or "no limits"


async def _keys(client: AsyncClient, args: argparse.Namespace) -> None:
    if args.action == "create":
        limits = {limit: getattr(args, limit) for limit in LIMITS}
        created = await client.create_key(args.name, args.scope or DEFAULT_SCOPES, limits)
        _print(created, args.json, created["key"])
        if not args.json:  # on stderr: `KEY=$(comfyui-agent keys create ...)` takes the key alone
            err.print("comfyui-agent: the key is shown only once: keep it now", markup=False, highlight=False)
    elif args.action == "revoke":
        revoked = await client.revoke_key(args.name)
        _print(revoked, args.json, f"revoked {revoked['name']}")
    else:
        listed = await client.keys()
        rows = [[key["name"], ", ".join(key["scopes"]), _limits(key.get("limits") or {}), _when(key["created_at"]),
                 _when(key.get("revoked_at"))] for key in listed]
        _print({"keys": listed}, args.json, _table(("NAME", "SCOPES", "LIMITS", "CREATED", "REVOKED"), rows))


def _usage_row(first: Sequence[str], numbers: dict[str, Any]) -> list[str]:
    return [*first, *("-" if numbers.get(name) is None else shape.format(numbers[name])
                      for name, shape in USAGE_COLUMNS.items())]


async def _usage(client: AsyncClient, args: argparse.Namespace) -> None:
    if args.csv:
        text = await client.usage_csv(args.key, args.start, args.end, args.group)
        print(text, end="" if text.endswith("\n") else "\n")
        return
    used = await client.usage(args.key, args.start, args.end, args.group)
    by_day = used.get("group", "day") == "day"
    rows = [_usage_row([row["key"], *([row["day"]] if by_day else [])], row) for row in used["rows"]]
    rows.append(_usage_row(["total", *([""] if by_day else [])], used["totals"]))
    header = ["KEY", *(["DAY"] if by_day else []), *(name.upper() for name in USAGE_COLUMNS)]
    _print(used, args.json, f"{used['from']} to {used['to']}\n{_table(header, rows)}")


def _quiet_on_a_closed_pipe() -> None:
    """What is left for stdout goes nowhere: Python's own flush at exit would report the closed pipe again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_command(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
    except BrokenPipeError:
        _quiet_on_a_closed_pipe()
        raise SystemExit(EXIT_PIPE_CLOSED) from None
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
