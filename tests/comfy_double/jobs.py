"""``/api/jobs`` (ComfyUI 0.33.0, ``comfy_execution/jobs.py``): the queue and the history as one list of jobs.

Ported for the outputs the double's nodes make (dicts of images, the ``animated`` flag); 3D and text outputs,
which no node of the double makes, are left out. Cancelling through jobs is not served.
"""

from __future__ import annotations

from typing import Any

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "pending", "in_progress", "completed", "failed", "cancelled"
STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
_ENDS = ("execution_success", "execution_error", "execution_interrupted")


def _pruned(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if value is not None}


def _metadata(extra_data: dict[str, Any]) -> tuple[Any, Any]:
    return extra_data.get("create_time"), extra_data.get("extra_pnginfo", {}).get("workflow", {}).get("id")


def queued_job(item: tuple[Any, ...], status: str) -> dict[str, Any]:
    create_time, workflow_id = _metadata(item[3])
    return _pruned({"id": item[1], "status": status, "priority": item[0], "create_time": create_time,
                    "outputs_count": 0, "previewable_outputs_count": 0, "workflow_id": workflow_id})


def _items(outputs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(node id, media type, item) for every output item, in ComfyUI's order."""
    return [(node_id, media_type, item) for node_id, node_outputs in outputs.items()
            for media_type, items in node_outputs.items() if media_type != "animated" and isinstance(items, list)
            for item in items if isinstance(item, dict)]


def _preview(items: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The first saved output, else the first previewable one."""
    enriched = [{**item, "nodeId": node_id, "mediaType": item.get("mediaType", media_type)}
                for node_id, media_type, item in items]
    saved = [item for item in enriched if item.get("type") == "output"]
    return next(iter(saved or enriched), None)


def _ending(messages: list[Any]) -> tuple[Any, Any, Any, bool]:
    """(start time, end time, execution_error data, interrupted) from a history entry's messages."""
    start = end = error = None
    interrupted = False
    for event, data in messages:
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in _ENDS:
            end = data.get("timestamp")
            error = data if event == "execution_error" else error
            interrupted = interrupted or event == "execution_interrupted"
    return start, end, error, interrupted


def history_job(prompt_id: str, entry: dict[str, Any], full: bool = False) -> dict[str, Any]:
    priority, _, prompt, extra_data, _ = entry["prompt"]
    create_time, workflow_id = _metadata(extra_data)
    status_info = entry.get("status") or {}
    start, end, error, interrupted = _ending(status_info.get("messages", []))
    status = COMPLETED
    if status_info.get("status_str") == "error":
        status = CANCELLED if interrupted else FAILED
    items = _items(entry.get("outputs", {}))
    job = _pruned({
        "id": prompt_id, "status": status, "priority": priority, "create_time": create_time,
        "execution_start_time": start, "execution_end_time": end, "execution_error": error,
        "outputs_count": len(items), "previewable_outputs_count": len(items), "preview_output": _preview(items),
        "workflow_id": workflow_id,
    })
    if full:
        job |= {"outputs": entry.get("outputs", {}), "execution_status": status_info,
                "workflow": {"prompt": prompt, "extra_data": extra_data}}
    return job


def _duration(job: dict[str, Any]) -> Any:
    start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
    return end - start if end and start else 0


SORT_KEYS = {"created_at": lambda job: job.get("create_time", 0), "execution_duration": _duration}


def all_jobs(running: list[Any], pending: list[Any], history: dict[str, Any], statuses: list[str],
             sort_by: str = "created_at", descending: bool = True) -> list[dict[str, Any]]:
    """Running, then pending, then finished jobs of the given statuses, sorted (stably) by ``SORT_KEYS``."""
    jobs = [queued_job(item, IN_PROGRESS) for item in running if IN_PROGRESS in statuses]
    jobs += [queued_job(item, PENDING) for item in pending if PENDING in statuses]
    jobs += [job for job in (history_job(prompt_id, entry) for prompt_id, entry in history.items())
             if job["status"] in statuses]
    return sorted(jobs, key=SORT_KEYS[sort_by], reverse=descending)


def one_job(prompt_id: str, running: list[Any], pending: list[Any], history: dict[str, Any]) -> dict[str, Any] | None:
    if prompt_id in history:
        return history_job(prompt_id, history[prompt_id], full=True)
    for items, status in ((running, IN_PROGRESS), (pending, PENDING)):
        for item in items:
            if item[1] == prompt_id:
                return queued_job(item, status)
    return None
