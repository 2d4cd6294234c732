"""s.yaml: every fc3 resource's props valid against the component's schema, and set the way the agent needs.

Two functions: the GPU worker (ComfyUI and the agent) and the CPU gateway in front of it (`AGENT_MODE=gateway`),
sharing one task store and one `AGENT_TOKEN`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.config import ConfigError, load_settings
from recordings import FIXTURES

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((FIXTURES / "fc3" / "schema.json").read_text())
DOCUMENT: dict[str, Any] = yaml.safe_load((REPO / "s.yaml").read_text())
# What a user puts in workerUrl after the worker's first deploy (`s comfyui info`: url.system_intranet_url).
WORKER_URL = "https://comfyui-agent-abcdefghij.cn-hangzhou-vpc.fcapp.run"

Props = dict[str, Any]


def resolved(document: Any, variables: dict[str, Any]) -> Any:
    """Serverless Devs' `${vars.x}`, `${str(vars.x)}` and `${env('X')}` replaced, as `s deploy` would: a whole
    `${vars.x}` keeps the variable's type, `${str(vars.x)}` makes it a string."""
    if isinstance(document, dict):
        return {key: resolved(value, variables) for key, value in document.items()}
    if isinstance(document, list):
        return [resolved(value, variables) for value in document]
    if isinstance(document, str):
        whole = re.fullmatch(r"\$\{vars\.(\w+)\}", document)
        if whole:
            return variables[whole.group(1)]
        document = re.sub(r"\$\{(?:str\()?vars\.(\w+)\)?\}", lambda match: str(variables[match.group(1)]), document)
        return re.sub(r"\$\{env\('(\w+)'\)\}", lambda match: f"<{match.group(1)}>", document)
    return document


def functions(**overrides: Any) -> list[Props]:
    """Every fc3 resource's props, resolved with the file's vars (and `overrides`, as `s deploy --var` would)."""
    assert DOCUMENT["edition"] == "3.0.0"
    variables = {**DOCUMENT["vars"], **overrides}
    return [resolved(resource["props"], variables) for resource in DOCUMENT["resources"].values()
            if resource["component"] == "fc3"]


def is_gateway(props: Props) -> bool:
    return bool(props.get("environmentVariables", {}).get("AGENT_MODE") == "gateway")


def pick(every: list[Props], gateway: bool) -> Props:
    [chosen] = [props for props in every if is_gateway(props) == gateway]
    return chosen


def raw(gateway: bool) -> Props:
    """The props as written, the `${...}` references unresolved."""
    chosen: Props = pick([resource["props"] for resource in DOCUMENT["resources"].values()], gateway)
    return chosen


@pytest.fixture(scope="module")
def props() -> Props:
    """The GPU worker's props."""
    return pick(functions(), gateway=False)


@pytest.fixture(scope="module")
def gateway() -> Props:
    return pick(functions(), gateway=True)


def test_a_worker_and_a_gateway_each_valid_for_the_fc3_component() -> None:
    every = functions()
    assert len(every) == 2 and sorted(map(is_gateway, every)) == [False, True]
    assert len({props["functionName"] for props in every}) == 2
    for props in every:
        jsonschema.validate(props, SCHEMA, cls=jsonschema.Draft7Validator)
        # every reference resolves from vars or the environment (none to another resource's output)
        assert "${" not in json.dumps(props), props["functionName"]


# The GPU worker: ComfyUI and the agent, as it runs alone.

def test_gpu_container_on_the_agents_port(props: Props) -> None:
    assert props["runtime"] == "custom-container"
    assert props["gpuConfig"]["gpuType"] == "fc.gpu.ampere.1"
    assert props["customContainerConfig"]["port"] == 9000
    # /livez fails only when ComfyUI does: FC restarts an instance that fails its check, and a busy one must not go
    assert props["customContainerConfig"]["healthCheckConfig"]["httpGetUrl"] == "/livez"


def test_timeout_is_explicit_and_covers_a_whole_run(props: Props) -> None:
    env = props["environmentVariables"]
    assert "timeout" in props and props["timeout"] >= float(env["RUN_TIMEOUT"])


