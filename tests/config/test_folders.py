"""Where ComfyUI writes, as the agent knows it: it reads outputs there, so it is the one that says so."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from agent.comfy.device import Device
from agent.comfy.supervisor.supervisor import comfyui_args
from agent.config import ConfigError, Settings, load_settings

REMOTE = {"COMFYUI_URL": "http://127.0.0.1:8188"}


def test_a_launched_comfyui_has_its_own_folders_or_the_nas_output() -> None:
    own = Settings(comfyui_dir=Path("/c"))
    assert own.comfyui_folders == {"output": Path("/c/output"), "temp": Path("/c/temp")}
    on_nas = Settings(comfyui_dir=Path("/c"), nas_dir=Path("/mnt/nas"))
    assert on_nas.comfyui_folders == {"output": Path("/mnt/nas/output"), "temp": Path("/c/temp")}
    moved = Settings(comfyui_dir=Path("/c"), comfyui_args=("--base-directory=/b",))
    assert moved.comfyui_folders == {"output": Path("/b/output"), "temp": Path("/b/temp")}
    told = Settings(comfyui_output_dir=Path("/o"), comfyui_temp_dir=Path("/t"), nas_dir=Path("/mnt/nas"))
    assert told.comfyui_folders == {"output": Path("/o"), "temp": Path("/t/temp")}  # ComfyUI adds temp/ itself


def test_an_attached_comfyui_is_read_from_disk_only_where_a_setting_says() -> None:
    assert load_settings([], REMOTE).comfyui_folders == {}
    told = load_settings([], {**REMOTE, "COMFYUI_OUTPUT_DIR": "/shared/out"})
    assert told.comfyui_folders == {"output": Path("/shared/out")}


def test_the_launched_comfyui_is_told_the_folders_the_agent_reads() -> None:
    args = comfyui_args(Settings(comfyui_dir=Path("/c"), nas_dir=Path("/mnt/nas")).launch, Device.NVIDIA)
    assert args[args.index("--output-directory") + 1] == "/mnt/nas/output"
    assert args[args.index("--input-directory") + 1] == "/mnt/nas/input"
    assert "--temp-directory" not in args  # ComfyUI empties it at start: never on the shared NAS
    args = comfyui_args(Settings(comfyui_temp_dir=Path("/scratch")).launch, Device.NVIDIA)
    assert args[args.index("--temp-directory") + 1] == "/scratch"


@pytest.mark.parametrize("args", ["--output-directory /x", "--cpu --temp-directory=/y", "--user-directory /u"])
def test_comfyui_args_cannot_move_the_folders_behind_the_agents_back(args: str) -> None:
    with pytest.raises(ConfigError, match=r"COMFYUI_ARGS: set COMFYUI_(OUTPUT|TEMP|USER)_DIR instead"):
        load_settings([], {**REMOTE, "COMFYUI_ARGS": args})


def test_each_instance_keeps_its_own_comfyui_user_folder() -> None:
    assert Settings(comfyui_dir=Path("/c"), nas_dir=Path("/mnt/nas")).comfyui_user_folder == Path("/c/user")
    assert Settings(comfyui_args=("--base-directory", "/b")).comfyui_user_folder == Path("/b/user")
    on_nas = Settings(comfyui_dir=Path("/mnt/nas/ComfyUI"), nas_dir=Path("/mnt/nas"))
    assert on_nas.comfyui_user_folder == Path(tempfile.gettempdir()) / "comfyui-user"
    told = Settings(comfyui_dir=Path("/mnt/nas/ComfyUI"), nas_dir=Path("/mnt/nas"), comfyui_user_dir=Path("/u"))
    assert told.comfyui_user_folder == Path("/u")
    args = comfyui_args(on_nas.launch, Device.NVIDIA)
    assert args[args.index("--user-directory") + 1] == str(on_nas.comfyui_user_folder)


def test_comfyui_keeps_its_database_in_memory_unless_told_otherwise() -> None:
    args = comfyui_args(Settings().launch, Device.NVIDIA)
    assert args[args.index("--database-url") + 1] == "sqlite:///:memory:"
    own = comfyui_args(Settings(comfyui_args=("--database-url=sqlite:////data/comfy.db",)).launch, Device.NVIDIA)
    assert [arg for arg in own if arg.startswith("--database-url")] == ["--database-url=sqlite:////data/comfy.db"]


@pytest.mark.parametrize(("comfyui_dir", "url"), [
    ("/c", "sqlite:////mnt/nas/user/comfyui.db"),
    ("/mnt/nas/ComfyUI", "sqlite:///user/comfyui.db"),  # relative: ComfyUI runs in COMFYUI_DIR
])
def test_a_database_on_the_nas_is_refused(comfyui_dir: str, url: str) -> None:
    with pytest.raises(ConfigError, match="--database-url on NAS_DIR would be one SQLite file for every instance"):
        load_settings([], {**REMOTE, "NAS_DIR": "/mnt/nas", "COMFYUI_DIR": comfyui_dir,
                           "COMFYUI_ARGS": f"--database-url {url}"})


@pytest.mark.parametrize("url", ["sqlite:////local/comfyui.db", "sqlite:///:memory:", "sqlite://"])
def test_a_database_off_the_nas_is_taken(url: str) -> None:
    settings = {**REMOTE, "NAS_DIR": "/mnt/nas", "COMFYUI_DIR": "/mnt/nas/ComfyUI",
                "COMFYUI_ARGS": f"--database-url={url}"}
    assert load_settings([], settings).comfyui_args == (f"--database-url={url}",)


def test_comfyui_on_the_nas_through_a_link_is_seen(tmp_path: Path) -> None:
    nas, local = tmp_path / "nas", tmp_path / "opt"
    (nas / "ComfyUI").mkdir(parents=True)
    local.mkdir()
    (local / "comfy").symlink_to(nas / "ComfyUI")
    linked = Settings(comfyui_dir=local / "comfy", nas_dir=nas)
    assert linked.comfyui_user_folder == Path(tempfile.gettempdir()) / "comfyui-user"
    relative = Settings(comfyui_dir=Path("/c"), comfyui_args=("--base-directory", "base"))
    assert relative.comfyui_user_folder == Path("/c/base/user")  # as ComfyUI, running in COMFYUI_DIR, reads it
