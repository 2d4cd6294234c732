"""Every setting from environment or flag, validated, with one clear line naming a bad one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import SETTINGS, ConfigError, load_settings

REMOTE = {"COMFYUI_URL": "http://127.0.0.1:8188"}


def test_defaults_serve_the_fc_image() -> None:
    settings = load_settings([], REMOTE)
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.comfyui_port == 8188
    assert settings.task_ttl == 604800 and settings.run_timeout == 3600
    assert settings.max_body_bytes == 32 * 1024 * 1024 and settings.input_max_bytes == 20 * 1024 * 1024
    assert settings.url_allow_private is False and settings.agent_token is None
    assert settings.store_url == f"file://{Path('data/tasks').absolute()}"


def test_port_falls_back_to_the_fc_variables_in_order() -> None:
    assert load_settings([], {**REMOTE, "FC_SERVER_PORT": "9001"}).port == 9001
    assert load_settings([], {**REMOTE, "FC_SERVER_PORT": "9001", "FC_CUSTOM_LISTEN_PORT": "9002"}).port == 9002
    assert load_settings([], {**REMOTE, "FC_CUSTOM_LISTEN_PORT": "9002", "AGENT_PORT": "9003"}).port == 9003


def test_flag_beats_environment() -> None:
    assert load_settings(["--agent-port", "9500"], {**REMOTE, "AGENT_PORT": "9400"}).port == 9500


def test_every_setting_has_a_flag_and_an_environment_name() -> None:
    flags = [setting.flag for setting in SETTINGS]
    assert len(set(flags)) == len(flags)
    for setting in SETTINGS:
        assert setting.flag == "--" + setting.env[0].lower().replace("_", "-")


def test_nas_dir_places_the_task_store_and_extra_args_alias(tmp_path: Path) -> None:
    settings = load_settings([], {**REMOTE, "NAS_DIR": str(tmp_path), "EXTRA_ARGS": "--cpu --lowvram"})
    assert settings.store_url == f"file://{tmp_path / 'tasks'}"
    assert settings.comfyui_args == ("--cpu", "--lowvram")


def test_comfyui_args_win_over_the_seed_alias() -> None:
    settings = load_settings([], {**REMOTE, "COMFYUI_ARGS": "--cpu", "EXTRA_ARGS": "--lowvram"})
    assert settings.comfyui_args == ("--cpu",)


def test_token_is_kept_secret() -> None:
    settings = load_settings([], {**REMOTE, "AGENT_TOKEN": "s3cret"})
    assert settings.agent_token is not None and settings.agent_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [
    ("AGENT_PORT", "abc"), ("AGENT_PORT", "70000"), ("COMFYUI_PORT", "0"), ("TASK_TTL", "-1"),
    ("RUN_TIMEOUT", "soon"), ("RUN_TIMEOUT", "0"), ("MAX_BODY_BYTES", "12x"), ("URL_ALLOW_PRIVATE", "maybe"),
    ("TASK_STORE", "ftp://x"), ("COMFYUI_URL", "localhost:8188"), ("LOG_LEVEL", "loud"),
    ("COMFYUI_ARGS", "--cpu 'unclosed"), ("WS_STALL_TIMEOUT", "nan"),
])
def test_bad_value_names_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings([], {**REMOTE, name: value})
    message = str(error.value)
    assert message.startswith(f"invalid setting {name}={value!r}: ")
    assert "\n" not in message


def test_launch_mode_needs_a_comfyui_checkout(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="COMFYUI_DIR"):
        load_settings([], {"COMFYUI_DIR": str(tmp_path)})
    (tmp_path / "main.py").write_text("")
    assert load_settings([], {"COMFYUI_DIR": str(tmp_path)}).launches_comfyui


def test_bad_setting_stops_the_command_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "agent", "--agent-port", "nope"],
                            capture_output=True, text=True, timeout=30, env={"COMFYUI_URL": "http://127.0.0.1:1"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "comfyui-agent: invalid setting --agent-port='nope': must be a whole number from 1 to 65535"]
