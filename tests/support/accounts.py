"""Test users: one password for all, and argon2id at its smallest cost (the tests are about who
may do what, not about how slow a guess is)."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher

from webapp.web.access.accounts import UserStore

PASSWORD = "correct horse battery"


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def add_users(data_dir: Path, roles: dict[str, str], password: str = PASSWORD) -> UserStore:
    """Users ``{name: role}`` in ``data_dir``'s user store, all with ``password``."""
    users = UserStore(data_dir, hasher=cheap_hasher())
    for name, role in roles.items():
        users.add(name, role, password)
    return users
