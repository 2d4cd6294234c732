"""The web page, as a creator uses it: pick a workflow, edit it, run a batch, watch, cancel, read errors; and
the examples it offers (by title, never the warm-up graph)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from playwright.async_api import Page, expect

from agent_harness import running_agent
from comfy_double.harness import start_double
from s3_server import S3
from waiting import EVENTUALLY, until
from web.conftest import OpenPage
from workflows.test_editor_surfaces import saved_t2i

DEFAULT_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"  # what the bundled workflows name: not in the double
INSTALLED = "random-sd15.safetensors"  # the one checkpoint the double has
TOKEN = "page-token"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def comfy(tmp_path: Path) -> AsyncIterator[str]:
    runner, url = await start_double(tmp_path / "comfyui", node_delay={"KSampler": 0.6})
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
async def site(comfy: str) -> AsyncIterator[str]:
    async with running_agent(comfyui_url=comfy) as agent:
        yield str(agent.make_url("/app/"))


async def history_prompts(comfy: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{comfy}/history") as response:
        entries = await response.json()
    return [entry["prompt"][2] for entry in entries.values()]


def example(name: str) -> dict[str, Any]:
    """A bundled workflow's graph, with the checkpoint the double has."""
    workflow: dict[str, Any] = json.loads((REPO / "comfyui" / "workflows" / name).read_text())
    graph: dict[str, Any] = workflow.get("graph", workflow)  # a declared definition, or a bare graph
    graph["4"]["inputs"]["ckpt_name"] = INSTALLED
    return graph


async def paste(page: Page, workflow: dict[str, Any]) -> None:
    if await page.locator("#paste").is_hidden():
        await page.click("#own summary")
    await page.fill("#paste", json.dumps(workflow))
    await page.click("#paste-apply")


async def test_batch_of_four_from_an_example_with_an_edited_prompt(page: Page, site: str, comfy: str) -> None:
    await page.goto(site)
    await expect(page.locator("#readiness")).to_have_text("ComfyUI ready")
    await page.select_option("#examples", label="Text to image")
    await page.fill("[id='prompt']", "a lighthouse at dusk, oil painting")
    await page.fill("[id='seed']", "-1")
    await expect(page.locator("[id='checkpoint'] option")).to_have_text([INSTALLED])  # ComfyUI's list
    # the workflow's default is not installed: one that is is chosen, and the page says so
    await expect(page.locator("[id='checkpoint']")).to_have_value(INSTALLED)
    await expect(page.locator("#params .note")).to_have_text(
        f"{DEFAULT_CHECKPOINT} is not installed here: {INSTALLED} is used instead.")
    await page.fill("[id='width']", "64")
    await page.fill("[id='height']", "64")
    await page.fill("#batch", "4")
    await page.click("#run")
    await expect(page.locator("#runs .run[data-status='succeeded']")).to_have_count(4, timeout=30_000)
    await expect(page.locator("#gallery img")).to_have_count(4)
    await expect(page.locator("#overall-text")).to_have_text("4 of 4 done")
    assert await page.locator("#gallery a[download]").count() == 4
    prompts = await history_prompts(comfy)
    assert len(prompts) == 4
    assert {prompt["6"]["inputs"]["text"] for prompt in prompts} == {"a lighthouse at dusk, oil painting"}
    assert {prompt["5"]["inputs"]["width"] for prompt in prompts} == {64}
    assert {prompt["4"]["inputs"]["ckpt_name"] for prompt in prompts} == {INSTALLED}
    assert len({prompt["3"]["inputs"]["seed"] for prompt in prompts}) == 4
    assert all(0 <= prompt["3"]["inputs"]["seed"] < 2**48 for prompt in prompts)


async def test_a_batch_with_a_fixed_seed_counts_up_and_each_run_shows_its_time(
        page: Page, site: str, comfy: str) -> None:
    await page.goto(site)
    await page.select_option("#examples", label="Text to image")
    await page.fill("[id='seed']", "1000")
    await page.fill("[id='width']", "64")
    await page.fill("[id='height']", "64")
    await page.fill("#batch", "3")
    await page.click("#run")
    await expect(page.locator("#runs .run[data-status='succeeded']")).to_have_count(3, timeout=30_000)
    prompts = await history_prompts(comfy)
    assert sorted(prompt["3"]["inputs"]["seed"] for prompt in prompts) == [1000, 1001, 1002]
    await expect(page.locator("#runs .run .elapsed").first).to_have_text(re.compile(r"^\d+\.\d s$"))
    full_size = page.locator("#gallery figure > a[target='_blank'] img")
    await expect(full_size).to_have_count(3)


