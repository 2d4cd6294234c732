"""A caller's parameters checked against a definition and set into a copy of its graph; any wrong value is a
400 `RequestParamsError` naming the parameter and why, before anything runs."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from agent.errors import RequestParamsError
from agent.models.refs import names_by_url
from agent.workflows.definition import SEED_MAX, Definition, Parameter

RANDOM_SEEDS = 2**48  # what the page draws too: exact in a JavaScript number


def _refused(parameter: Parameter, why: str) -> RequestParamsError:
    return RequestParamsError(f"parameter {parameter.name}: {why}", parameter=parameter.name)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _in_bounds(parameter: Parameter, value: float) -> None:
    if parameter.minimum is not None and value < parameter.minimum:
        raise _refused(parameter, f"{value} is below the minimum {parameter.minimum:g}")
    if parameter.maximum is not None and value > parameter.maximum:
        raise _refused(parameter, f"{value} is above the maximum {parameter.maximum:g}")


def _checked(parameter: Parameter, value: Any, choices: list[Any] | None) -> Any:
    kind = parameter.type
    if kind in ("string", "image") and not (isinstance(value, str) and (value or kind == "string")):
        raise _refused(parameter, "must be a non-empty string" if kind == "image" else "must be a string")
    if kind == "boolean" and not isinstance(value, bool):
        raise _refused(parameter, "must be true or false")
    if kind in ("integer", "seed") and not (_is_number(value) and float(value).is_integer()):
        raise _refused(parameter, "must be an integer")
    if kind == "number" and not _is_number(value):
        raise _refused(parameter, "must be a number")
    if kind in ("integer", "number"):
        _in_bounds(parameter, value)
    if kind == "seed":
        if value == -1:
            return random.randrange(RANDOM_SEEDS)
        if not 0 <= value <= SEED_MAX:
            raise _refused(parameter, f"must be -1 (drawn at random) or 0 to {SEED_MAX}")
        return int(value)
    if kind == "enum":
        _among_choices(parameter, value, choices)
    return int(value) if kind == "integer" else value


def _among_choices(parameter: Parameter, value: Any, choices: list[Any] | None, default: bool = False) -> None:
    """An enum's value is one of its choices, as ComfyUI lists them now when it does: the refusal names them,
    or says that none is installed and where models go."""
    listed = choices if choices is not None else parameter.choices
    if listed is None or value in listed or (parameter.models_folder and names_by_url(value)):
        return  # a model named by URL is fetched, and judged, before the run (agent/models)
    given = f"{value!r}" + (" (the default)" if default else "")
    if listed:
        shown = ", ".join(map(str, listed[:20])) + (", ..." if len(listed) > 20 else "")
        raise _refused(parameter, f"{given} is not one of the choices ({shown})")
    if parameter.choices_from is None:
        raise _refused(parameter, f"{given} is not available: the workflow lists no choices")
    where = parameter.models_folder or "models"
    raise _refused(parameter, f"{given} is not available: ComfyUI has none; give a model's URL, or put one in "
                              f"its {where} folder ($NAS_DIR/{where} on Function Compute), then run again")


def _default(parameter: Parameter, choices: list[Any] | None) -> Any:
    """A parameter's default as run: a seed of -1 drawn; an enum's checked against what this ComfyUI has, as a
    model the definition names may be missing here (its other defaults are the definition's own: ComfyUI
    judges them)."""
    if parameter.type == "seed" and parameter.default == -1:
        return _checked(parameter, -1, None)
    if parameter.type == "enum":
        _among_choices(parameter, parameter.default, choices, default=True)
    return parameter.default


def resolve(definition: Definition, params: Mapping[str, Any],
            choices: Mapping[str, list[Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The graph to run, and every parameter's value as used (a drawn seed included)."""
    known = {parameter.name for parameter in definition.parameters}
    for name in params:
        if name not in known:
            offered = ", ".join(sorted(known)) or "none"
            raise RequestParamsError(f"parameter {name}: unknown; workflow {definition.name} takes {offered}",
                                     parameter=name)
    graph = dict(definition.graph)
    used: dict[str, Any] = {}
    for parameter in definition.parameters:
        if parameter.name not in params and parameter.default is None:
            continue
        listed = choices.get(parameter.name)
        if parameter.name in params:
            value = _checked(parameter, params[parameter.name], listed)
        else:
            value = _default(parameter, listed)
        used[parameter.name] = value
        for node, field in parameter.places:
            graph[node] = {**graph[node], "inputs": {**graph[node]["inputs"], field: value}}
    return graph, used
