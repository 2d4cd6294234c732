"""A workflow definition: an API-format graph and the parameters a caller sets on it.

The file is `NAME.json` in a workflows folder, either a bare graph (its parameters are discovered from
well-known nodes, as the page always did) or

    {"title": ..., "description": ..., "graph": {...API format, or the editor's saved format...},
     "parameters": [{"name": "prompt", "title": ..., "description": ..., "type": "string",
                     "target": "6.text", "default": ..., "minimum": ..., "maximum": ...,
                     "choices": [...], "choices_from": "CheckpointLoaderSimple.ckpt_name"}, ...]}

`target` is `NODE.INPUT`, or a list of them for one value set in several places; `type` is `string`, `integer`,
`number`, `boolean`, `enum`, `image` (a URL, a data URL, base64 or a file name in ComfyUI's input folder) or
`seed` (`-1` draws one); a default not given is the graph's value at the first target. An enum's choices are
listed, or filled at run time from ComfyUI's `/object_info` (`choices_from`: the models actually present).
A graph the editor saved is converted (agent/workflows/library.py); its node ids are the editor's, so targets
name the nodes as the editor numbers them (a node inside a subgraph as `SUBGRAPH:NODE`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.model_folders import MODEL_LOADERS

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TARGET = re.compile(r"[^.\s]+\.[^.\s]+")
SEED_MAX = 2**64 - 1  # KSampler's own bound
ParamType = Literal["string", "integer", "number", "boolean", "enum", "image", "seed"]


class DefinitionError(ValueError):
    """The file is not a workflow definition; the message says why."""


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=f"^{NAME.pattern}$")
    type: ParamType
    target: list[str] = Field(min_length=1)
    title: str = ""
    description: str = ""
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None
    choices_from: str | None = Field(default=None, pattern=f"^{TARGET.pattern}$")

    @field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, target: Any) -> Any:
        targets = [target] if isinstance(target, str) else target
        if not isinstance(targets, list) or not all(isinstance(t, str) and TARGET.fullmatch(t) for t in targets):
            raise ValueError("must be NODE.INPUT, or a list of them")
        return targets

    @property
    def model_kind(self) -> str | None:
        """The models folder this enum lists, when it lists models: `checkpoints`, `loras`, ..."""
        return MODEL_LOADERS.get(self.choices_from or "")

    @property
    def models_folder(self) -> str | None:
        """Where ComfyUI finds what this enum lists, when it lists models: `models/checkpoints`, ..."""
        return f"models/{self.model_kind}" if self.model_kind else None

    @property
    def places(self) -> list[tuple[str, str]]:
        return [(node, field) for node, _, field in (target.partition(".") for target in self.target)]

    def json_schema(self, choices: list[Any] | None = None) -> dict[str, Any]:
        """This parameter as JSON Schema (an enum's `choices` as found now, when filled from ComfyUI)."""
        schema: dict[str, Any] = {"title": self.title or self.name, "x-type": self.type}  # the page's widget
        if self.description:
            schema["description"] = self.description
        kinds = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
                 "image": "string", "seed": "integer"}
        if self.type in kinds:
            schema["type"] = kinds[self.type]
        bounds = (self.minimum, self.maximum) if self.type != "seed" else (-1, SEED_MAX)
        for key, bound in zip(("minimum", "maximum"), bounds, strict=True):
            if bound is not None and self.type in ("integer", "number", "seed"):
                schema[key] = bound
        listed = choices if choices is not None else self.choices
        if self.type == "enum" and listed is not None:
            schema["enum"] = listed
        if self.models_folder:
            schema["x-models-folder"] = self.models_folder  # what the page tells when none is there
        if self.type == "image":
            schema["description"] = (self.description + " " if self.description else "") + (
                "A URL (http, https, oss, s3), a data URL, base64, or a file in ComfyUI's input folder.")
        if self.type == "seed":
            schema["description"] = (self.description + " " if self.description else "") + "-1 draws one."
        if self.default is not None:
            schema["default"] = self.default
        return schema


