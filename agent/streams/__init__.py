"""Event streams: what happens to a task, told as Server-Sent Events on any instance, fed from the shared store."""
