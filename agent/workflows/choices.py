"""The choices of enum parameters filled from ComfyUI (`choices_from`: the checkpoints, LoRAs, ... actually
present), as the node catalog has them now (agent/workflows/catalog.py keeps them fresh), with what the models
folder holds now: a model pulled a moment ago is offered at once, on a gateway too (whose catalog is the last
one a worker published)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.errors import ComfyUIUnavailable
from agent.models.folder import names
from agent.workflows.catalog import Catalog, list_inputs
from agent.workflows.definition import Definition


async def choices_of(definition: Definition, catalog: Catalog, models: Path | None = None) -> dict[str, list[Any]]:
    """Each enum parameter's choices from ComfyUI, by parameter name (those it could not list are left out: with
    no list known, ComfyUI judges the value itself)."""
    filled = [(parameter.name, *parameter.choices_from.split(".", 1)) for parameter in definition.parameters
              if parameter.type == "enum" and parameter.choices_from]
    if not filled:
        return {}
    try:
        nodes = await catalog.nodes({node_class for _, node_class, _ in filled})
    except ComfyUIUnavailable:
        nodes = {}
    found = {name: listed for name, node_class, input_name in filled
             if (listed := list_inputs(nodes.get(node_class)).get(input_name)) is not None}
    pickers = [parameter for parameter in definition.parameters
               if parameter.model_kind and (parameter.name in found or nodes)]
    if models is not None and pickers:
        kinds = sorted({str(parameter.model_kind) for parameter in pickers})
        placed = dict(zip(kinds, await asyncio.to_thread(lambda: [names(models, kind) for kind in kinds]), strict=True))
        for parameter in pickers:
            found[parameter.name] = sorted({*found.get(parameter.name, []), *placed[str(parameter.model_kind)]})
    return found
