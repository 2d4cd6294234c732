"""Schemathesis drives the live agent, a real process supervising the double, from the contract alone: every
answer must be one the contract allows (status, headers, content type, body), bad input is refused, and nothing
ends in an unhandled error. The lifecycle hooks change what the agent accepts, so they get an agent of their own.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import negative_data_rejection, not_a_server_error, positive_data_acceptance
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.openapi.checks import UndefinedStatusCode

from agent.api.contract import contract
from agent_process import AgentProcess, launch_with_double

LIFECYCLE = ("/initialize", "/pre-stop")
EXAMPLES = 60  # per operation; the whole run stays near a minute on two cores


def _agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = launch_with_double(tmp_path_factory.mktemp("conformance"), RUN_TIMEOUT="10", PRESTOP_GRACE="2")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    yield from _agent(tmp_path_factory)


@pytest.fixture(scope="module")
def stopping_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """`/pre-stop` leaves an agent refusing runs until the next `/initialize`: kept apart from the rest."""
    yield from _agent(tmp_path_factory)


schema = schemathesis.openapi.from_dict(contract())  # the repository's document, not the one served


@schemathesis.check
def no_unhandled_error(ctx: Any, response: Any, case: Case[Any]) -> bool | None:
    """The agent's 5xx are documented outcomes of a run (ComfyUI failed, crashed, is away); an unexpected fault
    in the agent itself is `InternalError` (in v2's envelope, its `details.kind`), and that must never happen."""
    if response.status_code >= 500:
        body = response.json()
        error = body.get("error")
        v2_kind = (error.get("details") or {}).get("kind") if isinstance(error, dict) else None
        if "InternalError" in (body.get("message"), v2_kind):
            raise Failure(operation=case.operation.label, title="Unhandled error in the agent",
                          message=f"{case.method} {case.formatted_path} -> {response.status_code} {body}")
    return None


# A multipart form's text fields carry no JSON types: `0.0` or `null` sent as a file's name is that text, which
# schemathesis counts as a number or null it expected refused.
UNTYPED_FORMS = {"POST /api/v2/assets"}


def _call(case: Case[Any], agent: AgentProcess) -> None:
    excluded = [
        not_a_server_error,  # replaced by no_unhandled_error: the contract documents the agent's 5xx
        positive_data_acceptance,  # a prompt valid by the contract may still be refused by ComfyUI (400)
    ]
    if case.operation.label in UNTYPED_FORMS:
        excluded.append(negative_data_rejection)
    case.call_and_validate(base_url=agent.url, timeout=30, excluded_checks=excluded,
                           additional_checks=[no_unhandled_error])


@schema.exclude(path=list(LIFECYCLE)).parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_one_the_contract_allows(case: Case[Any], agent: AgentProcess) -> None:
    _call(case, agent)


@schema.include(path=list(LIFECYCLE)).parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_lifecycle_hooks_answer_as_the_contract_says(case: Case[Any], stopping_agent: AgentProcess) -> None:
    _call(case, stopping_agent)


def test_a_status_outside_the_contract_is_caught(agent: AgentProcess) -> None:
    """The checks can fail: a contract that forgets the 404 of an unknown task is reported."""
    narrowed = copy.deepcopy(contract())
    operation = narrowed["paths"]["/api/tasks/{task_id}"]["get"]
    del operation["responses"]["404"]
    case = schemathesis.openapi.from_dict(narrowed)["/api/tasks/{task_id}"]["GET"].Case(
        path_parameters={"task_id": "never-was"})
    with pytest.raises(FailureGroup) as raised:  # a BaseExceptionGroup of each check's failure
        _call(case, agent)
    assert [type(failure) for failure in raised.value.exceptions] == [UndefinedStatusCode]


RUN_EXAMPLES = contract()["paths"]["/api/run"]["post"]["requestBody"]["content"]["application/json"]["examples"]


@pytest.mark.parametrize("name", sorted(RUN_EXAMPLES))
def test_the_contract_s_examples_run_and_their_replies_conform(agent: AgentProcess, name: str) -> None:
    case = schema["/api/run"]["POST"].Case(body=RUN_EXAMPLES[name]["value"], media_type="application/json")
    response = case.call(base_url=agent.url, timeout=30)
    assert response.status_code == 200, response.text
    progress = response.json()
    assert set(progress) == {"1", "2"}
    assert re.fullmatch(r"[0-9a-f]{32}_agent_00001_\.png", progress["2"]["images"][0]["filename"])  # task-named
    assert ("results" in progress["2"]) is (name == "prompt")
    case.validate_response(response, excluded_checks=[not_a_server_error, positive_data_acceptance])
