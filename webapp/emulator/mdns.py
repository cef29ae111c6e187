"""The emulated modules answer mDNS as real ones do (PROTOCOL.md §9.1): each module is an
``_http._tcp.local.`` service named ``BK<type>-<serial>`` with its address and HTTP port, so
HBK's scanners and ``lanxi-dashboard discover`` find it. python-zeroconf does the protocol."""

from __future__ import annotations

import socket
from collections.abc import Callable

from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

SERVICE_TYPE = "_http._tcp.local."


def announce(
    modules: list[tuple[str, str, int]], interface: str | None = None
) -> Callable[[], None]:
    """Register ``(name, ipv4 address, port)`` for each module; ``interface``: the address of
    the interface to answer on (None: all). Returns the function that withdraws them."""
    zc = Zeroconf(
        interfaces=[interface] if interface else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    infos = [
        ServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"path": "/rest/rec"},
            server=f"{name}.local.",
        )
        for name, address, port in modules
    ]
    for info in infos:
        zc.register_service(info)

    def withdraw() -> None:
        for info in infos:
            zc.unregister_service(info)
        zc.close()

    return withdraw
