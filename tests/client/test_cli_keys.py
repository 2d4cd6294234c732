"""`comfyui-agent keys` and `usage` as real processes against an agent with AGENT_TOKEN in front of the double:
a key made with limits is shown once, runs a graph but cannot manage keys, is listed, is refused once revoked
(within the agent's cache of keys), and what its run cost is counted for it, as JSON, a table and CSV."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent_harness import running_agent
from client.test_cli import Agent, Done, command
from double_helpers import save_prompt
from waiting import EVENTUALLY, until

TOKEN = "keys-admin-token"


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Agent]:
    async with running_agent(comfyui_url=double, agent_token=TOKEN) as client:
        yield client


async def admin(agent: Agent, *args: str) -> Done:
    """A command with AGENT_TOKEN, which may do anything."""
    return await command(agent, *args, "--token", TOKEN)


async def created(agent: Agent, name: str, *options: str) -> dict[str, Any]:
    """A new key's reply, its secret (`key`) in it."""
    done = await admin(agent, "keys", "create", "--name", name, "--json", *options)
    assert done.code == 0, done.err
    reply: dict[str, Any] = json.loads(done.out)
    return reply


async def ran(agent: Agent, key: str, tmp_path: Path) -> Done:
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(save_prompt(0x303030, "keyed")))
    return await command(agent, "run", str(graph), "--token", key)


async def test_a_key_with_limits_runs_a_graph_but_cannot_manage_keys(agent: Agent, tmp_path: Path) -> None:
    reply = await created(agent, "ci", "--scope", "run", "--scope", "read", "--requests-per-minute", "600",
                          "--concurrent-runs", "2", "--gpu-seconds-per-day", "3600.5")
    assert reply["key"].startswith("cak_") and reply["key"].startswith(reply["prefix"])
    assert reply["name"] == "ci" and sorted(reply["scopes"]) == ["read", "run"] and reply["revoked_at"] is None
    assert reply["limits"] == {"requests_per_minute": 600, "concurrent_runs": 2, "gpu_seconds_per_day": 3600.5,
                               "gpu_seconds_per_month": None}
    refused = await command(agent, "keys", "list", "--token", reply["key"])  # no admin scope
    assert refused.code == 2 and refused.err.startswith("comfyui-agent: Forbidden: "), refused.err
    done = await ran(agent, reply["key"], tmp_path)
    assert done.code == 0 and " succeeded in " in done.out, done.err


async def test_a_key_is_shown_once_listed_and_refused_once_revoked(agent: Agent) -> None:
    made = await admin(agent, "keys", "create", "--name", "temp", "--concurrent-runs", "1",
                       "--gpu-seconds-per-month", "7200")
    assert made.code == 0 and "shown only once" in made.err, made.err
    key = made.out.strip()
    assert key.startswith("cak_") and made.out == f"{key}\n"  # the key alone: `$(keys create ...)` takes it
    listed = await admin(agent, "keys")
    assert listed.code == 0 and listed.out.split()[:5] == ["NAME", "SCOPES", "LIMITS", "CREATED", "REVOKED"]
    [row] = [line for line in listed.out.splitlines() if line.startswith("temp ")]
    assert "run" in row and "read" in row and "1 at once, 7200 GPU s/month" in row and row.endswith(" -")
    assert (await command(agent, "workflows", "--token", key)).code == 0
    revoked = await admin(agent, "keys", "revoke", "--name", "temp")
    assert revoked.code == 0 and revoked.out == "revoked temp\n", revoked.err

    async def refused() -> Done | None:
        done = await command(agent, "workflows", "--token", key)
        return done if done.code != 0 else None

    done = await until(refused, EVENTUALLY, "the revoked key to be refused")
    assert done.code == 2 and done.err.startswith("comfyui-agent: Unauthorized: "), done.err
    records = json.loads((await admin(agent, "keys", "list", "--json")).out)["keys"]
    [record] = [record for record in records if record["name"] == "temp"]
    assert record["revoked_at"] is not None and "key" not in record
    missing = await admin(agent, "keys", "revoke", "--name", "never-made")
    assert missing.code == 3 and missing.err.startswith("comfyui-agent: NotFound: "), missing.err


async def test_usage_counts_a_key_s_run_as_json_a_table_and_csv(agent: Agent, tmp_path: Path) -> None:
    key = (await created(agent, "metered"))["key"]
    done = await ran(agent, key, tmp_path)
    assert done.code == 0, done.err

    async def counted() -> dict[str, Any] | None:
        done = await admin(agent, "usage", "--key", "metered", "--group", "day", "--json")
        assert done.code == 0, done.err
        used: dict[str, Any] = json.loads(done.out)
        return used if used["totals"]["tasks"] else None

    used = await until(counted, EVENTUALLY, "the run to be counted for its key")
    [row] = used["rows"]
    assert row["key"] == "metered" and row["tasks"] == 1 and used["totals"]["tasks"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["day"]) and row["gpu_seconds"] >= 0
    by_key = json.loads((await admin(agent, "usage", "--key", "metered", "--group", "key", "--json")).out)
    assert [(row["key"], row["tasks"], row.get("day")) for row in by_key["rows"]] == [("metered", 1, None)]
    table = await admin(agent, "usage", "--key", "metered", "--group", "day")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[1].split()[:3] == ["KEY", "DAY", "TASKS"]
    metered, total = lines[2].split(), lines[-1].split()
    assert (metered[0], metered[2]) == ("metered", "1") and total[:2] == ["total", "1"]
    csv = await admin(agent, "usage", "--csv")
    assert csv.code == 0 and csv.out.startswith("key,") and "metered" in csv.out, csv.err
    before = json.loads((await admin(agent, "usage", "--from", "2000-01-01", "--to", "2000-01-02", "--json")).out)
    assert before["from"] == "2000-01-01" and before["rows"] == [] and before["totals"]["tasks"] == 0
