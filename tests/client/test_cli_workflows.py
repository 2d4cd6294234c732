"""`comfyui-agent` with workflows the ComfyUI editor saved, as a real process against the agent in front of the
double: a saved graph run as it is, published (from its JSON, or from an image ComfyUI saved) with its proposed
parameters, run by name, and retired."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from client.test_cli import Agent, agent, command  # noqa: F401 - the fixture
from workflows.test_editor_surfaces import metadata, saved_t2i


async def test_a_saved_graph_runs_as_it_is_with_its_nodes_titles(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    saved = tmp_path / "scenery.json"
    saved.write_text(json.dumps(saved_t2i()))
    done = await command(agent, "run", str(saved), "--task-id", "cli-editor", "--out", str(tmp_path / "out"))
    assert done.code == 0, done.err
    assert "KSampler (3)" in done.err and "SaveImage (9)" in done.err  # bars named as the editor shows them
    [image] = (tmp_path / "out").iterdir()
    assert metadata(image.read_bytes())["workflow"] == saved_t2i()
    refused = await command(agent, "run", str(saved), "--set", "3.steps=4")
    assert refused.code != 0 and "--set takes the API format" in refused.err


async def test_publish_run_by_name_and_retire(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    saved = tmp_path / "scenery.json"
    saved.write_text(json.dumps(saved_t2i()))
    tried = await command(agent, "workflows", "publish", str(saved), "--name", "scenery", "--dry-run")
    assert tried.code == 0, tried.err
    assert tried.out.startswith("scenery (not kept): ") and "  6_text (string) -> 6.text" in tried.out
    assert "scenery" not in (await command(agent, "workflows")).out
    published = await command(agent, "workflows", "publish", str(saved), "--name", "scenery", "--title", "Scenery",
                              "--json")
    assert published.code == 0, published.err
    assert json.loads(published.out)["version"] == 1
    ran = await command(agent, "run", "scenery", "--param", "6_text=a red boat", "--json", "--out",
                        str(tmp_path / "out"))
    assert ran.code == 0, ran.err
    task = json.loads(ran.out)
    assert task["workflow"] == "scenery@1" and task["params"]["6_text"] == "a red boat"
    [image] = (tmp_path / "out").iterdir()
    again = await command(agent, "workflows", "publish", str(image), "--name", "scenery")  # its metadata's graph
    assert again.code == 0 and again.out.startswith("scenery@2: "), again.err
    retired = await command(agent, "workflows", "retire", "scenery")
    assert retired.code == 0 and retired.out.strip() == "retired scenery@1, @2", retired.err
    gone = await command(agent, "workflows", "retire", "scenery")
    assert gone.code == 3 and "no published workflow scenery" in gone.err


async def test_a_file_with_no_workflow_is_refused_before_sending(agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    done = await command(agent, "workflows", "publish", str(plain), "--name", "x")
    assert done.code == 1 and "carries no workflow in its metadata" in done.err
    broken = tmp_path / "broken.json"
    graph = saved_t2i()
    next(node for node in graph["nodes"] if node["id"] == 4)["type"] = "NoSuchNode"
    broken.write_text(json.dumps(graph))
    done = await command(agent, "workflows", "publish", str(broken), "--name", "x")
    assert done.code == 2 and "WorkflowFormatError: the editor's workflow cannot be converted: node 4" in done.err
