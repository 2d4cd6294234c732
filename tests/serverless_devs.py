"""s.yaml's magic variables (`${vars.x}`, `${env('X')}`, `${str(...)}`) resolved as Serverless Devs 3.x resolves
them, so the tests check what `s deploy` hands the fc3 component, not the file's text.

A small model of the code read in Serverless-Devs/toolkit @ f8e037c (packages/parse-spec/src/parse-content.ts and
get-inputs.ts) and in @serverless-devs/art-template 4.13.16-beta.39 (lib/devs-compile.js, lib/compile/compiler.js),
the versions @serverless-devs/parse-spec 0.0.29 installs; `s` 3.1.10 bundles the same rules (3.0.0 on, with
parse-spec 0.0.21 on, treats "" and null the same way, but kept null keys until 2024-11):
- s.yaml is parsed as YAML first, then each string scalar is compiled on its own (`vars` first, then every
  resource with the compiled vars), so a variable never turns into YAML text, nor "" into a null;
- each `${...}` that is null or undefined fails the whole run, "${vars.x} not found" ($escape); any other value
  passes, "" and 0 and false included;
- a scalar that is one `${...}` and nothing else takes the value itself, type and all (the compiler's `$$out=`
  for a single token); one inside other text is joined as JavaScript's String() writes it;
- `env('X')` fails "env('X') not found" when X is unset or empty; `env('X', 'd')` is then d;
- once compiled, a key whose value is null is dropped (get-inputs.ts, since 2024-11).
parse-spec 0.0.13 and before (2023, before `s` 3.0.0) also failed on "" and 0 (`if (value) return value`).
Anything else in a `${...}` (resources' outputs, config(), spaces inside the braces) is refused here, not guessed.
tests/packaging/parse_spec/ runs the real parser on the same file to hold this model to it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAGIC = re.compile(r"\$\{([^}]*)\}")  # up to the first }, as art-template's /\${([\w\W]*?)}/
VARIABLE = re.compile(r"vars((?:\.\w+)+)")
ENV = re.compile(r"env\('(\w+)'(?:, *'([^']*)')?\)")
STR = re.compile(r"str\((.+)\)")


class NotFound(Exception):
    """The run `s` stops, with its message: "${vars.x} not found", "env('X') not found"."""


def resolved(document: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The whole document as `s` hands it on: vars compiled against themselves, then each resource against them."""
    rest = {key: value for key, value in document.items() if key != "resources"}
    compiled = _compiled(rest, {"vars": document.get("vars", {})}, environ)
    context = {"vars": compiled.get("vars", {})}
    resources = {name: _compiled(resource, context, environ) for name, resource in document["resources"].items()}
    return {**compiled, "resources": resources}


def _compiled(node: Any, context: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        values = {key: _compiled(value, context, environ) for key, value in node.items()}
        return {key: value for key, value in values.items() if value is not None}
    if isinstance(node, list):
        return [_compiled(value, context, environ) for value in node]
    if isinstance(node, str):
        return _scalar(node, context, environ)
    return node


def _scalar(text: str, context: Mapping[str, Any], environ: Mapping[str, str], again: bool = True) -> Any:
    """One scalar compiled; a string that still holds a `${...}` afterwards is compiled once more (devs-compile)."""
    whole = MAGIC.fullmatch(text)
    if whole:
        value = _evaluated(whole.group(1), context, environ)
    else:
        value = MAGIC.sub(lambda match: _js_string(_evaluated(match.group(1), context, environ)), text)
    if again and isinstance(value, str) and MAGIC.search(value):
        return _scalar(value, context, environ, again=False)
    return value


def _evaluated(expression: str, context: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    value = _value(expression, context, environ)
    if value is None:
        raise NotFound(f"${{{expression}}} not found")
    return value


def _value(expression: str, context: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    if variable := VARIABLE.fullmatch(expression):
        value: Any = context["vars"]
        for key in variable.group(1).split(".")[1:]:
            value = value.get(key) if isinstance(value, dict) else None
        return value
    if env := ENV.fullmatch(expression):
        name, default = env.groups()
        if environ.get(name):
            return environ[name]
        if default is None:
            raise NotFound(f"env('{name}') not found")
        return default
    if string := STR.fullmatch(expression):
        inner = _value(string.group(1), context, environ)
        if inner is None:
            raise ValueError(f"${{{expression}}}: s would write 'undefined' or 'null' there")
        return _js_string(inner)
    raise ValueError(f"${{{expression}}}: not a magic variable this model knows")


def _js_string(value: Any) -> str:
    """JavaScript's String() of a YAML scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"{value!r}: JavaScript would write [object Object] or a list joined by commas")
