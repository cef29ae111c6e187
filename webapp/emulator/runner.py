"""Run emulated modules: one HTTP server and its stream port(s) per module.

Two address plans:

* like real modules (the ``emulate`` command): module *i* on ``address + i`` (127.0.0.11,
  127.0.0.12, …), HTTP on ``port`` (80) and streams on 1536 (1537… for multi-socket) of the
  same address;
* in-process (tests, the dashboard's demo mode): every module on free ports of one host, e.g.
  ``127.0.0.1:41234``; ``destination/socket`` then answers the real stream port.

Modules of one :class:`EmulatedRig` share one PTP network, so they lock and trigger together.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from webapp.emulator.faults import FaultSpec, FaultSpecError, check_fault_fits, parse_fault_spec
from webapp.emulator.module import ModuleEmulator, wake_all
from webapp.emulator.network import PtpNetwork
from webapp.emulator.options import EmulatorOptions
from webapp.emulator.server import ModuleHTTPServer
from webapp.openapi.model import MODULE_TYPES, STREAM_PORT

log = logging.getLogger(__name__)


class EmulatedModule:
    """One running module; ``address`` is what a client connects to ("host:port" or "host")."""

    def __init__(
        self,
        index: int,
        type_number: str,
        host: str,
        port: int,
        stream_port: int,
        network: PtpNetwork,
        options: EmulatorOptions,
    ) -> None:
        self.emulator = ModuleEmulator(index, type_number, network, options)
        self.host = host
        try:
            self.emulator.start(host, stream_port)
            self.http = ModuleHTTPServer(self.emulator, host, port)
        except OSError as exc:
            self.emulator.stop()
            raise OSError(
                f"module {index + 1} ({type_number}) cannot listen on {host} "
                f"(HTTP port {port or 'free'}, stream port {stream_port or 'free'}): {exc}"
            ) from exc
        self.port: int = self.http.server_address[1]
        self._thread = threading.Thread(
            target=self.http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.emulator.name}-http",
            daemon=True,
        )
        self._thread.start()
        # Debug only: the ``emulate`` command prints each module's start line itself.
        log.debug(
            "module %d: %s at http://%s:%d, stream port %d",
            index + 1,
            self.emulator.name,
            host,
            self.port,
            self.emulator.ports[0].port,
        )

    @property
    def address(self) -> str:
        """ "host:port", the form the dashboard's client accepts for any module."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def type_number(self) -> str:
        return self.emulator.profile.number

    @property
    def stream_port(self) -> int:
        return self.emulator.ports[0].port

    def fault(self, spec: FaultSpec) -> None:
        self.emulator.schedule_fault(spec)

    def stop(self) -> None:
        # Modules that locked to this one as their PTP master notice that it is gone.
        peers = self.emulator.network.leave_ptp(self.emulator)
        self.http.shutdown()
        self.http.server_close()
        self.emulator.stop()
        self._thread.join(2.0)
        wake_all([p for p in peers if p is not self.emulator and not p._stopped])


class EmulatedRig:
    """Several emulated modules sharing one PTP network."""

    def __init__(self, modules: list[EmulatedModule], network: PtpNetwork) -> None:
        self.modules = modules
        self.network = network

    @classmethod
    def start(
        cls,
        n: int,
        types: Sequence[str] | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        stream_port: int | None = None,
        consecutive_addresses: bool | None = None,
        faults: Iterable[str | FaultSpec] = (),
        options: EmulatorOptions | None = None,
        module_type: str | None = None,
        **option_values: Any,
    ) -> EmulatedRig:
        """Start ``n`` modules.

        ``types``: one type for all, or one per module (a shorter list repeats its last type);
        ``module_type`` is the same for one type.
        ``port`` 0 puts every module on free ports of ``host``; a fixed port (80) puts module
        1 on ``host`` and module *i* on ``host + i - 1`` unless ``consecutive_addresses`` says
        otherwise. ``stream_port`` defaults to 1536 with a fixed HTTP port, else free ports.
        Timings and limits are :class:`EmulatorOptions` fields (``ptp_lock_seconds=1``, ``teds_seconds=0.2``, …).
        """
        if n < 1:
            raise ValueError("at least one module")
        type_list = _type_list(types if types is not None else module_type, n)
        opts = replace(options or EmulatorOptions(), **option_values)
        if consecutive_addresses is None:
            consecutive_addresses = port != 0
        if stream_port is None:
            stream_port = STREAM_PORT if port else 0
        specs = [parse_fault_spec(f) if isinstance(f, str) else f for f in faults]
        for spec in specs:
            # Bad faults are refused before any module starts.
            if spec.module > n:
                raise FaultSpecError(
                    f"fault for module {spec.module}, but only {n} modules run", "module"
                )
            profile = MODULE_TYPES.get(type_list[spec.module - 1])
            if profile is not None:  # an unknown type is refused by the module itself
                try:
                    check_fault_fits(spec.fault, profile)
                except FaultSpecError as exc:
                    raise FaultSpecError(f"module {spec.module}: {exc}", exc.field) from None
        network = PtpNetwork()
        modules: list[EmulatedModule] = []
        base = ipaddress.IPv4Address(host)
        try:
            for i in range(n):
                addr = str(base + i) if consecutive_addresses else host
                modules.append(
                    EmulatedModule(i, type_list[i], addr, port, stream_port, network, opts)
                )
        except BaseException:
            for m in modules:
                with contextlib.suppress(Exception):
                    m.stop()
            raise
        rig = cls(modules, network)
        for spec in specs:
            modules[spec.module - 1].fault(spec)
        return rig

    @property
    def addresses(self) -> list[str]:
        return [m.address for m in self.modules]

    def stop(self) -> None:
        # In parallel: each module's servers take a moment to notice the shutdown.
        threads = [threading.Thread(target=_stop_quietly, args=(m,)) for m in self.modules]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5.0)

    def __enter__(self) -> EmulatedRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_quietly(module: EmulatedModule) -> None:
    try:
        module.stop()
    except Exception:  # a module that fails to stop must not keep the others running
        log.exception("stopping %s failed", module.emulator.name)


def _type_list(types: Sequence[str] | str | None, n: int) -> list[str]:
    if types is None:
        return ["3050"] * n
    if isinstance(types, str):
        types = [t for t in types.split(",") if t.strip()]
    listed = [str(t).strip() for t in types]
    if not listed:
        return ["3050"] * n
    return [listed[min(i, len(listed) - 1)] for i in range(n)]
