"""s.yaml: every fc3 resource's props valid against the component's schema, and set the way the agent needs.

Two functions: the GPU worker (ComfyUI and the agent) and the CPU gateway in front of it (`AGENT_MODE=gateway`),
sharing one task store and one `AGENT_TOKEN`. The props are checked as `s deploy` resolves them (tests/
serverless_devs.py, held to Serverless Devs' own parser in tests/packaging/parse_spec/ where node is installed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agent.config import ConfigError, Settings, load_settings
from recordings import FIXTURES
from serverless_devs import NotFound, resolved

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((FIXTURES / "fc3" / "schema.json").read_text())
DOCUMENT: dict[str, Any] = yaml.safe_load((REPO / "s.yaml").read_text())
# What a user puts in workerUrl after the worker's first deploy (`s comfyui info`: url.system_intranet_url).
WORKER_URL = "https://comfyui-agent-abcdefghij.cn-hangzhou-vpc.fcapp.run"
# The deployer's shell: `export AGENT_TOKEN=$(openssl rand -hex 24)` before `s deploy`.
DEPLOYER = {"AGENT_TOKEN": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c"}
PARSER = Path(__file__).parent / "parse_spec"

Props = dict[str, Any]


def with_vars(**overrides: Any) -> dict[str, Any]:
    """s.yaml with some vars edited, as a user fills them in."""
    return {**DOCUMENT, "vars": {**DOCUMENT["vars"], **overrides}}


def functions(**overrides: Any) -> list[Props]:
    """Every fc3 resource's props as `s deploy` hands them to the component (vars edited by `overrides`)."""
    assert DOCUMENT["edition"] == "3.0.0"
    document = resolved(with_vars(**overrides), DEPLOYER)
    return [resource["props"] for resource in document["resources"].values() if resource["component"] == "fc3"]


def is_gateway(props: Props) -> bool:
    return bool(props.get("environmentVariables", {}).get("AGENT_MODE") == "gateway")


def pick(every: list[Props], gateway: bool) -> Props:
    [chosen] = [props for props in every if is_gateway(props) == gateway]
    return chosen


def raw(gateway: bool) -> Props:
    """The props as written, the `${...}` references unresolved."""
    chosen: Props = pick([resource["props"] for resource in DOCUMENT["resources"].values()], gateway)
    return chosen


def agent_settings(env: Mapping[str, str]) -> Settings:
    """The agent's settings from a function's environment, ComfyUI at a URL (the image's is not on this
    machine)."""
    return load_settings([], {**env, "COMFYUI_URL": "http://127.0.0.1:8188"})


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


def test_provisioned_instances_come_from_a_var_and_none_by_default(props: Props) -> None:
    """Warm instances cost by the second: the file shows how to keep them, and keeps none unless asked."""
    assert props["provisionConfig"]["defaultTarget"] == 0
    assert props["provisionConfig"]["alwaysAllocateGPU"] is False
    assert "provisionedInstances" in DOCUMENT["vars"]


def test_the_environment_is_a_valid_agent_configuration(props: Props) -> None:
    settings = agent_settings(props["environmentVariables"])
    assert settings.store_url == "file:///mnt/auto/comfyui/tasks"
    assert settings.warmup_workflow == "warmup"  # the image's comfyui/workflows/warmup.json, by its name
    assert (Path(__file__).parents[2] / "comfyui" / "workflows" / "warmup.json").is_file()
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


@pytest.mark.parametrize("task_store", [DOCUMENT["vars"]["taskStore"], "redis://r-abc123.redis.rds.aliyuncs.com:6379/0"])
def test_gateway_and_worker_share_the_task_store(task_store: str) -> None:
    every = functions(taskStore=task_store, workerUrl=WORKER_URL)
    stores = {agent_settings(props["environmentVariables"]).store_url for props in every}
    assert stores == {task_store}
    assert {raw(gateway=flag)["environmentVariables"]["TASK_STORE"] for flag in (False, True)} == {"${vars.taskStore}"}


def test_the_task_store_is_never_empty_and_is_the_nas_folder_the_agent_would_pick(props: Props) -> None:
    # spelled out rather than left "": Serverless Devs' parser before 3.0.0 stopped at an empty variable
    env = {key: value for key, value in props["environmentVariables"].items() if key != "TASK_STORE"}
    assert DOCUMENT["vars"]["taskStore"] == agent_settings(env).store_url == "file:///mnt/auto/comfyui/tasks"


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


# What `s` does with the variables: "" stays "" (the agent reads it as unset), a missing value stops the deploy.

def outcome(env: Mapping[str, str]) -> Settings | str:
    try:
        return agent_settings(env)
    except ConfigError as error:
        return str(error)


EMPTY_VARS = sorted(name for name, value in DOCUMENT["vars"].items() if value == "")


def fed_by(name: str) -> list[tuple[str, str]]:
    """(resource, environment variable) for each environment variable that is `${vars.<name>}`."""
    return [(resource, key) for resource, spec in DOCUMENT["resources"].items()
            for key, value in spec["props"].get("environmentVariables", {}).items() if value == f"${{vars.{name}}}"]


