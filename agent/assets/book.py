"""Each upload's record (Comfy API v2's asset): its id, the hash of its bytes, its size, type and name, kept as a
shared document in the task store so any instance finds it. Deleting a record leaves the bytes, which other
records of the same content may name."""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, Field, ValidationError

from agent.stores.shared import SharedDocuments

PREFIX = "asset-"


class AssetRecord(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    hash: str
    size_bytes: int
    content_type: str
    file_path: str
    created_at: float = Field(default_factory=time.time)


def _name(asset_id: str) -> str | None:
    """The document's name, or None for an id that is no upload's (a uuid)."""
    try:
        return PREFIX + str(uuid.UUID(asset_id)) if str(uuid.UUID(asset_id)) == asset_id else None
    except ValueError:
        return None


class AssetBook:
    def __init__(self, shared: SharedDocuments) -> None:
        self.shared = shared

    async def add(self, record: AssetRecord) -> None:
        await self.shared.put_shared(PREFIX + record.id, record.model_dump_json().encode())

    async def get(self, asset_id: str) -> AssetRecord | None:
        name = _name(asset_id)
        raw = await self.shared.get_shared(name) if name is not None else None
        try:
            return AssetRecord.model_validate_json(raw) if raw is not None else None
        except ValidationError:
            return None

    async def delete(self, asset_id: str) -> bool:
        name = _name(asset_id)
        return name is not None and await self.shared.delete_shared(name)
