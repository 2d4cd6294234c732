"""Comfy API v2 (the surface of Comfy Cloud and Comfy's SDKs), served by every app through the one run front."""