def test_concurrency_leaves_room_for_status_polls(props: Props) -> None:
    assert props["instanceConcurrency"] > 1


def test_nas_is_mounted_where_the_agent_looks(props: Props) -> None:
    mounts = [mount["mountDir"] for mount in props["nasConfig"]["mountPoints"]]
    assert props["environmentVariables"]["NAS_DIR"] in mounts == ["/mnt/auto/comfyui"]
    assert (props["nasConfig"]["userId"], props["nasConfig"]["groupId"]) == (1000, 1000)


def test_async_tasks_trigger_and_lifecycle_hooks(props: Props) -> None:
    assert props["asyncInvokeConfig"]["asyncTask"] is True
    assert [trigger["triggerType"] for trigger in props["triggers"]] == ["http"]
    hooks = props["instanceLifecycleConfig"]
    assert hooks["initializer"]["timeout"] >= float(props["environmentVariables"]["INITIALIZE_TIMEOUT"])
    assert hooks["preStop"]["timeout"] > float(props["environmentVariables"]["PRESTOP_GRACE"])


def test_the_environment_is_a_valid_agent_configuration(props: Props) -> None:
    env = {key: value for key, value in props["environmentVariables"].items() if key != "WARMUP_PROMPT"}
    settings = load_settings([], {**env, "COMFYUI_URL": "http://127.0.0.1:8188"})
    assert settings.store_url == "file:///mnt/auto/comfyui/tasks"
    assert props["environmentVariables"]["WARMUP_PROMPT"] == "/comfyui/workflows/warmup.json"
    assert props["environmentVariables"].get("AGENT_MODE", "worker") == "worker"


def test_the_workers_trigger_takes_the_gateways_bearer_token(props: Props) -> None:
    # the gateway authenticates with Authorization: Bearer, which the agent checks: FC's signed `function` auth
    # would need RAM keys on the gateway
    [trigger] = props["triggers"]
    assert trigger["triggerConfig"]["authType"] == "anonymous"
    assert {"GET", "POST"} <= set(trigger["triggerConfig"]["methods"])


# The gateway: no GPU, the page, polls and streams from the store, runs handed to the worker.

def test_gateway_is_a_small_cpu_container_on_the_agents_port(gateway: Props, props: Props) -> None:
    assert gateway["runtime"] == "custom-container"
    assert "gpuConfig" not in gateway
    assert gateway["cpu"] <= 2 and gateway["memorySize"] <= 2048  # mostly idle I/O: no worker's sizes
    assert gateway["customContainerConfig"]["port"] == 9000
    assert raw(gateway=True)["customContainerConfig"]["image"] == "${vars.imageGateway}"
    assert gateway["customContainerConfig"]["image"] != props["customContainerConfig"]["image"]


def test_gateway_health_check_and_no_lifecycle_hooks(gateway: Props) -> None:
    # no ComfyUI behind it: /healthz (the process answers) is the whole of its health
    assert gateway["customContainerConfig"]["healthCheckConfig"]["httpGetUrl"] == "/healthz"
    assert "instanceLifecycleConfig" not in gateway


def test_gateway_mode_and_the_worker_url_from_a_var(gateway: Props) -> None:
    assert gateway["environmentVariables"]["AGENT_MODE"] == "gateway"
    assert raw(gateway=True)["environmentVariables"]["WORKER_URL"] == "${vars.workerUrl}"
    assert "workerUrl" in DOCUMENT["vars"]


def test_gateway_timeout_covers_a_forwarded_synchronous_run(gateway: Props, props: Props) -> None:
    # a synchronous run is forwarded as a synchronous call and streamed back: it lasts as long as the worker's
    # call (RUN_TIMEOUT at most, capped by the worker's timeout), after a cold start's initializer
    assert "timeout" in gateway and gateway["timeout"] >= float(props["environmentVariables"]["RUN_TIMEOUT"])
    assert gateway["timeout"] >= props["timeout"] + props["instanceLifecycleConfig"]["initializer"]["timeout"]
    assert gateway["environmentVariables"]["RUN_TIMEOUT"] == props["environmentVariables"]["RUN_TIMEOUT"]


