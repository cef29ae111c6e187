"""``lanxi-dashboard user``: accounts and share links in a data directory.

Works whether or not the dashboard is running: the running dashboard re-reads the files on
every request, so a removed user or a revoked link stops working at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from webapp.auditlog import AuditLog
from webapp.datadir import default_data_dir
from webapp.web.access.accounts import ROLES, AccessError, ShareStore, UserStore
from webapp.web.access.safepaths import capture_dir


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (containers)
        return "cli"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "user",
        help="users and share links for access control",
        description="Manage who may use the dashboard (docs/security.md). Roles: viewer "
        "(watch, download), operator (also set up, arm, start, stop), admin (also users, "
        "modules, share links).",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="the dashboard's data directory (default ./data, or $LANXI_DATA_DIR)",
    )
    # --data-dir is accepted after the action too ("user add NAME --role admin --data-dir D").
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="user_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    add = sub.add_parser("add", parents=[common], help="create a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")  # fmt: skip
    add.set_defaults(func=_add)

    ls = sub.add_parser("list", parents=[common], help="list users (and share links with --shares)")
    ls.add_argument("--shares", action="store_true", help="also list share links")
    ls.set_defaults(func=_list)

    rm = sub.add_parser(
        "remove", parents=[common], help="delete a user; their sessions end at once"
    )
    rm.add_argument("name")
    rm.set_defaults(func=_remove)

    pw = sub.add_parser(
        "passwd", parents=[common], help="set a user's password; their other sessions end"
    )
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=_passwd)

    role = sub.add_parser("role", parents=[common], help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(func=_role)

    share = sub.add_parser(
        "share", parents=[common], help="create a read-only share link; prints its URL token"
    )
    what = share.add_mutually_exclusive_group(required=True)
    what.add_argument("--capture", metavar="ID", help="share one capture and its files")
    what.add_argument("--live", action="store_true", help="share the live view")
    share.add_argument("--expires", type=float, metavar="HOURS", default=None,
                       help="hours until the link stops working (default: never)")  # fmt: skip
    share.add_argument("--base-url", metavar="URL",
                       help="print the whole link, e.g. https://lab.example.org")  # fmt: skip
    share.set_defaults(func=_share)

    revoke = sub.add_parser(
        "revoke", parents=[common], help="revoke a share link (by token or id) at once"
    )
    revoke.add_argument("token")
    revoke.set_defaults(func=_revoke)


def _fail(message: str) -> int:
    print(f"lanxi-dashboard user: {message}", file=sys.stderr)
    return 2


def _read_password(args: argparse.Namespace, name: str) -> str | None:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") or None
    if not sys.stdin.isatty():
        raise AccessError("no terminal to ask for the password; use --password-stdin")
    first = getpass.getpass(f"Password for {name}: ")
    second = getpass.getpass("Again: ")
    if first != second:
        raise AccessError("the two passwords differ")
    return first


def _run(fn: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except AccessError as exc:
            return _fail(str(exc))
        except (ValueError, OSError) as exc:
            return _fail(str(exc))

    return wrapper


def _audit(args: argparse.Namespace, action: str, **details: Any) -> None:
    AuditLog(args.data_dir).append(action, _actor(), via="cli", **details)


@_run
def _add(args: argparse.Namespace) -> int:
    password = _read_password(args, args.name)
    if password is None:
        raise AccessError("no password given")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    user = UserStore(args.data_dir).add(args.name, args.role, password)
    _audit(args, "user-add", user=user.name, role=user.role)
    print(f"added {user.name} ({user.role}) to {args.data_dir / 'users.json'}")
    return 0


@_run
def _list(args: argparse.Namespace) -> int:
    users = UserStore(args.data_dir).list()
    if not users:
        print(f"no users in {args.data_dir} (access control is not configured)")
    for u in users:
        print(f"{u.name:24} {u.role:9} created {u.created or '?'}")
    if args.shares:
        for s in ShareStore(args.data_dir).list():
            what = f"capture {s.capture_id}" if s.scope == "capture" else "live view"
            state = "revoked" if s.revoked else ("active" if s.active() else "expired")
            until = f" until {s.expires}" if s.expires else ""
            print(f"share {s.id}  {what}  {state}{until}  by {s.created_by}")
    return 0


@_run
def _remove(args: argparse.Namespace) -> int:
    UserStore(args.data_dir).remove(args.name)
    _audit(args, "user-remove", user=args.name)
    print(f"removed {args.name}")
    return 0


@_run
def _passwd(args: argparse.Namespace) -> int:
    store = UserStore(args.data_dir)
    if store.get(args.name) is None:
        raise AccessError(f"no user {args.name}")
    password = _read_password(args, args.name)
    if password is None:
        raise AccessError("no password given")
    store.set_password(args.name, password)
    _audit(args, "user-password", user=args.name)
    print(f"password of {args.name} changed; their sessions have ended")
    return 0


@_run
def _role(args: argparse.Namespace) -> int:
    user = UserStore(args.data_dir).set_role(args.name, args.role)
    _audit(args, "user-role", user=user.name, role=user.role)
    print(f"{user.name} is now {user.role}")
    return 0


@_run
def _share(args: argparse.Namespace) -> int:
    if args.capture is not None and not capture_dir(args.data_dir, args.capture).is_dir():
        raise AccessError(f"no capture {args.capture!r} in {args.data_dir / 'captures'}")
    scope = "live" if args.live else "capture"
    token, share = ShareStore(args.data_dir).create(scope, args.capture, _actor(), args.expires)
    _audit(args, "share-create", share=share.id, scope=scope, capture_id=share.capture_id,
           expires=share.expires)  # fmt: skip
    path = f"/share/{token}"
    print(f"{args.base_url.rstrip('/')}{path}" if args.base_url else path)
    until = (
        f"until {datetime.fromisoformat(share.expires).astimezone():%Y-%m-%d %H:%M %Z}"
        if share.expires
        else "until revoked"
    )
    what = f"capture {args.capture}" if args.capture else "the live view"
    print(
        f"share {share.id}: read-only access to {what}, {until}. "
        f"Revoke: lanxi-dashboard user revoke {share.id}",
        file=sys.stderr,
    )
    return 0


@_run
def _revoke(args: argparse.Namespace) -> int:
    share = ShareStore(args.data_dir).revoke(args.token)
    _audit(args, "share-revoke", share=share.id)
    print(f"revoked share {share.id}")
    return 0
