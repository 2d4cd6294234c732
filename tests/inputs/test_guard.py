"""The address guard: no private, loopback, link-local, CGNAT (metadata), multicast or reserved target."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import pytest

from agent.inputs.guard import AddressRefused, GuardedBackend, HostUnresolved, refusal


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.100.100.200", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.1.1.1", "240.0.0.1",
    "255.255.255.255", "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1",
    "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.100.100.200", "2002:7f00:1::1",
    "64:ff9b::a00:1", "2001:db8::1",
])
def test_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "47.246.1.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_metadata_service_is_named() -> None:
    assert refusal(ipaddress.ip_address("100.100.100.200")) == "carrier-grade NAT (cloud metadata)"


class Recorder(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        raise httpcore.ConnectError("recorded, not connected")


def resolving(*answers: str) -> Any:
    async def resolver(host: str, port: int) -> list[str]:
        return list(answers)

    return resolver


async def test_connects_to_the_address_it_checked_not_to_a_second_lookup() -> None:
    inner = Recorder()
    backend = GuardedBackend(False, frozenset(), resolving("93.184.216.34"), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("example.com", 443)
    assert inner.connected == [("93.184.216.34", 443)]


async def test_a_name_with_any_private_answer_is_refused_without_connecting() -> None:
    inner = Recorder()
    backend = GuardedBackend(False, frozenset(), resolving("93.184.216.34", "10.0.0.5"), inner)
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.5"):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.connected == []


async def test_allowlisted_host_and_allow_private_skip_the_check() -> None:
    inner = Recorder()
    for backend in (GuardedBackend(False, frozenset({"files.local"}), resolving("10.0.0.5"), inner),
                    GuardedBackend(True, frozenset(), resolving("10.0.0.5"), inner)):
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("files.local", 80)
    assert inner.connected == [("10.0.0.5", 80), ("10.0.0.5", 80)]


async def test_an_unresolvable_name_is_not_found_rather_than_refused() -> None:
    backend = GuardedBackend(False, frozenset(), resolving(), Recorder())
    with pytest.raises(HostUnresolved, match="does not resolve"):
        await backend.connect_tcp("nowhere.invalid", 80)


async def test_a_refusal_names_the_settings_that_allow_it() -> None:
    backend = GuardedBackend(False, frozenset(), resolving("127.0.0.1"), Recorder())
    with pytest.raises(AddressRefused, match=r"loopback.*URL_ALLOW_PRIVATE=true.*URL_ALLOW_HOSTS"):
        await backend.connect_tcp("localhost", 80)
