"""Comfy API v2's jobs: `POST /api/v2/jobs` submits a run through the front in the background (on a gateway it is
handed to the worker function), and every read, list, cancel and graph is answered from the shared store, on
any instance. A job is a task: its id is the task's (time-ordered, agent/stores/jobs.py), its labels and graph
are in the jobs index, and an `Idempotency-Key` is taken in the store before the run starts, so a reused key
never makes a second job on any instance."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from agent.access.principal import Principal
from agent.api.requests import check_prompt, json_body
from agent.api.run import converted
from agent.api.security import principal_of
from agent.api.services import Services
from agent.api.v2.errors import V2Error
from agent.api.v2.models import JobList, JobRequest, JobStatus, JobSummary, JobWorkflow
from agent.api.v2.view import job_of, job_status, summary_of
from agent.assets.book import AssetBook
from agent.assets.hashes import is_hash
from agent.errors import AgentError, PromptValidationError, RequestParamsError, TaskNotFound
from agent.front.base import Mode, Submission
from agent.stores.jobs import JobEntry, created_at, new_job_id
from agent.tasks.model import Task
from agent.tasks.options import RunOptions

KEY_MAX = 255  # v2: an Idempotency-Key is 1 to 255 characters
LABELS_MAX = 16  # v2 (Cloud): at most 16 metadata pairs, keys of 1 to 40 characters, values up to 256 bytes
LABEL_KEY_MAX = 40
LABEL_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{LABEL_KEY_MAX}}}")
LABEL_VALUE_MAX = 256
PAGE_DEFAULT = 50
PAGE_MAX = 100
TAKEN_WITHIN = 5.0  # seconds a submit waits for ComfyUI to take the graph; a job still waiting its turn is queued
SETTLES_WITHIN = 0.25  # seconds a read of a job running here waits for its end (below the SDK's first sleep)
SCANNED_MAX = 1000  # jobs a filtered list looks through for one page; the cursor then resumes after them


def origin(request: web.Request) -> str:
    """The caller's scheme and host, for the absolute URLs v2 answers with (FC's front tells its scheme)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}"


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= KEY_MAX and key.isprintable() and key.isascii()):
        raise V2Error("invalid_request", 400, f"Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters")
    return key


def _label(key: object, value: object) -> bool:
    return (isinstance(key, str) and LABEL_KEY.fullmatch(key) is not None and isinstance(value, str)
            and len(value.encode()) <= LABEL_VALUE_MAX and value.isprintable())


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > LABELS_MAX or not all(map(_label, value, value.values())):
        raise V2Error("metadata_invalid", 422, f"metadata must map up to {LABELS_MAX} keys of 1 to {LABEL_KEY_MAX} "
                      f"characters [A-Za-z0-9_.-] to printable strings of up to {LABEL_VALUE_MAX} bytes")
    return dict(value)


def _request(raw: bytes) -> JobRequest:
    body = json_body(raw)
    if not isinstance(body, dict):
        raise V2Error("invalid_request", 400, "the body must be a JSON object with `workflow`")
    for reserved in ("webhook_url", "inputs"):
        if body.get(reserved) is not None:
            raise V2Error("invalid_workflow", 422, f"'{reserved}' is reserved and not accepted")
    try:
        return JobRequest.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise V2Error("invalid_request", 400, f"{where}: {problem['msg']}") from None


def _workflow(workflow: Any) -> dict[str, Any]:
    """The workflow's shape (the API format, or the editor's saved format, which is converted after)."""
    try:
        return check_prompt(workflow)
    except RequestParamsError as exc:
        raise V2Error("invalid_workflow", 422, str(exc)) from None


