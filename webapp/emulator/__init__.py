"""A LAN-XI module in software: REST state machine, binary stream, PTP, faults.

It shares only the stream codec and the data model (``webapp.openapi.stream``/``model``) with
the client side. Start modules in-process with :meth:`EmulatedRig.start`, or as real-looking
modules on their own loopback addresses with ``lanxi-dashboard emulate``.
"""

from webapp.emulator.options import EmulatorOptions
from webapp.emulator.runner import EmulatedModule, EmulatedRig

__all__ = ["EmulatedModule", "EmulatedRig", "EmulatorOptions"]
