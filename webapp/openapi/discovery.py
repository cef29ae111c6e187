"""Finding LAN-XI modules on the network: mDNS (DNS-SD) browsing for ``_http._tcp.local.``
services named ``BK<type>-<serial>`` (PROTOCOL.md §9.1, the rule HBK's own scanner uses),
then each module's own word on what it is (``GET /rest/rec/module/info``) and what it is doing
(``GET /rest/rec/onchange``). python-zeroconf does the mDNS.

Run it in a process of its own, not under eventlet: python-zeroconf runs an asyncio loop in a
thread of its own, which green threads would share (``lanxi-dashboard discover`` is such a
process, and the dashboard runs it for its "Find modules").
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from webapp.openapi.client import ModuleClient, ModuleError

SERVICE_TYPE = "_http._tcp.local."
MODULE_NAME = re.compile(r"^BK\d{4}-\d{6}")
"""What HBK's scanner matches: a 4-digit type and a 6-digit serial."""
DEFAULT_SECONDS = 2.0
LATE_ANSWERS_S = 0.5
"""After a first answer that came late: how long the others get to follow it."""
INFO_TIMEOUT_S = 3.0


@dataclass
class FoundModule:
    name: str
    """The mDNS instance name, e.g. ``BK3160-100402``."""
    address: str
    """What the rig takes: the IPv4 address, with ``:port`` when that is not 80."""
    type: str = ""
    serial: int | None = None
    state: str = ""
    """``moduleState`` (Idle, RecorderRecording, …) as the module reports it now."""
    error: str = ""
    """Why the module's own answer is missing (it announced itself but does not answer)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def browse(
    seconds: float = DEFAULT_SECONDS, interface: str | None = None
) -> list[tuple[str, str, int]]:
    """``(name, address, port)`` of every module announcing itself within ``seconds``. When no
    module has answered by then, it listens up to ``seconds`` more for a first one (a loaded
    machine or network answers late), and a moment beyond it for the others."""
    from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf

    names: set[str] = set()
    """Full service names of the modules heard (other HTTP services on the network left out)."""
    lock = threading.Lock()
    answered = threading.Event()
    """Set by the first module heard."""

    class Listener:
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            if not MODULE_NAME.match(name.removesuffix("." + SERVICE_TYPE)):
                return
            with lock:
                names.add(name)
            answered.set()

        def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            self.add_service(zc, type_, name)

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            with lock:
                names.discard(name)

    zc = Zeroconf(
        interfaces=[interface] if interface else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, Listener())
        time.sleep(seconds)
        if not answered.is_set() and answered.wait(seconds):
            time.sleep(LATE_ANSWERS_S)
        browser.cancel()
        with lock:
            found = sorted(names)
        modules = []
        for full in found:
            name = full.removesuffix("." + SERVICE_TYPE)
            info = zc.get_service_info(SERVICE_TYPE, full, timeout=1000)
            if info is None:
                continue
            for address in info.parsed_addresses():
                modules.append((name, address, int(info.port or 80)))
                break
        return modules
    finally:
        zc.close()


def describe(name: str, address: str, port: int) -> FoundModule:
    """A found module with its type, serial and state from its own answers."""
    where = address if port == 80 else f"{address}:{port}"
    found = FoundModule(name=name, address=where)
    client = ModuleClient(where, timeout=INFO_TIMEOUT_S)
    try:
        info = client.info()
        found.type, found.serial = info.type_number, info.serial
        found.state = str(client.onchange().get("moduleState", ""))
    except ModuleError as exc:
        found.error = str(exc)
    return found


def discover(seconds: float = DEFAULT_SECONDS, interface: str | None = None) -> list[FoundModule]:
    """Every module on the network, by address."""
    return sorted((describe(*m) for m in browse(seconds, interface)), key=lambda f: f.address)
