"""A faithful test double of the ComfyUI server (0.3.64 or 0.33.0), built from recorded traffic of real ones."""

from .config import DoubleConfig
from .server import create_app

__all__ = ["DoubleConfig", "create_app"]
