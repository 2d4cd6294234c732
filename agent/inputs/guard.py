"""Where a URL input may lead: only to public addresses, checked after DNS resolution, for every connection.

The check sits in the connection layer (an httpcore network backend; for aiohttp, its resolver), so it applies
to each redirect hop, and the connection goes to the very address that was checked: a DNS answer that changes
between the check and the connect (rebinding) cannot steer the fetch elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAMED_RANGES = (
    ("carrier-grade NAT (cloud metadata)", ipaddress.ip_network("100.64.0.0/10")),
    ("private", ipaddress.ip_network("10.0.0.0/8")),
    ("private", ipaddress.ip_network("172.16.0.0/12")),
    ("private", ipaddress.ip_network("192.168.0.0/16")),
    ("private", ipaddress.ip_network("fc00::/7")),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# Said with every refusal: a caller testing against a local server needs to know which switch lets it through.
_ALLOW_HINT = "set URL_ALLOW_PRIVATE=true to allow private addresses, or list the host in URL_ALLOW_HOSTS"


class AddressRefused(Exception):
    """A URL input or a webhook led to an address the agent must not reach: never worth another try."""


class HostUnresolved(Exception):
    """The name has no address now; DNS may answer later, so unlike a refusal this can be tried again."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why the address is off limits, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        return refusal(inner)
    for label, flagged in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                           ("multicast", address.is_multicast), ("unspecified", address.is_unspecified)):
        if flagged:
            return label
    for label, network in _NAMED_RANGES:
        if address.version == network.version and address in network:
            return label
    if address.is_private or address.is_reserved or not address.is_global:
        return "reserved or not publicly routable"
    return None


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason:
            where = f"is a {reason} address" if host == text else f"resolves to {text}, a {reason} address"
            raise AddressRefused(f"{host} {where}: {_ALLOW_HINT}")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to the first one; `allowed_hosts` skip the check."""

    def __init__(self, allow_private: bool, allowed_hosts: frozenset[str], resolver: Resolver = resolve,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self.allowed_hosts = allowed_hosts
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, every one of them allowed; raises HostUnresolved or AddressRefused."""
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise HostUnresolved(f"{host} does not resolve ({exc.strerror or exc})") from exc
        if not addresses:
            raise HostUnresolved(f"{host} does not resolve")
        if not (self.allow_private or host.lower().rstrip(".") in self.allowed_hosts):
            check_addresses(host, addresses)
        return addresses

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.addresses(host, port)
        return await self.inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are never reached from a URL input")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedResolver(AbstractResolver):
    """The same guard as aiohttp's resolver, for the model downloads (agent/models/sources.py): aiohttp connects
    to the addresses given here, every one checked, and a redirect's host is resolved here again."""

    def __init__(self, backend: GuardedBackend) -> None:
        self.backend = backend

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        addresses = await self.backend.addresses(host, port)
        return [ResolveResult(hostname=host, host=address, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET)
                for address in addresses]

    async def close(self) -> None:
        """Nothing held."""
