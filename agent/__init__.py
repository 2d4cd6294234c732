"""comfyui-agent: ComfyUI as a stateless, serverless image API."""

__version__ = "0.1.0"