def test_gateway_concurrency_holds_many_idle_connections(gateway: Props) -> None:
    # each event stream and forwarded synchronous run holds a slot for a whole run; polls come in bursts
    assert gateway["instanceConcurrency"] >= 100


def test_gateway_shares_the_workers_nas_and_vpc(gateway: Props, props: Props) -> None:
    assert gateway["nasConfig"] == props["nasConfig"]
    assert gateway["environmentVariables"]["NAS_DIR"] == props["environmentVariables"]["NAS_DIR"]
    # the same VPC: the NAS mount target, a Redis task store and the worker's intranet URL are all inside it
    assert gateway["vpcConfig"] == props["vpcConfig"]


@pytest.mark.parametrize("task_store", ["", "redis://r-abc123.redis.rds.aliyuncs.com:6379/0"])
def test_gateway_and_worker_share_the_task_store(task_store: str) -> None:
    every = functions(taskStore=task_store, workerUrl=WORKER_URL)
    stores = set()
    for props in every:
        env = {key: value for key, value in props["environmentVariables"].items() if key != "WARMUP_PROMPT"}
        stores.add(load_settings([], {**env, "COMFYUI_URL": "http://127.0.0.1:8188"}).store_url)
    assert stores == {task_store or "file:///mnt/auto/comfyui/tasks"}
    assert {raw(gateway=flag)["environmentVariables"]["TASK_STORE"] for flag in (False, True)} == {"${vars.taskStore}"}


def test_gateway_and_worker_share_the_agent_token() -> None:
    sources = {raw(gateway=flag)["environmentVariables"]["AGENT_TOKEN"] for flag in (False, True)}
    assert sources == {"${env('AGENT_TOKEN')}"}
    # the token sent to the worker defaults to AGENT_TOKEN; one set apart would have to come from the same place
    assert raw(gateway=True)["environmentVariables"].get("WORKER_TOKEN", "${env('AGENT_TOKEN')}") in sources


def test_gateway_event_age_is_the_workers(gateway: Props, props: Props) -> None:
    # a run the gateway queued that no worker took within FC's maximum event age reads as failed
    age = props["asyncInvokeConfig"]["maxAsyncEventAgeInSeconds"]
    assert isinstance(age, int) and gateway["environmentVariables"]["ASYNC_MAX_EVENT_AGE"] == str(age)
    assert raw(gateway=False)["asyncInvokeConfig"]["maxAsyncEventAgeInSeconds"] == "${vars.maxAsyncEventAge}"
    assert raw(gateway=True)["environmentVariables"]["ASYNC_MAX_EVENT_AGE"] == "${str(vars.maxAsyncEventAge)}"


def test_gateway_public_trigger(gateway: Props) -> None:
    # anonymous: the agent's token guards it, and the page at /app/ must load in a browser
    [trigger] = gateway["triggers"]
    assert trigger["triggerType"] == "http"
    assert trigger["triggerConfig"]["authType"] == "anonymous"
    assert trigger["triggerConfig"]["disableURLInternet"] is False
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= set(trigger["triggerConfig"]["methods"])


def test_the_gateway_environment_is_a_valid_agent_configuration() -> None:
    gateway = pick(functions(workerUrl=WORKER_URL), gateway=True)
    settings = load_settings([], gateway["environmentVariables"])
    assert settings.store_url == "file:///mnt/auto/comfyui/tasks"
    assert not settings.launches_comfyui


def test_an_unfilled_worker_url_stops_the_gateway_at_start(gateway: Props) -> None:
    # as shipped, workerUrl is empty until the worker's URL is known: the gateway refuses to start, saying why
    assert gateway["environmentVariables"]["WORKER_URL"] == ""
    with pytest.raises(ConfigError, match="WORKER_URL"):
        load_settings([], gateway["environmentVariables"])
