"""A run: claimed, prepared, sent to ComfyUI, followed, ended; what happens to it goes out as events."""
