"""s.yaml: every fc3 resource's props valid against the component's schema, and set the way the agent needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.config import load_settings
from recordings import FIXTURES

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((FIXTURES / "fc3" / "schema.json").read_text())


def resolved(document: Any, variables: dict[str, Any]) -> Any:
    """Serverless Devs' `${vars.x}` and `${env('X')}` replaced, as `s deploy` would."""
    if isinstance(document, dict):
        return {key: resolved(value, variables) for key, value in document.items()}
    if isinstance(document, list):
        return [resolved(value, variables) for value in document]
    if isinstance(document, str):
        whole = re.fullmatch(r"\$\{vars\.(\w+)\}", document)
        if whole:
            return variables[whole.group(1)]
        document = re.sub(r"\$\{vars\.(\w+)\}", lambda match: str(variables[match.group(1)]), document)
        return re.sub(r"\$\{env\('(\w+)'\)\}", lambda match: f"<{match.group(1)}>", document)
    return document


@pytest.fixture(scope="module")
def props() -> dict[str, Any]:
    document = yaml.safe_load((REPO / "s.yaml").read_text())
    assert document["edition"] == "3.0.0"
    resources = [resource for resource in document["resources"].values() if resource["component"] == "fc3"]
    assert len(resources) == 1
    resource_props: dict[str, Any] = resolved(resources[0]["props"], document["vars"])
    return resource_props


def test_props_are_valid_for_the_fc3_component(props: dict[str, Any]) -> None:
    jsonschema.validate(props, SCHEMA, cls=jsonschema.Draft7Validator)


def test_gpu_container_on_the_agents_port(props: dict[str, Any]) -> None:
    assert props["runtime"] == "custom-container"
    assert props["gpuConfig"]["gpuType"] == "fc.gpu.ampere.1"
    assert props["customContainerConfig"]["port"] == 9000
    # /livez fails only when ComfyUI does: FC restarts an instance that fails its check, and a busy one must not go
    assert props["customContainerConfig"]["healthCheckConfig"]["httpGetUrl"] == "/livez"


def test_timeout_is_explicit_and_covers_a_whole_run(props: dict[str, Any]) -> None:
    env = props["environmentVariables"]
    assert "timeout" in props and props["timeout"] >= float(env["RUN_TIMEOUT"])


def test_concurrency_leaves_room_for_status_polls(props: dict[str, Any]) -> None:
    assert props["instanceConcurrency"] > 1


def test_nas_is_mounted_where_the_agent_looks(props: dict[str, Any]) -> None:
    mounts = [mount["mountDir"] for mount in props["nasConfig"]["mountPoints"]]
    assert props["environmentVariables"]["NAS_DIR"] in mounts == ["/mnt/auto/comfyui"]
    assert (props["nasConfig"]["userId"], props["nasConfig"]["groupId"]) == (1000, 1000)


def test_async_tasks_trigger_and_lifecycle_hooks(props: dict[str, Any]) -> None:
    assert props["asyncInvokeConfig"]["asyncTask"] is True
    assert [trigger["triggerType"] for trigger in props["triggers"]] == ["http"]
    hooks = props["instanceLifecycleConfig"]
    assert hooks["initializer"]["timeout"] >= float(props["environmentVariables"]["INITIALIZE_TIMEOUT"])
    assert hooks["preStop"]["timeout"] > float(props["environmentVariables"]["PRESTOP_GRACE"])


def test_the_environment_is_a_valid_agent_configuration(props: dict[str, Any]) -> None:
    env = {key: value for key, value in props["environmentVariables"].items() if key != "WARMUP_PROMPT"}
    settings = load_settings([], {**env, "COMFYUI_URL": "http://127.0.0.1:8188"})
    assert settings.store_url == "file:///mnt/auto/comfyui/tasks"
    assert props["environmentVariables"]["WARMUP_PROMPT"] == "/comfyui/workflows/warmup.json"
