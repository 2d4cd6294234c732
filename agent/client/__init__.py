"""A Python client of the agent (sync and asyncio, on httpx), and the `comfyui-agent` commands built on it."""
