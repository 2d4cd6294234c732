"""The page signed in with an API key: it says who the agent takes the key for, keeps each key's history and
gallery apart (a slot named from the key's fingerprint, never the key), shows a task of another key as not found,
refuses a key the agent does not know, and shows why a read-only key cannot run."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from agent_harness import running_agent

pytestmark = pytest.mark.timeout(90)

TOKEN = "page-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HISTORY_KEY = "comfyui-agent.runs"  # app.js: the list before keys, and the prefix of every key's slot
TOKEN_KEY = "comfyui-agent.token"
UNKNOWN_KEY = "cak_" + "A" * 43  # well formed, never issued
IMAGE = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 255}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "keyed"}}}

Agent = TestClient[web.Request, web.Application]


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Agent]:
    async with running_agent(comfyui_url=double, agent_token=TOKEN) as running:
        yield running


async def issue(agent: Agent, name: str, scopes: list[str]) -> str:
    reply = await agent.post("/api/keys", json={"name": name, "scopes": scopes}, headers=ADMIN)
    body = await reply.json()
    assert reply.status == 201, body
    key: str = body["key"]
    assert key.startswith("cak_") and len(key) == 47, key
    return key


def slot(key: str) -> str:
    """The history slot of a key, as the page names it: the first 16 hex digits of its SHA-256."""
    return f"{HISTORY_KEY}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


async def sign_in(page: Page, key: str) -> None:
    await page.fill("#token", key)
    await page.press("#token", "Tab")  # leaving the field is the change that signs in


async def run_image(page: Page) -> None:
    if await page.locator("#paste").is_hidden():
        await page.click("#own summary")
    await page.fill("#paste", json.dumps(IMAGE))
    await page.click("#paste-apply")
    await page.click("#run")


async def stored(page: Page) -> dict[str, str]:
    """The page's localStorage, slot by slot."""
    entries: dict[str, str] = await page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
    return entries


