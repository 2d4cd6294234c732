"""Process supervision of the ComfyUI child, kept apart from the code that talks to it."""

from agent.comfy.supervisor.supervisor import Supervisor

__all__ = ["Supervisor"]
