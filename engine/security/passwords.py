"""Password and client-secret hashing with argon2id (RFC 9106 parameters).

Only hashes are stored. Verifying an unknown name still costs one full hash (against a
dummy), so response time does not tell an attacker which names exist.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.core.errors import RuleRefused

MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()  # argon2id, time 3, memory 64 MiB, parallelism 4


def configure(time_cost: int, memory_kib: int) -> None:
    """Set the cost of new hashes for this process (settings password_hash_*).

    Existing hashes keep verifying (each names its own parameters) and are re-hashed at the
    next successful sign-in when weaker than these.
    """
    global _hasher
    if (time_cost, memory_kib) != (_hasher.time_cost, _hasher.memory_cost):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _dummy_hash.cache_clear()


class WeakPassword(RuleRefused, ValueError):
    """The password is refused before hashing (too short, blank)."""


def check_strength(password: str) -> None:
    if not password or not password.strip():
        raise WeakPassword("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone: equalises timing")


def verify(stored: str | None, secret: str) -> bool:
    """True when `secret` matches `stored`; with no stored hash, spend the same time and fail."""
    try:
        return _hasher.verify(stored or _dummy_hash(), secret) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
