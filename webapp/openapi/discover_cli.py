"""``lanxi-dashboard discover``: the LAN-XI modules on the network (mDNS), with type, serial,
address and state, as a table or as JSON (what the dashboard's "Find modules" reads)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from webapp.openapi.discovery import DEFAULT_SECONDS, discover


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "discover",
        help="find LAN-XI modules on the network (mDNS)",
        description="List the LAN-XI modules that answer mDNS (_http._tcp services named "
        "BK<type>-<serial>) with their type, serial, address and state.",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"how long to listen for answers (default {DEFAULT_SECONDS:g})",
    )
    p.add_argument(
        "--interface", metavar="IP", help="the address of the interface to ask on (default: all)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.2 <= args.seconds <= 60:
        print("lanxi-dashboard discover: --seconds takes 0.2..60")
        return 2
    try:
        found = discover(args.seconds, args.interface)
    except OSError as exc:
        print(f"lanxi-dashboard discover: cannot ask on the network: {exc}")
        return 1
    if args.json:
        print(json.dumps([f.to_json() for f in found]))
        return 0
    if not found:
        print(f"no LAN-XI module answered within {args.seconds:g} s")
        return 0
    print(f"{'name':15} {'type':5} {'serial':>7}  {'address':22} state")
    for f in found:
        state = f.state or f"not answering: {f.error}"
        serial = "" if f.serial is None else f.serial
        print(f"{f.name:15} {f.type:5} {serial:>7}  {f.address:22} {state}")
    return 0
