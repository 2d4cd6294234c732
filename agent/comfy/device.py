"""Which accelerator this machine offers ComfyUI, judged from device files and the platform only: importing
torch to ask would add seconds to every start, and the agent must open its port at once."""

from __future__ import annotations

import platform
import sys
from enum import StrEnum
from pathlib import Path


class Device(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    APPLE = "apple"
    CPU = "cpu"


def detect(dev: Path = Path("/dev"), system: str = sys.platform, machine: str = platform.machine()) -> Device:
    """NVIDIA's driver shows /dev/nvidiactl (FC's GPU instances have it), ROCm shows /dev/kfd, Apple silicon
    has Metal; anything else runs ComfyUI on the CPU."""
    if system == "darwin":
        return Device.APPLE if machine == "arm64" else Device.CPU
    if (dev / "nvidiactl").exists() or (dev / "nvidia0").exists():
        return Device.NVIDIA
    if (dev / "kfd").exists():
        return Device.AMD
    return Device.CPU
