"""Old outputs leave ComfyUI's folders; what is not an output, what is new, and everything under
KEEP_LOCAL_OUTPUTS stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.outputs.sweep import sweep_outputs
from agent_harness import running_agent
from waiting import EVENTUALLY, until

DAY = 86400


def aged(path: Path, days: float, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - days * DAY
    os.utime(path, (then, then))
    return path


def test_only_old_output_files_go(tmp_path: Path) -> None:
    output, temp = tmp_path / "output", tmp_path / "temp"
    old = [aged(output / "t1_a_00001_.png", 3), aged(output / "video" / "v_00001_.mp4", 3),
           aged(output / "audio" / "s_00001_.FLAC", 3), aged(temp / "p_temp_abcde_00001_.png", 3)]
    kept = [aged(output / "fresh_00001_.png", 0.5), aged(output / "checkpoints" / "mine.safetensors", 3),
            aged(output / "latents" / "l_00001_.latent", 3), aged(output / "notes.txt", 3),
            aged(output / ".trash" / "x.png", 3)]
    assert sweep_outputs([output, temp, tmp_path / "missing"], DAY, time.time()) == len(old)
    assert [path.exists() for path in old] == [False] * len(old)
    assert all(path.exists() for path in kept)


async def test_the_agent_sweeps_from_its_start_unless_told_to_keep(double: str, tmp_path: Path) -> None:
    output = tmp_path / "comfyui" / "output"
    old = aged(output / "someone_00001_.png", 2)
    async with running_agent(comfyui_url=double, comfyui_output_dir=output, keep_local_outputs=True,
                             task_ttl=DAY) as agent:
        assert (await agent.post("/api/run", json={"1": {"class_type": "EmptyImage", "inputs": {
            "width": 8, "height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "SaveImage", "inputs": {
                "images": ["1", 0], "filename_prefix": "kept"}}}, headers={"task-id": "k1"})).status == 200
    assert old.exists()
    async def swept() -> bool:
        return not old.exists()

    async with running_agent(comfyui_url=double, comfyui_output_dir=output, task_ttl=DAY):
        await until(swept, EVENTUALLY, "the old output swept")
    assert [path.name for path in output.iterdir()] == ["k1_kept_00001_.png"]  # a day old only tomorrow
