"""Which address a request comes from, and whether it may call a path restricted to networks.

X-Forwarded-For is read only when the peer is a configured trusted proxy, from the right: each
proxy appends the address it saw, so the rightmost entry that is not one of our proxies is the
caller. Entries to its left were written by the caller and prove nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    return tuple(
        v
        if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network)
        else ipaddress.ip_network(v, strict=False)
        for v in values
    )


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def caller_address(request: Request, trusted_proxies: Sequence[Network]) -> Address | None:
    """The caller's address; None when it cannot be told (no peer, an unreadable entry)."""
    if request.client is None:
        return None
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    if not _within(address, trusted_proxies):
        return address
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    for entry in reversed([e.strip() for e in forwarded.split(",") if e.strip()]):
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            return None
        if not _within(address, trusted_proxies):
            return address
    return address


def allowed(
    request: Request, allowed_networks: Sequence[Network], trusted_proxies: Sequence[Network]
) -> tuple[bool, Address | None]:
    """(may call, caller address). An empty allow-list allows everyone (dev)."""
    address = caller_address(request, trusted_proxies)
    if not allowed_networks:
        return True, address
    return address is not None and _within(address, allowed_networks), address