async def test_cancel_one_run_of_a_batch(page: Page, site: str) -> None:
    slow = example("txt2img.json")
    slow["3"]["_meta"]["double"] = {"delay": 4.0}
    await page.goto(site)
    await paste(page, slow)
    await page.fill("#batch", "2")
    await page.click("#run")
    first = page.locator("#runs .run").last
    await expect(first).to_have_attribute("data-status", "running", timeout=15_000)
    await first.get_by_role("button", name="Cancel").click()
    await expect(first).to_have_attribute("data-status", "canceled", timeout=15_000)
    await expect(first.locator(".error")).to_contain_text("Canceled")
    await expect(page.locator("#runs .run").first).to_have_attribute("data-status", "succeeded", timeout=20_000)


async def test_errors_are_shown_in_words(page: Page, site: str) -> None:
    failing = example("txt2img.json")
    failing["3"]["_meta"]["double"] = {"fault": "error"}
    await page.goto(site)
    await paste(page, failing)
    await page.click("#run")
    card = page.locator("#runs .run").first
    await expect(card).to_have_attribute("data-status", "failed", timeout=15_000)
    await expect(card.locator(".error")).to_contain_text("node 3 (KSampler)")
    await expect(card.locator(".error")).to_contain_text("RuntimeError")
    invalid = example("txt2img.json")
    invalid["4"]["inputs"]["ckpt_name"] = "missing.safetensors"
    await paste(page, invalid)
    await page.click("#run")
    refusal = page.locator("#runs .run").first.locator(".error")
    await expect(refusal).to_contain_text("CheckpointLoaderSimple (node 4): Value not in list")
    await expect(refusal).not_to_contain_text("Prompt outputs failed validation")


async def test_a_workflow_saved_by_the_editor_runs_and_is_published_behind_a_link(
        page: Page, site: str, tmp_path: Path, open_page: OpenPage) -> None:
    """A creator drops the file ComfyUI saved, runs it, keeps three of the settings the agent found, renames
    one, publishes, and hands out the link: whoever opens it gets that form and nothing else."""
    saved = tmp_path / "Lake scenery.json"
    saved.write_text(json.dumps(saved_t2i()))
    await page.goto(site)
    await page.click("#own summary")
    await page.set_input_files("#file", str(saved))
    await expect(page.locator("[id='6.text']")).to_have_value(
        "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,")  # converted by the agent
    await page.click("#run")
    await expect(page.locator("#gallery img")).to_have_count(1, timeout=15_000)
    await expect(page.locator("#publish-panel")).to_be_visible()
    await expect(page.locator("#publish-name")).to_have_value("Lake-scenery")
    for parameter in ("7_text", "3_seed", "3_cfg", "3_denoise", "5_batch_size", "4_ckpt_name"):
        await page.uncheck(f"[id='keep-{parameter}']")
    await page.fill("#publish-name", "lake")
    await page.fill("#publish-title", "A lake")
    await page.fill("[id='title-6_text']", "What to paint")
    await page.click("#publish")
    await expect(page.locator("#publish-version")).to_have_text("lake@1")
    link = await page.locator("#publish-link").get_attribute("href")
    assert link is not None and link.endswith("?workflow=lake")
    async with open_page() as visitor:
        await visitor.goto(link)
        await expect(visitor.locator("#examples")).to_have_value("lake")
        await expect(visitor.locator("#params label")).to_have_text([  # as the proposal listed them
            "Empty Latent Image: Width", "Empty Latent Image: Height", "KSampler: Steps", "What to paint"])
        await visitor.fill("[id='6_text']", "a lake at dawn")
        await visitor.fill("[id='5_width']", "64")
        await visitor.fill("[id='5_height']", "64")
        await visitor.click("#run")
        await expect(visitor.locator("#gallery img")).to_have_count(1, timeout=15_000)


