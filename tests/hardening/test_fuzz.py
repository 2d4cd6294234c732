"""Property-based fuzzing of /api/run, /api/status and the task routes: never an unhandled 500, every error in
the JSON shape, and never a file written outside the task folder."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_process import AgentProcess, launch_with_double

TASK_FILE = re.compile(r"[A-Za-z0-9_-]{1,128}(\.json|\.results\.json|\.cancel|\.events|\.shared)|\..+\.tmp")
STORE_FOLDERS = {"usage", "access", "published"}  # the store's own: the usage ledger, keys and meters
HANDLED_500 = {"ExecutionError"}
CLASSES = ["EmptyImage", "SaveImage", "PreviewImage", "LoadImage", "LoadImageMask", "ImageInvert", "KSampler",
           "NoSuchNode", ""]
NASTY_IDS = ["../x", "..", "/etc/passwd", "a/b", "x" * 129, "%2e%2e%2fx", "ok-id_1", "a.json", "-", "_"]
LOCAL_URLS = ["http://127.0.0.1:9/a.png", "http://10.0.0.1/a.png", "http://[::1]/a.png", "http://169.254.169.254/",
              "http://100.100.100.200/latest", "ftp://127.0.0.1/a", "file:///etc/passwd", "data:image/png;base64,@@"]

header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=140)
task_ids = st.one_of(header_text, st.sampled_from(NASTY_IDS))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                        st.text(max_size=30), st.sampled_from(LOCAL_URLS))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
links = st.tuples(st.sampled_from(["1", "2", "3", "99"]), st.integers(-1, 3)).map(list)
nodes = st.fixed_dictionaries({"class_type": st.sampled_from(CLASSES), "inputs": st.dictionaries(
    st.sampled_from(["image", "images", "width", "height", "color", "batch_size", "filename_prefix", "x"]),
    st.one_of(json_leaves, links), max_size=5)})
prompts = st.dictionaries(st.sampled_from(["1", "2", "3", "10", ""]), nodes, min_size=1, max_size=4)
bodies = st.one_of(prompts, st.fixed_dictionaries({"prompt": prompts, "options": json_values}), json_values,
                   st.binary(max_size=300))
queries = st.dictionaries(st.sampled_from(["task_id", "id", "results", "timeout", "async", "token"]), header_text,
                          max_size=3)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, httpx.Client, Path]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    agent = launch_with_double(workdir / "agent", TASK_STORE=f"file://{workdir / 'agent' / 'tasks'}", RUN_TIMEOUT="10")
    agent.wait_ready()
    with httpx.Client(base_url=agent.url, timeout=30) as client:
        yield agent, client, workdir
    agent.stop()
    own = {"agent.log", "extra_model_paths.nas.yaml"}  # the agent's log, and the NAS model paths it tells ComfyUI
    outside = [path for path in workdir.rglob("*")
               if path.is_file() and "tasks" not in path.parts and "nas" not in path.parts and path.name not in own]
    assert outside == [], f"files written outside the task folder: {outside}"
    stray = [path.name for path in (workdir / "agent" / "tasks").iterdir()
             if not TASK_FILE.fullmatch(path.name) and path.name not in STORE_FOLDERS]
    assert stray == [], stray


def assert_handled(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("message"), str), body
    if response.status_code >= 500:
        assert body["message"] in HANDLED_500 | {"ComfyUIUnavailable", "Timeout", "ComfyUICrashed",
                                                 "StoreUnavailable", "OutputUnavailable"}, body
        assert body["message"] != "InternalError"


def encode(body: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity included, which strict parsers refuse."""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies, task_id=st.one_of(st.none(), task_ids), query=queries)
def test_run(fuzzed: tuple[AgentProcess, httpx.Client, Path], body: Any, task_id: str | None,
             query: dict[str, str]) -> None:
    _, client, _ = fuzzed
    headers = {"task-id": task_id} if task_id is not None else {}
    response = client.post("/api/run", content=encode(body), params=query, headers=headers)
    assert_handled(response)


@FUZZ
@given(task_id=task_ids, query=queries, via_header=st.booleans())
def test_status(fuzzed: tuple[AgentProcess, httpx.Client, Path], task_id: str, query: dict[str, str],
                via_header: bool) -> None:
    _, client, _ = fuzzed
    response = (client.get("/api/status", headers={"task-id": task_id}, params=query) if via_header
                else client.get("/api/status", params={**query, "id": task_id}))
    assert_handled(response)


@FUZZ
@given(task_id=st.one_of(task_ids, st.text(max_size=40)), cancel=st.booleans(), query=queries)
def test_task_routes(fuzzed: tuple[AgentProcess, httpx.Client, Path], task_id: str, cancel: bool,
                     query: dict[str, str]) -> None:
    _, client, _ = fuzzed
    path = f"/api/tasks/{quote(task_id, safe='')}"
    response = client.post(f"{path}/cancel", params=query) if cancel else client.get(path, params=query)
    if response.status_code == 404 and not response.content:
        return  # a path outside the agent's routes (e.g. a task id with '/') went on to ComfyUI
    assert_handled(response)
