"""Users and share links, kept as small JSON files in the data directory.

Both files are rewritten atomically (temporary file, fsync, rename) with mode 0600 and under an
advisory lock, because the ``user`` command and a running ``serve`` may change them at the same
time. Readers look at the file's identity (inode, size, mtime) on every call and reload when it
changed, so a user removed or a share link revoked from the command line stops working in a
running dashboard at the next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from webapp import statefile

ROLES = ("viewer", "operator", "admin")
USERS_FILE = "users.json"
SHARES_FILE = "shares.json"
LOCK_FILE = ".access.lock"
FILE_MODE = 0o600

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# argon2id with argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4); about
# 0.1 s per hash, which is also what a guess costs an attacker who stole users.json.
HASHER = PasswordHasher()


class AccessError(ValueError):
    """Bad input to the user or share store; the message says what is wrong."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t is not None else None


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def share_token() -> str:
    """A share link's secret: 32 URL-safe characters that never begin with ``-``, so
    ``lanxi-dashboard user revoke TOKEN`` does not take it for an option."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


# --- files ---------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix."""
    statefile.atomic_write(path, data, mode)


class JsonFile:
    """A JSON document in one file: cached reads, locked read-modify-write updates."""

    def __init__(self, path: Path, empty: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._empty = empty
        self._lock = threading.RLock()
        self._signature: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = empty()

    def _stat_signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise AccessError(f"{self.path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AccessError(f"{self.path} does not hold a JSON object")
        return data

    def read(self) -> dict[str, Any]:
        """The current document (do not modify it; use ``update``)."""
        with self._lock:
            signature = self._stat_signature()
            if signature != self._signature:
                self._data = self._load()
                self._signature = signature
            return self._data

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to a fresh copy of the document and write it back atomically."""
        with self._lock, self._file_lock():
            data = self._load()
            result = change(data)
            atomic_write(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
            self._data = data
            self._signature = self._stat_signature()
            return result


# --- users ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    role: str
    epoch: int
    """Bumped when the password changes: sessions made before then stop working."""
    created: str | None = None
    changed: str | None = None

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created": self.created}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise AccessError(
            "a user name is 1 to 64 characters: letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_password(password: str, name: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccessError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccessError(f"a password has at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise AccessError("the password must not be the user name")
    return password


class UserStore:
    """``<data_dir>/users.json``: name → role and argon2id hash."""

    def __init__(self, data_dir: Path, hasher: PasswordHasher | None = None) -> None:
        self.file = JsonFile(Path(data_dir) / USERS_FILE, lambda: {"version": 1, "users": {}})
        self._hasher = hasher
        self._dummy_hash: str | None = None

    @property
    def hasher(self) -> PasswordHasher:
        return self._hasher or HASHER

    def _records(self) -> dict[str, dict[str, Any]]:
        users = self.file.read().get("users", {})
        return users if isinstance(users, dict) else {}

    @staticmethod
    def _user(name: str, rec: dict[str, Any]) -> User:
        return User(
            name=name,
            role=rec.get("role", "viewer"),
            epoch=int(rec.get("epoch", 0)),
            created=rec.get("created"),
            changed=rec.get("changed"),
        )

    def any(self) -> bool:
        return bool(self._records())

    def get(self, name: str) -> User | None:
        rec = self._records().get(name)
        return self._user(name, rec) if isinstance(rec, dict) else None

    def list(self) -> list[User]:
        return [self._user(n, r) for n, r in sorted(self._records().items())]

    def add(self, name: str, role: str, password: str) -> User:
        check_name(name)
        check_role(role)
        check_password(password, name)
        digest = self.hasher.hash(password)

        def change(data: dict[str, Any]) -> None:
            users = data.setdefault("users", {})
            if name in users:
                raise AccessError(f"user {name} already exists")
            stamp = iso(now_utc())
            users[name] = {"role": role, "hash": digest, "epoch": 0, "created": stamp,
                           "changed": stamp}  # fmt: skip

        self.file.update(change)
        user = self.get(name)
        assert user is not None
        return user

    def _admins_left(self, users: dict[str, Any], without: str) -> int:
        return sum(1 for n, r in users.items() if n != without and r.get("role") == "admin")

    def remove(self, name: str) -> None:
        def change(data: dict[str, Any]) -> None:
            users = data.setdefault("users", {})
            if name not in users:
                raise AccessError(f"no user {name}")
            if (
                users[name].get("role") == "admin"
                and len(users) > 1
                and not self._admins_left(users, name)
            ):
                raise AccessError(f"{name} is the last admin; make another user admin first")
            del users[name]

        self.file.update(change)

    def set_role(self, name: str, role: str) -> User:
        check_role(role)

        def change(data: dict[str, Any]) -> None:
            users = data.setdefault("users", {})
            if name not in users:
                raise AccessError(f"no user {name}")
            if (
                role != "admin"
                and users[name].get("role") == "admin"
                and not self._admins_left(users, name)
            ):
                raise AccessError(f"{name} is the last admin; make another user admin first")
            users[name]["role"] = role
            users[name]["changed"] = iso(now_utc())

        self.file.update(change)
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> User:
        check_password(password, name)
        digest = self.hasher.hash(password)

        def change(data: dict[str, Any]) -> None:
            users = data.setdefault("users", {})
            if name not in users:
                raise AccessError(f"no user {name}")
            users[name]["hash"] = digest
            users[name]["epoch"] = int(users[name].get("epoch", 0)) + 1
            users[name]["changed"] = iso(now_utc())

        self.file.update(change)
        user = self.get(name)
        assert user is not None
        return user

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right; as slow for unknown names as for known ones."""
        rec = self._records().get(name) if isinstance(name, str) else None
        if not isinstance(rec, dict) or not isinstance(password, str):
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
            with contextlib.suppress(VerificationError, InvalidHashError):
                self.hasher.verify(self._dummy_hash, password if isinstance(password, str) else "")
            return None
        try:
            self.hasher.verify(rec.get("hash", ""), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(rec["hash"]):
            digest = self.hasher.hash(password)

            def change(data: dict[str, Any]) -> None:
                if name in data.get("users", {}):
                    data["users"][name]["hash"] = digest

            self.file.update(change)
        return self._user(name, rec)


# --- share links ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    id: str
    scope: str
    """``live`` (the live view) or ``capture`` (one finished capture and its files)."""
    capture_id: str | None
    created: str
    created_by: str
    expires: str | None
    revoked: str | None

    def active(self, at: datetime | None = None) -> bool:
        at = at or now_utc()
        if self.revoked:
            return False
        expires = parse_iso(self.expires)
        return expires is None or at < expires

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "capture_id": self.capture_id,
            "created": self.created,
            "created_by": self.created_by,
            "expires": self.expires,
            "revoked": self.revoked,
            "active": self.active(),
        }


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ShareStore:
    """``<data_dir>/shares.json``: read-only links; only a hash of each token is kept."""

    def __init__(self, data_dir: Path) -> None:
        self.file = JsonFile(Path(data_dir) / SHARES_FILE, lambda: {"version": 1, "shares": {}})

    def _records(self) -> dict[str, dict[str, Any]]:
        shares = self.file.read().get("shares", {})
        return shares if isinstance(shares, dict) else {}

    @staticmethod
    def _share(share_id: str, rec: dict[str, Any]) -> Share:
        return Share(
            id=share_id,
            scope=rec.get("scope", ""),
            capture_id=rec.get("capture_id"),
            created=rec.get("created", ""),
            created_by=rec.get("created_by", ""),
            expires=rec.get("expires"),
            revoked=rec.get("revoked"),
        )

    def create(
        self,
        scope: str,
        capture_id: str | None,
        created_by: str,
        expires_hours: float | None,
    ) -> tuple[str, Share]:
        if scope not in ("live", "capture"):
            raise AccessError("a share link is for the live view or for one capture")
        if scope == "capture" and not capture_id:
            raise AccessError("a capture share link needs a capture id")
        if scope == "live":
            capture_id = None
        if expires_hours is not None and not (0 < expires_hours <= 24 * 366):
            raise AccessError("expires must be between 0 and 8784 hours (one year)")
        token = share_token()
        created = now_utc()
        expires = created + timedelta(hours=expires_hours) if expires_hours else None
        rec = {
            "sha256": token_digest(token),
            "scope": scope,
            "capture_id": capture_id,
            "created": iso(created),
            "created_by": created_by,
            "expires": iso(expires),
            "revoked": None,
        }

        def change(data: dict[str, Any]) -> str:
            shares = data.setdefault("shares", {})
            share_id = secrets.token_hex(4)
            while share_id in shares:
                share_id = secrets.token_hex(4)
            shares[share_id] = rec
            return share_id

        share_id = self.file.update(change)
        return token, self._share(share_id, rec)

    def get(self, share_id: str) -> Share | None:
        rec = self._records().get(share_id)
        return self._share(share_id, rec) if isinstance(rec, dict) else None

    def by_token(self, token: str) -> Share | None:
        if not isinstance(token, str) or not token:
            return None
        digest = token_digest(token)
        for share_id, rec in self._records().items():
            if isinstance(rec, dict) and secrets.compare_digest(rec.get("sha256", ""), digest):
                return self._share(share_id, rec)
        return None

    def active(self, share_id: str) -> Share | None:
        share = self.get(share_id) if isinstance(share_id, str) else None
        return share if share is not None and share.active() else None

    def list(self) -> list[Share]:
        shares = [self._share(i, r) for i, r in self._records().items() if isinstance(r, dict)]
        return sorted(shares, key=lambda s: s.created)

    def revoke(self, token_or_id: str) -> Share:
        """Revoke by the token itself or by the share's id."""
        share = self.by_token(token_or_id) or self.get(token_or_id)
        if share is None:
            raise AccessError("no share link with that token or id")

        def change(data: dict[str, Any]) -> None:
            rec = data.setdefault("shares", {}).get(share.id)
            if rec is None:
                raise AccessError("no share link with that token or id")
            rec["revoked"] = rec.get("revoked") or iso(now_utc())

        self.file.update(change)
        revoked = self.get(share.id)
        assert revoked is not None
        return revoked