async def test_an_image_comfyui_saved_opens_its_workflow(page: Page, site: str, tmp_path: Path) -> None:
    """The image the agent's run of a saved graph wrote carries that graph (PNG text, as ComfyUI's own saves):
    dropped back on the page, it opens the same workflow."""
    async with aiohttp.ClientSession() as session, session.post(site.replace("/app/", "/api/run"),
                                                                json=saved_t2i()) as reply:
        body = await reply.json()
        assert reply.status == 200, body
    image = tmp_path / "made.png"
    image.write_bytes(base64.b64decode(body["9"]["results"][0]))
    await page.goto(site)
    await page.click("#own summary")
    await page.set_input_files("#file", str(image))
    await expect(page.locator("[id='3.steps']")).to_have_value("2")
    await expect(page.locator("#workflow-name")).to_have_text("made.png")
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    await page.set_input_files("#file", str(plain))
    await expect(page.locator("#workflow-error")).to_have_text("plain.png carries no workflow: it was not saved by "
                                                               "ComfyUI.")


async def test_a_saved_graph_that_cannot_be_converted_names_the_node(page: Page, site: str) -> None:
    broken = saved_t2i()
    next(node for node in broken["nodes"] if node["id"] == 4)["type"] = "NoSuchNode"
    await page.goto(site)
    await paste(page, broken)
    await expect(page.locator("#workflow-error")).to_contain_text("node 4 (NoSuchNode): this ComfyUI has no such node")


async def test_picture_for_loadimage_and_history_after_reload(page: Page, site: str, tmp_path: Path) -> None:
    picture = tmp_path / "mine.png"
    Image.new("RGB", (32, 32), (250, 120, 20)).save(picture)
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "picked"}}}
    await page.goto(site)
    await paste(page, workflow)
    await page.set_input_files("[id='1.image'] input[type=file]", str(picture))
    await expect(page.locator("[id='1.image'] img")).to_have_attribute("src", re.compile("^data:"))
    await page.click("#run")
    await expect(page.locator("#gallery img")).to_have_count(1, timeout=15_000)
    await page.reload()
    await expect(page.locator("#history .run")).to_have_count(1)
    await page.locator("#history").get_by_role("button", name="Show images").click()
    await expect(page.locator("#history img")).to_have_count(1)


async def test_token_protected_agent(page: Page, comfy: str) -> None:
    async with running_agent(comfyui_url=comfy, agent_token=TOKEN) as agent:
        published = await agent.post("/api/workflows", json={"name": "lake", "title": "A lake", "graph": saved_t2i()},
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        assert published.status == 201, await published.text()
        await page.goto(str(agent.make_url("/app/")))
        await expect(page.locator("#readiness")).to_have_text("token needed")
        examples = page.locator("#examples option")
        await expect(examples).to_have_text(["choose…", "Image to image", "Text to image"])  # not the published one
        await page.select_option("#examples", label="Text to image")
        await page.click("#run")
        await expect(page.locator("#runs .run").first.locator(".error")).to_contain_text("token")
        await page.fill("#token", TOKEN)
        await page.locator("#token").dispatch_event("change")
        await expect(page.locator("#readiness")).to_have_text("ComfyUI ready")
        await expect(examples).to_have_text(["choose…", "Image to image", "A lake", "Text to image"])  # by name
        await expect(page.locator("#examples")).to_have_value("txt2img")  # still the one chosen
        # with the token, the example is the agent's workflow: its checkpoint list is ComfyUI's
        await expect(page.locator("[id='checkpoint']")).to_have_value(INSTALLED)
        await page.click("#run")
        await expect(page.locator("#runs .run[data-status='succeeded']")).to_have_count(1, timeout=15_000)


async def test_a_full_agent_says_it_is_busy_not_that_comfyui_is_down(page: Page, comfy: str) -> None:
    async with running_agent(comfyui_url=comfy, max_active_runs=1) as agent:
        slow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1},
                      "_meta": {"double": {"delay": 5.0}}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "busy"}}}
        held = asyncio.ensure_future(agent.post("/api/run", json=slow))
        await until(lambda: readiness_is(agent, 503), EVENTUALLY, "the agent to be full")
        await page.goto(str(agent.make_url("/app/")))
        await expect(page.locator("#readiness")).to_have_text("agent busy")
        assert (await held).status == 200


