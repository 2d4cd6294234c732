"""A faithful test double of the ComfyUI server (0.3.64), built from recorded traffic of a real one."""

from .config import DoubleConfig
from .server import create_app

__all__ = ["DoubleConfig", "create_app"]
