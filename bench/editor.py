"""What accepting the editor's saved format costs: the conversion alone, and a run posted as the editor saves it
against the same run posted as its API export, through the agent, alternated.

    python bench/editor.py                       # against the test double (started here)
    python bench/editor.py --comfyui-url URL     # against a running ComfyUI (real or double)

The conversion is timed in this process against ComfyUI 0.3.64's recorded `/object_info`; the runs go to an agent
process whose catalog asks its ComfyUI class by class and keeps the answers 30 s (a warm-up run fills it first).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from typing import Any

import aiohttp
import uvloop
from common import REPO, comfy_and_agent, wait_http
from overhead import agent_run, summary, timed

from agent.workflows.editor import to_api

PAIRS = REPO / "tests" / "fixtures" / "editor-workflows"
CATALOG = json.loads((REPO / "tests" / "fixtures" / "comfyui-0.3.64" / "object_info_full.json").read_text())
GRAPHS = ("default-t2i-sd15", "png-primitive-sdxl-refiner", "template-z-image-turbo", "editor-nested-subgraphs")


def conversion_us(name: str, rounds: int) -> float:
    saved = json.loads((PAIRS / f"{name}.workflow.json").read_text())
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        to_api(saved, CATALOG)
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


async def runs(agent: str, rounds: int) -> dict[str, list[float]]:
    saved = json.loads((REPO / "docs" / "examples" / "hello-saved.json").read_text())
    exported = json.loads((REPO / "docs" / "examples" / "hello.json").read_text())
    samples: dict[str, list[float]] = {"API export": [], "editor's save": []}
    async with aiohttp.ClientSession() as session:
        await agent_run(session, agent, saved)  # the catalog's first answers
        for serial in range(rounds):
            for label, graph in (("API export", exported), ("editor's save", saved))[::1 if serial % 2 else -1]:
                run = functools.partial(agent_run, session, agent, _colored(graph, serial))
                samples[label].append(await timed(run))
    return samples


def _colored(graph: dict[str, Any], serial: int) -> dict[str, Any]:
    """A new color each round, so ComfyUI's cache never answers."""
    if "nodes" not in graph:
        return {**graph, "1": {**graph["1"], "inputs": {**graph["1"]["inputs"], "color": serial}}}
    nodes = [{**node, "widgets_values": [*node["widgets_values"][:3], serial]} if node["id"] == 1 else node
             for node in graph["nodes"]]
    return {**graph, "nodes": nodes}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    print("| graph | nodes saved | conversion, median |\n| --- | --- | --- |")
    for name in GRAPHS:
        nodes = len(json.loads((PAIRS / f"{name}.workflow.json").read_text())["nodes"])
        print(f"| `{name}` | {nodes} | {conversion_us(name, 2000):.0f} µs |")
    with comfy_and_agent(args.comfyui_url) as (_, _proc, agent):
        await wait_http(f"{agent}/healthz")
        await wait_http(f"{agent}/readyz")
        samples = await runs(agent, args.rounds)
    base = statistics.median(samples["API export"])
    print("\n| posted as | one at a time, median (p95) | / API export |\n| --- | --- | --- |")
    for label, found in samples.items():
        median, p95 = summary(found)
        print(f"| {label} | {median:.1f} ms ({p95:.1f}) | {median / base:.2f}x |")


if __name__ == "__main__":
    uvloop.run(main())