class Definition(BaseModel):
    name: str
    title: str = ""
    description: str = ""
    graph: dict[str, Any]
    parameters: list[Parameter] = Field(default_factory=list)
    declared: bool = True
    editor: dict[str, Any] | None = None  # the graph as the editor saved it: outputs carry it in their metadata
    version: int | None = None  # published ones (agent/workflows/library.py)
    published_at: float | None = None

    @property
    def reference(self) -> str:
        """What a task records: `NAME@VERSION` when published."""
        return f"{self.name}@{self.version}" if self.version is not None else self.name

    @model_validator(mode="after")
    def _targets_exist(self) -> Definition:
        names = [parameter.name for parameter in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("two parameters share a name")
        for parameter in self.parameters:
            for node, field in parameter.places:
                inputs = self.graph.get(node, {}).get("inputs") if isinstance(self.graph.get(node), dict) else None
                if not isinstance(inputs, dict):
                    raise ValueError(f"parameter {parameter.name}: the graph has no node {node}")
                if field not in inputs and parameter.default is None:
                    raise ValueError(f"parameter {parameter.name}: node {node} has no input {field}, and no default")
            if parameter.default is None:
                node, field = parameter.places[0]
                parameter.default = self.graph[node]["inputs"].get(field)
        return self


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


# What the page guessed from well-known nodes, for graphs that declare nothing: (input, type, title, bounds).
_GUESSES: dict[str, list[tuple[str, ParamType, str, tuple[float | None, float | None]]]] = {
    "CLIPTextEncode": [("text", "string", "Text", (None, None))],
    "KSampler": [("seed", "seed", "Seed", (None, None)), ("steps", "integer", "Steps", (1, 200)),
                 ("cfg", "number", "CFG", (0, 30)), ("denoise", "number", "Denoise", (0, 1))],
    "KSamplerAdvanced": [("noise_seed", "seed", "Seed", (None, None)), ("steps", "integer", "Steps", (1, 200)),
                         ("cfg", "number", "CFG", (0, 30))],
    "EmptyLatentImage": [("width", "integer", "Width", (64, 4096)), ("height", "integer", "Height", (64, 4096)),
                         ("batch_size", "integer", "Images per run", (1, 64))],
    "EmptySD3LatentImage": [("width", "integer", "Width", (64, 4096)), ("height", "integer", "Height", (64, 4096)),
                            ("batch_size", "integer", "Images per run", (1, 64))],
    "LoadImage": [("image", "image", "Image", (None, None))],
    "LoadImageMask": [("image", "image", "Image", (None, None))],
    "LoraLoader": [("strength_model", "number", "LoRA strength", (-10, 10))],
    "LoraLoaderModelOnly": [("strength_model", "number", "LoRA strength", (-10, 10))],
}
_MODEL_LABELS = {"checkpoints": "Checkpoint", "loras": "LoRA", "vae": "VAE", "controlnet": "ControlNet",
                 "upscale_models": "Upscaler", "text_encoders": "Text encoder", "clip_vision": "CLIP vision",
                 "diffusion_models": "Diffusion model", "style_models": "Style model",
                 "hypernetworks": "Hypernetwork", "gligen": "GLIGEN"}
for _target, _folder in MODEL_LOADERS.items():  # every model picker: the models ComfyUI has, to choose from
    _class, _, _field = _target.partition(".")
    _GUESSES.setdefault(_class, []).insert(0, (_field, "enum", _MODEL_LABELS[_folder], (None, None)))


def _encoder_of(graph: dict[str, Any], node: str) -> str:
    """The node a conditioning comes from, through nodes that pass one on (FluxGuidance, a ControlNet apply)."""
    for _ in range(len(graph)):
        spec = graph.get(node)
        inputs = spec.get("inputs") if isinstance(spec, dict) else None
        if not isinstance(inputs, dict) or "text" in inputs or not _is_link(inputs.get("conditioning")):
            break
        node = str(inputs["conditioning"][0])
    return node


def _conditioning_titles(graph: dict[str, Any]) -> dict[str, str]:
    """A text encoder's title by what it feeds: a sampler's `positive` is the prompt, its `negative` the negative
    prompt (a creator sees words, not node classes)."""
    found: dict[str, str] = {}
    for spec in graph.values():
        inputs = spec.get("inputs") if isinstance(spec, dict) else None
        for field, title in (("positive", "Prompt"), ("negative", "Negative prompt")):
            value: Any = inputs.get(field) if isinstance(inputs, dict) else None
            if _is_link(value):
                found.setdefault(_encoder_of(graph, str(value[0])), title)
    return found


def discover(graph: dict[str, Any]) -> list[Parameter]:
    """Parameters for a graph that declares none: the well-known inputs that hold a value, named NODE_INPUT."""
    found = []
    conditioning = _conditioning_titles(graph)
    for node, spec in graph.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("inputs"), dict):
            continue
        title = (spec.get("_meta") or {}).get("title") or f"{spec.get('class_type')} #{node}"
        for field, kind, label, (low, high) in _GUESSES.get(str(spec.get("class_type")), []):
            value = spec["inputs"].get(field)
            if value is None or _is_link(value):
                continue
            choices_from = f"{spec['class_type']}.{field}" if kind == "enum" else None
            shown = conditioning.get(node) if kind == "string" and node in conditioning else f"{title}: {label}"
            found.append(Parameter(name=re.sub(r"[^A-Za-z0-9_-]", "_", f"{node}_{field}"), type=kind,
                                   target=[f"{node}.{field}"], title=shown, default=value,
                                   minimum=low, maximum=high, choices_from=choices_from))
    return found


def graph_of(raw: Any) -> Any:
    """The graph of a definition's JSON: its `graph`, or the whole of a bare graph."""
    return raw["graph"] if isinstance(raw, dict) and isinstance(raw.get("graph"), dict) else raw


def load_definition(name: str, raw: Any, converted: dict[str, Any] | None = None) -> Definition:
    """A definition from a file's JSON: declared, or a bare graph with its parameters discovered. `converted`:
    the API format of a graph the editor saved, which the definition runs (the saved one is kept as `editor`)."""
    if not isinstance(raw, dict):
        raise DefinitionError("a workflow file holds a JSON object")
    graph = converted if converted is not None else graph_of(raw)
    editor = graph_of(raw) if converted is not None else None
    try:
        if isinstance(raw.get("graph"), dict):
            return Definition.model_validate({**raw, "name": name, "graph": graph, "editor": editor})
        return Definition(name=name, graph=graph, parameters=discover(graph), declared=False, editor=editor)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")  # a check of its own says it all
        raise DefinitionError(f"{where}: {message}" if where else message) from None