async def test_each_key_sees_only_its_own_history_and_gallery(page: Page, agent: Agent) -> None:
    alice = await issue(agent, "alice", ["run", "read"])
    bob = await issue(agent, "bob", ["run", "read"])
    history, gallery, who = page.locator("#history .run"), page.locator("#gallery img"), page.locator("#who")
    await page.goto(str(agent.make_url("/app/")))
    await sign_in(page, alice)
    await expect(who).to_have_text("signed in as alice · read, run")
    await expect(page.locator("#readiness")).to_have_text("ComfyUI ready")
    await run_image(page)
    await expect(page.locator("#runs .run[data-status='succeeded']")).to_have_count(1, timeout=30_000)
    await expect(gallery).to_have_count(1)
    await expect(history).to_have_count(1)
    kept = await stored(page)
    assert list(json.loads(kept[slot(alice)])[0]) == ["taskId", "workflow", "label", "createdAt", "status"]
    assert not any(alice in name or bob in name for name in kept)  # the key is in no slot's name
    task_id = json.loads(kept[slot(alice)])[0]["taskId"]

    await sign_in(page, bob)
    await expect(who).to_have_text("signed in as bob · read, run")
    for gone in (history, gallery, page.locator("#runs .run")):
        await expect(gone).to_have_count(0)
    for panel in ("#history-panel", "#gallery-panel", "#runs-panel"):
        await expect(page.locator(panel)).to_be_hidden()

    await sign_in(page, alice)
    await expect(who).to_have_text("signed in as alice · read, run")
    await expect(history).to_have_count(1)
    await expect(gallery).to_have_count(1)  # her images of this visit come back with her
    await history.get_by_role("button", name="Show images").click()
    await expect(page.locator("#history img")).to_have_count(1)

    # her task in bob's history (another browser's mix-up, say): the agent tells bob it does not exist
    seen = await agent.get(f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {bob}"})
    assert seen.status == 404 and (await seen.json())["message"] == "TaskNotFound"
    await page.evaluate("([name, entries]) => localStorage.setItem(name, entries)", [slot(bob), kept[slot(alice)]])
    await sign_in(page, bob)
    await expect(who).to_have_text("signed in as bob · read, run")
    await page.reload()  # bob's key was kept: he is signed in again
    await expect(who).to_have_text("signed in as bob · read, run")
    await expect(page.locator("#token")).to_have_value(bob)
    await expect(history).to_have_count(1)
    await history.get_by_role("button", name="Show images").click()
    await expect(page.locator("#history .images")).to_have_text("not found")
    await page.click("#history-clear")
    await expect(history).to_have_count(0)
    assert slot(bob) not in await stored(page) and slot(alice) in await stored(page)


async def test_an_unknown_key_is_refused_and_a_read_only_key_cannot_run(page: Page, agent: Agent) -> None:
    reader = await issue(agent, "carol", ["read"])
    who = page.locator("#who")
    await page.goto(str(agent.make_url("/app/")))
    await expect(page.locator("#readiness")).to_have_text("token needed")
    await expect(who).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_hidden()

    await sign_in(page, UNKNOWN_KEY)
    await expect(who).to_have_text(re.compile(r"^This key was refused: .+"))  # the agent's reason
    await expect(who).to_have_class("error")
    await expect(page.locator("#history-panel")).to_be_hidden()

    await sign_in(page, reader)
    await expect(who).to_have_text("signed in as carol · read")
    await expect(who).not_to_have_class("error")
    await run_image(page)
    card = page.locator("#runs .run").first
    await expect(card).to_have_attribute("data-status", "failed")
    await expect(card.locator(".error")).to_contain_text("Forbidden")
    await expect(page.locator("#history .run")).to_have_count(0)  # nothing ran: nothing to remember

    await sign_in(page, TOKEN)
    await expect(who).to_have_text("signed in as admin · every scope")
    await page.click("#sign-out")
    await expect(page.locator("#token")).to_have_value("")
    await expect(who).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_hidden()
    await expect(page.locator("#readiness")).to_have_text("token needed")
    assert TOKEN_KEY not in await stored(page)


async def test_the_history_from_before_keys_goes_to_the_key_it_was_made_with(page: Page, double: str) -> None:
    """An agent without a token: no key needed, none shown; the one list the page kept before keys becomes the
    slot of the token stored with it (once); signing out shows the anonymous slot, which that list left alone."""
    entry = {"taskId": "web-old", "workflow": "pasted workflow", "label": "Run 1", "createdAt": 0,
             "status": "succeeded"}
    async with running_agent(comfyui_url=double) as agent:
        await page.goto(str(agent.make_url("/app/")))
        await expect(page.locator("#readiness")).to_have_text("ComfyUI ready")
        await expect(page.locator("#who")).to_be_hidden()
        await page.evaluate("([history, token, entries]) => { localStorage.setItem(history, entries); "
                            "localStorage.setItem(token, 'old-token'); }",
                            [HISTORY_KEY, TOKEN_KEY, json.dumps([entry])])
        await page.reload()
        await expect(page.locator("#history .run")).to_have_count(1)
        # the agent takes anyone, whatever the key, for its one caller with every scope: the page says its name
        me = await (await agent.get("/api/me", headers={"Authorization": "Bearer old-token"})).json()
        assert me["admin"] is True
        await expect(page.locator("#who")).to_have_text(f"signed in as {me['name']} · every scope")
        kept = await stored(page)
        assert HISTORY_KEY not in kept and json.loads(kept[slot("old-token")]) == [entry]
        await page.click("#sign-out")
        await expect(page.locator("#history .run")).to_have_count(0)
        await expect(page.locator("#who")).to_be_hidden()
        await run_image(page)
        await expect(page.locator("#history .run")).to_have_count(1, timeout=30_000)
        assert len(json.loads((await stored(page))[f"{HISTORY_KEY}.anonymous"])) == 1


async def test_the_fingerprint_without_crypto_subtle_is_the_same_sha256(page: Page, double: str) -> None:
    """crypto.subtle exists in secure contexts only (not on an agent's plain-HTTP LAN address): the page's own
    SHA-256 must give the digest hashlib gives, at the block boundaries too."""
    texts = ["", "abc", "cak_" + "x" * 43, "a" * 55, "a" * 56, "a" * 64, "a" * 119, "clé ☃ 鍵", "z" * 1000]
    async with running_agent(comfyui_url=double) as agent:
        await page.goto(str(agent.make_url("/app/")))
        digests = await page.evaluate("""async (texts) => {
          const identity = await import(new URL("identity.js", location.href).href);
          return Promise.all(texts.map(async (text) => [identity.sha256Hex(text), await identity.fingerprint(text)]));
        }""", texts)
    expected = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
    assert [own for own, _ in digests] == expected
    assert [fingerprint for _, fingerprint in digests] == [digest[:16] for digest in expected]
