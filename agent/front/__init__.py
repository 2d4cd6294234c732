"""The run front: what every surface (the agent's API, the gateway, the next API) may do with a run, whichever
instance runs it (base.py); runs on this instance (local.py) and runs handed to the GPU function (handoff.py)."""