async def readiness_is(agent: TestClient[web.Request, web.Application], status: int) -> bool:
    return (await agent.get("/readyz")).status == status


async def test_images_in_the_output_store_show_from_their_signed_urls(page: Page, comfy: str, s3: S3,
                                                                      tmp_path: Path) -> None:
    settings: dict[str, Any] = {"output_store": f"s3://{s3.bucket}/page", "output_store_endpoint": s3.endpoint,
                "output_store_key_id": "k", "output_store_key_secret": "s",
                "comfyui_output_dir": tmp_path / "comfyui" / "output"}
    async with running_agent(comfyui_url=comfy, **settings) as agent:
        await page.goto(str(agent.make_url("/app/")))
        await paste(page, {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                                         "color": 255}},
                           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "p"}}})
        await page.click("#run")
        image = page.locator("#gallery img")
        await expect(image).to_have_count(1, timeout=30_000)
        assert (await image.get_attribute("src") or "").startswith(f"{s3.endpoint}/{s3.bucket}/page/")
        await expect(image).to_have_js_property("naturalWidth", 8)  # the browser fetched it from the store


async def test_the_examples_are_listed_by_title_without_the_warm_up_graph(site: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{site}workflows/") as reply:
            listed = await reply.json()
        async with session.get(f"{site}workflows/txt2im.json") as missing:
            refused = await missing.json()
    assert listed == {"workflows": [
        {"name": "img2img", "title": "Image to image",
         "description": "Stable Diffusion 1.5: an image repainted after a prompt."},
        {"name": "txt2img", "title": "Text to image", "description": "Stable Diffusion 1.5: an image from a prompt."}]}
    assert missing.status == 404
    assert refused["error"] == "no example workflow txt2im.json; the examples are: img2img.json, txt2img.json"


async def test_failed_runs_are_counted_as_failed_not_done(page: Page, site: str) -> None:
    failing = example("txt2img.json")
    failing["3"]["_meta"]["double"] = {"fault": "error"}
    await page.goto(site)
    await paste(page, failing)
    await page.fill("[id='3.seed']", "5")
    await page.fill("#batch", "2")
    await page.click("#run")
    await expect(page.locator("#runs .run[data-status='failed']")).to_have_count(2, timeout=15_000)
    await expect(page.locator("#overall-text")).to_have_text("0 of 2 done · 2 failed")
    await expect(page.locator("#overall-box")).to_have_attribute("data-state", "failed")
    await expect(page.locator("#overall")).to_have_css("accent-color", "rgb(198, 40, 40)")  # the page's red
    await expect(page.locator("#runs .run").get_by_role("button", name="Cancel")).to_have_count(0)


async def test_a_graph_of_ones_own_is_not_named_after_the_example_shown_before(page: Page, site: str) -> None:
    await page.goto(site)
    await page.select_option("#examples", label="Text to image")
    await expect(page.locator("#workflow-name")).to_have_text("Stable Diffusion 1.5: an image from a prompt.")
    await paste(page, example("img2img.json"))
    await expect(page.locator("#workflow-name")).to_have_text("pasted workflow")
    await expect(page.locator("#examples")).to_have_value("")
    await expect(page.locator("#examples option:checked")).to_have_text("choose…")


async def test_with_no_checkpoint_installed_the_page_says_where_one_goes(page: Page, tmp_path: Path) -> None:
    runner, url = await start_double(tmp_path / "empty-comfyui", checkpoints=[])
    try:
        async with running_agent(comfyui_url=url) as agent:
            await page.goto(str(agent.make_url("/app/")))
            await page.select_option("#examples", label="Text to image")
            notice = page.locator("[id='checkpoint']")
            await expect(notice).to_have_text(
                "No checkpoint is installed. Put one in ComfyUI's models/checkpoints folder (on Function Compute: "
                "models/checkpoints on the NAS), then reload this page.")
            await page.click("#run")
            error = page.locator("#runs .run[data-status='failed'] .error")
            await expect(error).to_contain_text(
                f"parameter checkpoint: '{DEFAULT_CHECKPOINT}' is not available: ComfyUI has none; give a model's "
                "URL, or put one in its models/checkpoints folder")
    finally:
        await runner.cleanup()
