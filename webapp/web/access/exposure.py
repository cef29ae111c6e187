"""Whether ``serve`` may listen on an address: without users only on loopback, and a warning when
logins would cross the network in clear text.
"""

from __future__ import annotations

from pathlib import Path

from webapp.web.access.accounts import AccessError, UserStore
from webapp.web.access.requestchecks import is_loopback


def users_configured(data_dir: Path) -> bool:
    """True once at least one user exists in ``data_dir`` (access control is configured)."""
    try:
        return UserStore(Path(data_dir)).any()
    except AccessError:
        return False


access_configured = users_configured


def bind_refusal(host: str, data_dir: Path) -> str | None:
    """A message if binding ``host`` would expose the modules without access control.

    Loopback needs nothing; any other address needs at least one user in ``data_dir`` (and
    ``serve`` then runs with access control on).
    """
    if is_loopback(host):
        return None
    data_dir = Path(data_dir)
    try:
        if UserStore(data_dir).any():
            return None
        problem = f"there are no users in {data_dir / 'users.json'}"
    except AccessError as exc:
        problem = str(exc)
    return (
        f"refusing to listen on {host or 'all addresses'} without access control: {problem}. "
        "LAN-XI modules have no login of their own, so whoever reaches the dashboard could "
        "start and stop measurements. Create an admin first:\n"
        f"    lanxi-dashboard user add NAME --role admin --data-dir {data_dir}\n"
        "or pass --setup-token to create the admin from the browser with a one-time link,\n"
        "or listen on 127.0.0.1 only (see docs/security.md)."
    )


def transport_warning(host: str, tls: bool) -> str | None:
    """A warning for ``serve`` to print when logins would cross the network in clear text."""
    if tls or is_loopback(host):
        return None
    return (
        f"serving plain HTTP on {host or 'all addresses'}: passwords and session cookies cross "
        "the network unencrypted. Use --certfile/--keyfile, or a TLS reverse proxy in front of "
        "a loopback address (docs/security.md)."
    )
