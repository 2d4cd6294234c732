"""The keys API: the admin makes, lists and revokes keys; a key opens the API as itself, never more."""

from __future__ import annotations

import pytest

from double_helpers import save_prompt
from keys.conftest import ADMIN, Client, bearer, make_key
from waiting import EVENTUALLY, until

pytestmark = pytest.mark.timeout(60)


async def test_a_new_key_is_shown_once_and_listed_without_its_secret(agent: Client) -> None:
    response = await agent.post("/api/keys", json={"name": "shop", "scopes": ["run"],
                                                   "limits": {"concurrent_runs": 4}}, headers=ADMIN)
    assert response.status == 201 and response.headers["Cache-Control"] == "no-store"
    made = await response.json()
    assert made["key"].startswith("cak_") and len(made["key"]) == 47
    assert made["prefix"] == made["key"][:8] and made["scopes"] == ["run"] and made["revoked_at"] is None
    listed = await (await agent.get("/api/keys", headers=ADMIN)).json()
    assert [key["name"] for key in listed["keys"]] == ["shop"]
    assert made["key"] not in str(listed) and "digest" not in listed["keys"][0]
    assert listed["keys"][0]["limits"]["concurrent_runs"] == 4
    me = await (await agent.get("/api/me", headers=bearer(made["key"]))).json()
    assert me == {"name": "shop", "scopes": ["run"], "admin": False, "limits": made["limits"]}
    assert (await (await agent.get("/api/me", headers=ADMIN)).json())["admin"] is True


@pytest.mark.parametrize(("body", "kind"), [
    ({"name": "Shop"}, "RequestParamsError"),  # names are lower case: a label and a file name as they are
    ({"name": "admin"}, "RequestParamsError"),
    ({"name": "x" * 65}, "RequestParamsError"),
    ({"name": "ok", "scopes": []}, "RequestParamsError"),
    ({"name": "ok", "scopes": ["root"]}, "RequestParamsError"),
    ({"name": "ok", "limits": {"concurrent_runs": 0}}, "RequestParamsError"),
    ({"name": "ok", "color": "red"}, "RequestParamsError"),
])
async def test_a_bad_key_request_is_refused_and_makes_nothing(agent: Client, body: dict[str, object],
                                                             kind: str) -> None:
    response = await agent.post("/api/keys", json=body, headers=ADMIN)
    assert response.status == 400 and (await response.json())["message"] == kind
    assert (await (await agent.get("/api/keys", headers=ADMIN)).json())["keys"] == []


async def test_a_name_is_taken_once(agent: Client) -> None:
    await make_key(agent, "shop")
    response = await agent.post("/api/keys", json={"name": "shop"}, headers=ADMIN)
    assert response.status == 409 and (await response.json())["message"] == "KeyConflict"


async def test_only_the_admin_manages_keys_and_reaches_comfyui_itself(agent: Client) -> None:
    secret = await make_key(agent, "shop")
    for method, path in [("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys/shop"),
                         ("GET", "/system_stats"), ("POST", "/prompt"), ("GET", "/metrics"),
                         ("POST", "/api/models"), ("POST", "/api/workflows")]:
        response = await agent.request(method, path, headers=bearer(secret), json={"name": "x"})
        assert response.status == 403, (method, path, response.status)
        body = await response.json()
        assert body["message"] == "Forbidden" and body["scope"] == "admin"
    admin_key = await make_key(agent, "ops", scopes=["admin"])
    assert (await agent.get("/api/keys", headers=bearer(admin_key))).status == 200


async def test_a_revoked_key_is_refused_within_seconds(agent: Client) -> None:
    secret = await make_key(agent, "shop")
    assert (await agent.get("/api/me", headers=bearer(secret))).status == 200
    revoked = await agent.delete("/api/keys/shop", headers=ADMIN)
    assert revoked.status == 200 and (await revoked.json())["revoked_at"] is not None

    async def refused() -> bool:
        return (await agent.get("/api/me", headers=bearer(secret))).status == 401

    await until(refused, EVENTUALLY, "the revoked key to be refused")
    response = await agent.post("/api/run", json=save_prompt(1), headers=bearer(secret))
    assert response.status == 401 and (await response.json())["message"] == "Unauthorized"
    assert (await agent.delete("/api/keys/nobody", headers=ADMIN)).status == 404
    listed = await (await agent.get("/api/keys", headers=ADMIN)).json()
    assert listed["keys"][0]["revoked_at"] == (await revoked.json())["revoked_at"]


@pytest.mark.parametrize("presented", ["cak_" + "A" * 43, "cak_short", "not-a-key", "cak_" + "A" * 44])
async def test_a_wrong_or_malformed_key_opens_nothing(agent: Client, presented: str) -> None:
    response = await agent.post("/api/run", json=save_prompt(1), headers=bearer(presented))
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["message"] == "Unauthorized"
