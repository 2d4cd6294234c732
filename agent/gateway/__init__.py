"""The gateway: the agent without ComfyUI, on a small CPU function, in front of the GPU function. It serves
tasks, event streams, the page and the workflows from the shared store, and hands runs to the GPU function
as FC asynchronous invocations, so a poll or a page load never occupies, nor starts, a GPU instance."""
