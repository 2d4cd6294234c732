"""Where the output store's credentials and address come from."""

from __future__ import annotations

import pytest

from agent.buckets.credentials import Credential, Credentials
from agent.buckets.location import Location, oss_endpoint, parse_location, parse_object_url
from agent.config import ConfigError, load_settings

FC = {"x-fc-access-key-id": "STS.role", "x-fc-access-key-secret": "role-secret", "x-fc-security-token": "tok"}


def test_settings_come_first_then_the_clouds_environment_then_fcs_role() -> None:
    env = {"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-tok"}
    explicit = Credentials("s3", Credential("set-id", "set-secret"), env)
    explicit.offer(FC)
    assert explicit()["access_key_id"] == "set-id" and explicit()["expires_at"] is None
    from_env = Credentials("s3", None, env)
    assert (from_env()["access_key_id"], from_env()["token"]) == ("env-id", "env-tok")
    oss = Credentials("oss", None, {**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "ali-id",
                                    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ali-secret"})
    assert oss()["access_key_id"] == "ali-id"  # each cloud reads its own environment


def test_fcs_role_credentials_are_the_newest_seen_and_asked_for_again_soon() -> None:
    role = Credentials("oss", None, {})
    assert not role.available
    with pytest.raises(RuntimeError, match="no credentials"):
        role()
    role.offer({"x-fc-request-id": "r1"})  # a request without a role's headers changes nothing
    role.offer(FC)
    first = role()
    assert (first["access_key_id"], first["token"]) == ("STS.role", "tok") and first["expires_at"] is not None
    role.offer({**FC, "x-fc-access-key-id": "STS.renewed"})
    assert role()["access_key_id"] == "STS.renewed"


def test_locations_and_the_oss_endpoint() -> None:
    assert parse_location("oss://media/outputs/") == Location("oss", "media", "outputs")
    assert parse_location("s3://bkt").key("", "t1", "9", "a.png") == "t1/9/a.png"
    assert Location("s3", "b", "p/q").key("team", "t1", "9", "a.png") == "p/q/team/t1/9/a.png"
    assert oss_endpoint("cn-hangzhou") == "https://s3.oss-cn-hangzhou-internal.aliyuncs.com"
    assert parse_object_url("oss://media/in/a%20b.png") == Location("oss", "media", "in/a b.png")


@pytest.mark.parametrize("raw", ["oss://media", "oss://media/", "s3://Upper/x.png", "s3://a_b/x.png",
                                 "s3://x/y.png", "s3://evil.example.com:80/x.png"])
def test_an_object_url_needs_a_bucket_name_and_a_key(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_object_url(raw)


@pytest.mark.parametrize("raw", ["http://bucket/x", "s3://", "gs://bkt", "s3://bkt/x?y=1", "s3://b/x"])
def test_a_bad_output_store_is_named_at_startup(raw: str) -> None:
    with pytest.raises(ConfigError, match="OUTPUT_STORE"):
        load_settings([], {"COMFYUI_URL": "http://127.0.0.1:8188", "OUTPUT_STORE": raw})
