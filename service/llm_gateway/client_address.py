"""Who is the client? The socket peer, unless that peer is a proxy we were told to trust.

X-Forwarded-For is only believed when it arrives from an address in TRUSTED_PROXIES; then the
right-most entry that is not itself a trusted proxy is the client (the left part of the header
is whatever the client chose to send). Rate limits and access logs use this address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any

_STATE_KEY = "client_address"


class ClientAddressResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)

    def _trusted(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def resolve(self, scope: MutableMapping[str, Any]) -> str:
        state = scope.setdefault("state", {})
        cached = state.get(_STATE_KEY)
        if cached is not None:
            return str(cached)
        client = scope.get("client")
        peer = str(client[0]) if client else "unknown"
        address = peer
        if self._trusted(peer):
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
                for hop in reversed(hops):
                    address = hop
                    if not self._trusted(hop):
                        break
                if not _looks_like_ip(address):
                    address = peer
        state[_STATE_KEY] = address
        return address


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