def _references(graph: dict[str, Any]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Every input holding an asset reference (`{"__type": "core/ASSET", "info": {...}}`), with where it is."""
    found = []
    for node in graph.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if isinstance(value, dict) and value.get("__type") == "core/ASSET":
                found.append((inputs, name, value))
    return found


async def _with_assets(graph: dict[str, Any], services: Services) -> dict[str, Any]:
    """The graph with each asset reference as its content hash, an input the run reads from the assets'
    store (agent/inputs/sources.py); the record's id decides, the hash is a fallback for bytes stored here."""
    if not _references(graph):
        return graph
    resolved = copy.deepcopy(graph)
    book, missing = AssetBook(services.stores.shared), []
    for inputs, name, value in _references(resolved):
        info: dict[str, Any] = value["info"] if isinstance(value.get("info"), dict) else {}
        record = await book.get(str(info.get("id", "")))
        digest = record.hash if record is not None else info.get("hash")
        if record is None and not (is_hash(digest) and await services.blobs.has(str(digest))):
            missing.append(str(info.get("id") or "<no id>"))
            continue
        inputs[name] = digest
    if missing:
        raise V2Error("missing_asset", 422, f"no asset {', '.join(missing[:5])}: upload it first",
                      {"missing_ids": missing})
    return resolved


async def submit(request: web.Request, services: Services) -> web.Response:
    front = services.front
    front.room(Mode.BACKGROUND)  # a full instance says so (429, retried by the SDK) before a key is taken
    key = _idempotency_key(request)
    body = _request(await request.read())
    workflow = _workflow(body.workflow)
    labels = _labels(body.metadata)
    graph, options = await converted(workflow, RunOptions(results=False), services.catalog)
    graph = await _with_assets(graph, services)
    job_id = new_job_id()
    if key is not None and (holder := await services.stores.idempotency.take(key, job_id)) is not None:
        raise V2Error("idempotency_key_reuse", 422, "this Idempotency-Key has already been used: keys are single "
                      "use; poll or list your jobs instead of submitting again", {"job_id": holder})
    entry = JobEntry(job_id=job_id, labels=labels, graph=workflow)
    try:
        task = await _start(request, services, entry, graph, options.pnginfo)
    except AgentError:
        if key is not None:
            await services.stores.idempotency.give_back(key, job_id)
        raise
    return _job_response(request, services, task, entry, status=201)


async def _start(request: web.Request, services: Services, entry: JobEntry, graph: dict[str, Any],
                 pnginfo: dict[str, Any] | None) -> Task:
    """The job through the front as a plain background run (a worker handed it runs `/api/run`'s body). Here
    the reply waits for ComfyUI to take the graph, so a graph it refuses is v2's `invalid_workflow`, with
    ComfyUI's node errors, and makes no job. The job is indexed while ComfyUI looks at the graph (a store's
    round trip off the reply's path), and unindexed when the run is refused."""
    delivery = "url" if services.settings.output_store else "none"
    options = RunOptions(results=False, delivery=delivery, pnginfo=pnginfo)
    forwarded = json.dumps({"prompt": graph, "options": {"output": {"delivery": delivery}},
                            **({"extra_data": {"extra_pnginfo": pnginfo}} if pnginfo else {})},
                           separators=(",", ":")).encode()
    submission = Submission(entry.job_id, graph, options, Mode.BACKGROUND, forwarded, "/api/run",
                            request.headers, principal_of(request))
    await services.front.admit(submission)
    indexed = asyncio.ensure_future(services.stores.jobs.add(entry))
    try:
        task = await services.front.start(submission, wait=TAKEN_WITHIN)
    except AgentError as exc:
        await _unindexed(services, indexed, entry.job_id)
        await services.front.withdraw(submission, exc)
        raise
    error = task.error if task.status.finished else None
    if error is not None and error.get("message") == PromptValidationError.kind:
        await _unindexed(services, indexed, entry.job_id)
        raise PromptValidationError(error.get("error"), node_errors=error.get("node_errors", {}))
    await indexed
    return task


async def _unindexed(services: Services, indexed: asyncio.Future[None], job_id: str) -> None:
    """The entry of a job refused as it started is gone once this returns (or was never written)."""
    await asyncio.wait([indexed])
    if indexed.exception() is None:
        with contextlib.suppress(AgentError):  # the caller hears of the refusal, not of a store outage after it
            await services.stores.jobs.remove(job_id)


def _job_response(request: web.Request, services: Services, task: Task, entry: JobEntry | None, *,
                  status: int = 200, canceling: bool = False) -> web.Response:
    job = job_of(task, entry, origin(request), services.settings.task_ttl, canceling)
    return web.json_response(text=job.model_dump_json(), status=status)


async def find_job(request: web.Request, services: Services, job_id: str,
                   within: float = 0) -> tuple[Task, JobEntry]:
    """A job's task and entry (`within`: Front.read's), read at once; an id that is no job (or a task not made
    through v2) is v2's 404."""
    if created_at(job_id) is None:
        raise TaskNotFound(f"no job {job_id[:100]}")
    try:
        entry, (task, _) = await asyncio.gather(
            services.stores.jobs.entry(job_id),
            services.front.read(job_id, principal_of(request), results=False, within=within))
    except TaskNotFound:
        entry = None
    if entry is None:
        raise TaskNotFound(f"no job {job_id[:100]}")
    return task, entry


async def get_job(request: web.Request, services: Services) -> web.Response:
    """A job running on this instance is answered at its end when that comes within `SETTLES_WITHIN`: the SDK's
    `run()` asks at once after its submit, then sleeps half a second, so a short job reads done at once."""
    task, entry = await find_job(request, services, request.match_info["job_id"], within=SETTLES_WITHIN)
    return _job_response(request, services, task, entry)


async def get_workflow(request: web.Request, services: Services) -> web.Response:
    _, entry = await find_job(request, services, request.match_info["job_id"])
    return web.json_response(JobWorkflow(workflow=entry.graph).model_dump())


async def cancel(request: web.Request, services: Services) -> web.Response:
    """A job still running is stopped wherever it runs (it reads `canceling` until it has ended); one that ended
    already is refused (`job_finished`, 409), so a caller knows its cancel changed nothing."""
    task, entry = await find_job(request, services, request.match_info["job_id"])
    if task.status.finished:
        raise V2Error("job_finished", 409, f"job {task.task_id} already ended ({job_status(task).value}): "
                      "there is nothing to cancel", {"status": job_status(task).value})
    task = await services.front.cancel(task.task_id, principal_of(request))
    return _job_response(request, services, task, entry, canceling=not task.status.finished)


def _filters(request: web.Request) -> tuple[dict[str, str], set[JobStatus] | None, int]:
    labels = {key[len("metadata["):-1]: value for key, value in request.query.items()
              if key.startswith("metadata[") and key.endswith("]")}
    statuses = None
    if "status" in request.query:
        try:
            statuses = {JobStatus(value) for value in request.query["status"].split(",")}
        except ValueError:
            raise V2Error("invalid_request", 400, "status must be a comma-separated list of job statuses: "
                          + ", ".join(JobStatus)) from None
    try:
        limit = int(request.query.get("limit", PAGE_DEFAULT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= PAGE_MAX:
        raise V2Error("invalid_request", 400, f"limit must be a whole number from 1 to {PAGE_MAX}")
    return labels, statuses, limit


async def list_jobs(request: web.Request, services: Services) -> web.Response:
    """Newest first; `cursor` resumes after the last job of the page before (an id that is no job's is
    `invalid_cursor`); filtered by `metadata[key]=value` and `status`."""
    labels, statuses, limit = _filters(request)
    cursor = request.query.get("cursor") or None
    if cursor is not None and created_at(cursor) is None:
        raise V2Error("invalid_cursor", 422, "cursor must be a `next_cursor` a page of this list gave")
    listed = JobList(jobs=[])
    scanned = 0
    while len(listed.jobs) < limit and scanned < SCANNED_MAX:
        ids = await services.stores.jobs.page(cursor, limit)
        if not ids:
            return web.json_response(text=listed.model_dump_json())
        for job_id in ids:
            scanned += 1
            cursor = job_id
            summary = await _summary(services, job_id, principal_of(request))
            if summary is not None and labels.items() <= summary.metadata.items() and (
                    statuses is None or summary.status in statuses):
                listed.jobs.append(summary)
                if len(listed.jobs) == limit:
                    break
    listed.next_cursor = cursor
    return web.json_response(text=listed.model_dump_json())


async def _summary(services: Services, job_id: str, reader: Principal) -> JobSummary | None:
    """The job as listed to `reader`: None when gone, or another key's."""
    entry = await services.stores.jobs.entry(job_id)
    task = await services.stores.records.get(job_id)
    if entry is None or task is None or not reader.sees(task.key):
        return None
    return summary_of(task, entry)
