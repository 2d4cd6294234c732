"""Prompt validation with ComfyUI's exact 400 bodies (execution.validate_prompt / validate_inputs).

Literal inputs are converted in place (``"64"`` becomes ``64``), so the queued prompt and its /history
entry show converted values, as on the real server. Unexpected shapes (a prompt that is a list, a node
that is a number) raise, which the HTTP layer turns into aiohttp's text 500, again as on the real server.
"""

from __future__ import annotations

import inspect
import traceback
from dataclasses import dataclass
from typing import Any

from .config import DoubleConfig
from .graph import is_link
from .nodedefs import NodeDefs, input_info
from .nodes import NODE_CLASSES
from .versions import VERSIONS

_CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
_INVALID = object()  # an input whose upstream node is invalid: the node fails without an error of its own
_MAX_LISTED_OPTIONS = 20


@dataclass
class Validation:
    """``(ok, error, outputs_to_execute, node_errors)`` of ComfyUI's validate_prompt."""

    ok: bool
    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any]


def _error(kind: str, message: str, details: str, extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


def full_type_name(klass: type) -> str:
    """``RuntimeError`` for builtins, ``PIL.UnidentifiedImageError`` otherwise."""
    return klass.__qualname__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"


def types_match(received: Any, expected: Any) -> bool:
    """validate_node_input: equal, or comma-separated type lists that overlap."""
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


def _exception_reason(kind: str, message: str, ex: Exception, extra_info: dict[str, Any]) -> dict[str, Any]:
    tb = traceback.format_tb(ex.__traceback__)
    extra = {**extra_info, "exception_type": full_type_name(type(ex)), "traceback": tb}
    return _error(kind, message, str(ex), extra)


class PromptValidator:
    """Validates one prompt; ``validated`` memoises per-node results exactly like ComfyUI's dict."""

    def __init__(self, prompt: Any, defs: NodeDefs, config: DoubleConfig) -> None:
        self._prompt = prompt
        self._defs = defs
        self._config = config
        self._validated: dict[Any, tuple[bool, list[dict[str, Any]], Any]] = {}

    def _unknown_class(self, node_id: str) -> dict[str, Any]:
        """A node without a class_type, or of a class this ComfyUI lacks: the first one stops validation."""
        node, details = self._prompt[node_id], f"Node ID '#{node_id}'"
        has_class = "class_type" in node  # also a substring test when the node is a string, as in ComfyUI
        class_type = node["class_type"] if has_class else None
        if not VERSIONS[self._config.version].missing_node_type:
            message = (f"Cannot execute because node {class_type} does not exist." if has_class
                       else "Cannot execute because a node is missing the class_type property.")
            return _error("invalid_prompt", message, details)
        title = node.get("_meta", {}).get("title", class_type)
        message = (f"Node '{title}' not found. The custom node may not be installed." if has_class else
                   f"Node '{title or f'ID #{node_id}'}' has no class_type. The workflow may be corrupted or a custom "
                   "node is missing.")
        return _error("missing_node_type", message, details,
                      {"node_id": node_id, "class_type": class_type, "node_title": title})

    def validate(self, partial_targets: list[Any] | None = None) -> Validation:
        """Check classes, find the output nodes, then validate each output's inputs recursively."""
        outputs = []
        for node_id in self._prompt:
            if "class_type" not in self._prompt[node_id] or self._prompt[node_id]["class_type"] not in self._defs:
                return Validation(False, self._unknown_class(node_id), [], {})
            class_type = self._prompt[node_id]["class_type"]
            if self._defs.is_output_node(class_type) and (partial_targets is None or node_id in partial_targets):
                outputs.append(node_id)
        if not outputs:
            return Validation(False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {})
        return self._validate_outputs(outputs)

    def _validate_outputs(self, outputs: list[str]) -> Validation:
        node_errors: dict[str, Any]
        good, failures, node_errors = [], [], {}
        for output in outputs:
            valid, reasons = self._validate_output(output)
            if valid:
                good.append(output)
                continue
            failures.append(reasons)
            self._collect_node_errors(output, node_errors)
        if good:
            return Validation(True, None, good, node_errors)
        details = "\n".join(f"{r['message']}: {r['details']}" for reasons in failures for r in reasons)
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return Validation(False, error, [], node_errors)

    def _validate_output(self, output: str) -> tuple[bool, list[dict[str, Any]]]:
        try:
            valid, reasons, _ = self._node(output)
        except Exception as ex:
            reasons = [_exception_reason("exception_during_validation", "Exception when validating node", ex, {})]
            self._validated[output] = (False, reasons, output)
            return False, reasons
        return valid, reasons

    def _collect_node_errors(self, output: str, node_errors: dict[str, Any]) -> None:
        """Every invalid node validated so far gets this output as a dependent (ComfyUI does the same)."""
        for node_id, (valid, reasons, _) in self._validated.items():
            if valid is not True and reasons:
                if node_id not in node_errors:
                    class_type = self._prompt[node_id]["class_type"]
                    node_errors[node_id] = {"errors": reasons, "dependent_outputs": [], "class_type": class_type}
                node_errors[node_id]["dependent_outputs"].append(output)

    def _node(self, node_id: Any) -> tuple[bool, list[dict[str, Any]], Any]:
        if node_id in self._validated:
            return self._validated[node_id]
        inputs = self._prompt[node_id]["inputs"]
        class_type = self._prompt[node_id]["class_type"]
        types = self._defs.input_types(class_type)
        validator = getattr(NODE_CLASSES[class_type], "validate_inputs", None)
        custom = set(inspect.signature(validator).parameters) - {"config"} if validator else set()
        errors, valid = [], True
        for name in [*types.get("required", {}), *types.get("optional", {})]:
            outcome = self._check_input(types, inputs, name, name in custom)
            if outcome is _INVALID:
                valid = False
            elif outcome is not None:
                errors.append(outcome)
        if validator:
            errors += self._custom_validation(validator, types, inputs, custom)
        result = (False, errors, node_id) if errors or not valid else (True, [], node_id)
        self._validated[node_id] = result
        return result

    def _check_input(self, types: dict[str, Any], inputs: dict[str, Any], name: str, custom: bool) -> Any:
        input_type, category, extra = input_info(types, name)
        if name not in inputs:
            if category == "required":
                return _error("required_input_missing", "Required input is missing", name, {"input_name": name})
            return None
        if isinstance(inputs[name], list):
            return self._check_link(name, inputs[name], input_type, [input_type, extra])
        return self._check_literal(inputs, name, input_type, extra, custom)

    def _check_link(self, name: str, link: list[Any], input_type: Any, config: list[Any]) -> Any:
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            extra = {"input_name": name, "input_config": config, "received_value": link}
            return _error("bad_linked_input", message, name, extra)
        source_id = link[0]
        received = self._defs.return_types(self._prompt[source_id]["class_type"])[link[1]]
        if not types_match(received, input_type):
            details = f"{name}, received_type({received}) mismatch input_type({input_type})"
            extra = {"input_name": name, "input_config": config, "received_type": received, "linked_node": link}
            return _error("return_type_mismatch", "Return type mismatch between linked nodes", details, extra)
        try:
            return _INVALID if self._node(source_id)[0] is False else None
        except Exception as ex:
            extra = {"input_name": name, "input_config": config, "exception_message": str(ex)}
            message = "Exception when validating inner node"
            reason = _exception_reason("exception_during_inner_validation", message, ex, extra)
            reason["extra_info"]["linked_node"] = link
            self._validated[source_id] = (False, [reason], source_id)
            return _INVALID

    def _check_literal(
        self, inputs: dict[str, Any], name: str, input_type: Any, extra: dict[str, Any], custom: bool
    ) -> dict[str, Any] | None:
        value = inputs[name]
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        converter = _CONVERTERS.get(input_type) if isinstance(input_type, str) else None
        config = [input_type, extra]
        try:
            if converter is not None:
                value = inputs[name] = converter(value)
        except Exception as ex:
            message = f"Failed to convert an input value to a {input_type} value"
            info = {"input_name": name, "input_config": config, "received_value": value, "exception_message": str(ex)}
            return _error("invalid_input_type", message, f"{name}, {value}, {ex}", info)
        if custom:
            return None  # checked by the node's own validate_inputs instead
        return _check_range(name, value, input_type, extra, config)

    def _custom_validation(
        self, validator: Any, types: dict[str, Any], inputs: dict[str, Any], custom: set[str]
    ) -> list[dict[str, Any]]:
        """VALIDATE_INPUTS: linked inputs arrive as None, only the inputs it names are passed."""
        kwargs = {}
        for name, value in inputs.items():
            if name in custom and (is_link(value) or input_info(types, name)[1] is not None):
                kwargs[name] = None if is_link(value) else value
        result = validator(self._config, **kwargs)
        if result is True:
            return []
        suffix = "" if result is False else f" - {result}"
        message = "Custom validation failed for node"
        return [
            _error("custom_validation_failed", message, f"{name}{suffix}", {"input_name": name}) for name in kwargs
        ]


def _check_range(
    name: str, value: Any, input_type: Any, extra: dict[str, Any], config: list[Any]
) -> dict[str, Any] | None:
    """min/max and combo-list checks of a converted literal."""
    received = {"input_name": name, "input_config": config, "received_value": value}
    if "min" in extra and value < extra["min"]:
        return _error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name, received)
    if "max" in extra and value > extra["max"]:
        return _error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name, received)
    if isinstance(input_type, list) and value not in input_type:
        listed = len(input_type) <= _MAX_LISTED_OPTIONS
        info = str(input_type) if listed else f"(list of length {len(input_type)})"
        extra_info = {**received, "input_config": config if listed else None}
        return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {info}", extra_info)
    return None