@pytest.mark.parametrize("name", EMPTY_VARS)
def test_a_variable_left_empty_reads_as_unset_to_the_agent(name: str) -> None:
    # s passes "" on as "" (not a null, not "not found"); the agent then does what it does without the variable.
    # The worker's URL filled in otherwise, or the gateway would refuse to start either way.
    assert fed_by(name), f"{name} feeds no environment variable"
    resources = resolved(with_vars(**{"workerUrl": WORKER_URL, name: ""}), DEPLOYER)["resources"]
    for resource, key in fed_by(name):
        env = resources[resource]["props"]["environmentVariables"]
        assert env[key] == ""
        assert outcome(env) == outcome({other: value for other, value in env.items() if other != key}), key


@pytest.mark.parametrize("token", [None, ""])
def test_no_deploy_without_the_agent_token(token: str | None) -> None:
    # `${env('AGENT_TOKEN')}` with the variable unset or empty stops `s` before anything is deployed
    environ = {} if token is None else {"AGENT_TOKEN": token}
    with pytest.raises(NotFound, match=r"^env\('AGENT_TOKEN'\) not found$"):
        resolved(DOCUMENT, environ)


def test_a_bare_variable_is_a_null_that_stops_s() -> None:
    # `workerUrl:` without its quotes: what s.yaml's comment warns of
    with pytest.raises(NotFound, match=r"^\$\{vars\.workerUrl\} not found$"):
        resolved(with_vars(workerUrl=None), DEPLOYER)


# The model above held to Serverless Devs' own parser (@serverless-devs/parse-spec, what `s` 3.x runs).

def parsed_by_s(template: Path, environ: Mapping[str, str], home: Path) -> dict[str, Props]:
    """Each resource's props as tests/packaging/parse_spec/resolve.js prints them; NotFound with its message."""
    node = shutil.which("node")
    if node is None or not (PARSER / "node_modules" / "@serverless-devs" / "parse-spec").is_dir():
        pytest.skip("Serverless Devs' parser is not installed: node, then npm ci --prefix tests/packaging/parse_spec")
    # HOME apart: no ~/.s credentials or environments of this machine's user come in
    result = subprocess.run([node, str(PARSER / "resolve.js"), str(template)], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": str(home), **environ}, timeout=60, check=False)
    if result.returncode:
        raise NotFound(result.stderr.strip().splitlines()[-1].removeprefix("RuntimeError: "))
    parsed: dict[str, Props] = json.loads(result.stdout)
    return parsed


def modelled(document: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Props]:
    return {name: resource["props"] for name, resource in resolved(document, environ)["resources"].items()}


def test_s_resolves_s_yaml_as_modelled(tmp_path: Path) -> None:
    assert parsed_by_s(REPO / "s.yaml", DEPLOYER, tmp_path) == modelled(DOCUMENT, DEPLOYER)


PROBE_VARS = {"empty": "", "zero": 0, "no": False, "age": 86400, "name": "comfyui", "nothing": None,
              "indirect": "${env('PROBE_SET')}"}
PROBE_ENV = {"PROBE_SET": "from-env", "PROBE_EMPTY": ""}


def probe(tmp_path: Path, props: Props) -> Path:
    template = tmp_path / "s.yaml"
    template.write_text(yaml.safe_dump({"edition": "3.0.0", "name": "probe", "vars": PROBE_VARS,
                                        "resources": {"probe": {"component": "fc3", "props": props}}}))
    return template


def test_the_model_follows_s_on_every_rule_it_knows(tmp_path: Path) -> None:
    props = {"whole_empty": "${vars.empty}", "inside_empty": "a${vars.empty}b", "whole_zero": "${vars.zero}",
             "whole_false": "${vars.no}", "inside_false": "${vars.no}!", "whole_number": "${vars.age}",
             "inside_number": "${vars.age}s", "str_number": "${str(vars.age)}", "two": "${vars.name}-${vars.age}",
             "env": "${env('PROBE_SET')}", "env_default": "${env('PROBE_UNSET', 'fallback')}",
             "env_empty_default": "${env('PROBE_EMPTY', '')}", "env_through_a_var": "${vars.indirect}",
             "nested": {"list": ["${vars.name}", 3, True]}, "literal_null": None, "plain": "text"}
    document = yaml.safe_load(probe(tmp_path, props).read_text())
    expected = modelled(document, PROBE_ENV)
    assert expected["probe"]["whole_empty"] == "" and expected["probe"]["whole_number"] == 86400
    assert "literal_null" not in expected["probe"]
    assert parsed_by_s(tmp_path / "s.yaml", PROBE_ENV, tmp_path) == expected


@pytest.mark.parametrize("value", ["${vars.nothing}", "x${vars.nothing}", "${vars.missing}", "${vars.name.deeper}",
                                   "${env('PROBE_UNSET')}", "${env('PROBE_EMPTY')}"])
def test_the_model_stops_where_s_stops(tmp_path: Path, value: str) -> None:
    template = probe(tmp_path, {"value": value})
    with pytest.raises(NotFound) as model:
        modelled(yaml.safe_load(template.read_text()), PROBE_ENV)
    with pytest.raises(NotFound) as real:
        parsed_by_s(template, PROBE_ENV, tmp_path)
    assert str(real.value) == str(model.value)
