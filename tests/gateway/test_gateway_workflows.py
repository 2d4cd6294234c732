"""Workflows the ComfyUI editor saved, at the gateway: it converts them against the node catalog a worker
published (it has no ComfyUI), a workflow published there is served by the workers at once, and runs handed to
the workers record the version they ran."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.test_gateway import AUTH, BACKGROUND, Deployment, _published, deployment  # noqa: F401 - the fixture
from waiting import EVENTUALLY, until
from workflows.test_editor_surfaces import saved_t2i

pytestmark = pytest.mark.timeout(180)


async def test_a_workflow_published_at_the_gateway_runs_on_the_workers(deployment: Deployment) -> None:  # noqa: F811
    await deployment.start_workers(1)
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's node catalog")
    session, gateway, worker = deployment.session, deployment.url, deployment.workers[0].url
    async with session.post(f"{gateway}/api/workflows", json={"name": "scenery", "graph": saved_t2i()},
                            headers=AUTH) as reply:
        published: dict[str, Any] = await reply.json()
        assert reply.status == 201 and published["version"] == 1, published
    async with session.get(f"{worker}/api/workflows/scenery", headers=AUTH) as reply:
        assert reply.status == 200 and (await reply.json())["version"] == 1  # the worker serves it at once
    async with session.post(f"{gateway}/api/workflows/scenery/run", json={"params": {"6_text": "a harbour"}},
                            headers={**BACKGROUND, "task-id": "gw-published"}) as reply:
        assert reply.status == 202, await reply.text()
    ended = await deployment.ended("gw-published")
    assert ended["status"] == "succeeded" and ended["workflow"] == "scenery@1", ended
    assert ended["params"]["6_text"] == "a harbour"


async def test_a_saved_graph_is_checked_at_the_gateway_and_run_on_a_worker(deployment: Deployment) -> None:  # noqa: F811
    await deployment.start_workers(1)
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's node catalog")
    broken = saved_t2i()
    next(node for node in broken["nodes"] if node["id"] == 4)["type"] = "NoSuchNode"
    async with deployment.session.post(f"{deployment.url}/api/run", json=broken,
                                       headers={**BACKGROUND, "task-id": "gw-broken"}) as reply:
        refused = await reply.json()
        assert reply.status == 400 and refused["message"] == "WorkflowFormatError", refused
    assert "gw-broken" not in deployment.front.by_task_id  # refused before it was handed on
    await deployment.submit("gw-saved", saved_t2i())
    ended = await deployment.ended("gw-saved")
    assert ended["status"] == "succeeded", ended


async def test_a_run_handed_on_runs_the_version_the_gateway_resolved(deployment: Deployment) -> None:  # noqa: F811
    await deployment.start_workers(1)
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's node catalog")
    session, gateway = deployment.session, deployment.url

    async def publish(title: str) -> int:
        async with session.post(f"{gateway}/api/workflows", json={"name": "scenery", "title": title,
                                                                  "graph": saved_t2i()}, headers=AUTH) as reply:
            assert reply.status == 201, await reply.text()
            version: int = (await reply.json())["version"]
            return version

    assert await publish("first") == 1
    deployment.front.hold()
    async with session.post(f"{gateway}/api/workflows/scenery/run", json={"params": {"6_text": "a harbour"}},
                            headers={**BACKGROUND, "task-id": "gw-pinned"}) as reply:
        assert reply.status == 202, await reply.text()

    async def parked() -> bool:
        return deployment.front.waiting == 1

    await until(parked, EVENTUALLY, "FC to hold the run")
    assert await publish("second") == 2  # published while the run waits in FC's queue
    deployment.front.release()
    ended = await deployment.ended("gw-pinned")
    assert ended["status"] == "succeeded" and ended["workflow"] == "scenery@1", ended
