"""Password hashing: argon2 through passlib, rehashed when the parameters change.

Nothing here logs a password, a hash or anything derived from them.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import threading

from passlib.context import CryptContext
from passlib.exc import PasswordValueError, UnknownHashError

logger = logging.getLogger(__name__)

# passlib's argon2 defaults (argon2id, t=3, m=64 MiB, p=4). A hash made with other
# parameters still verifies and is flagged for rehashing (``needs_update``).
_CONTEXT = CryptContext(schemes=["argon2"])

# Verified credentials of this process: stored hash -> keyed digest of the password
# that matched it. DAV clients send the password with every request and argon2 is
# (deliberately) slow, so a password already proven against *this exact stored
# hash* is not hashed again. The answer never changes: a new password or a rehash
# stores a new hash (a miss), a disabled account is refused before we get here,
# and a wrong password is always checked by argon2.
_MEMO_KEY = secrets.token_bytes(32)
_MEMO_LIMIT = 10_000
_memo: dict[str, str] = {}
_memo_lock = threading.Lock()


def _digest(password: str) -> str:
    return hmac.new(_MEMO_KEY, password.encode("utf-8", "surrogatepass"), "sha256").hexdigest()


def hash_password(password: str) -> str:
    """Hash ``password`` with the current argon2 parameters.

    Args:
        password: The clear-text password (not empty).

    Returns:
        The hash in PHC string format (``$argon2id$...``).

    Raises:
        ValueError: The password is too long for passlib (over 4096 bytes).
    """
    try:
        return str(_CONTEXT.hash(password))
    except PasswordValueError as exc:
        msg = f"unusable password: {exc}"
        raise ValueError(msg) from None


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Check ``password`` against ``password_hash``.

    Args:
        password: The clear-text password to check.
        password_hash: The stored hash.

    Returns:
        ``(matches, new_hash)``: ``new_hash`` is a fresh hash of the password when
        it matched and the stored hash uses outdated parameters, else None.
    """
    digest = _digest(password)
    with _memo_lock:
        remembered = _memo.get(password_hash)
    if remembered is not None and hmac.compare_digest(remembered, digest):
        return True, None
    try:
        matches, new_hash = _CONTEXT.verify_and_update(password, password_hash)
    except UnknownHashError:
        logger.warning("A stored password hash is not argon2; that account cannot log in")
        return False, None
    except PasswordValueError:
        # Too long to hash: it cannot match anything we stored.
        return False, None
    if matches and not new_hash:
        with _memo_lock:
            if len(_memo) >= _MEMO_LIMIT:
                _memo.clear()
            _memo[password_hash] = digest
    return bool(matches), (str(new_hash) if new_hash else None)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random secret, made once per process with the current parameters."""
    return hash_password(secrets.token_urlsafe(32))


def dummy_verify(password: str) -> None:
    """Spend the time of a real verification, for unknown or disabled accounts.

    Args:
        password: The password that was offered (checked against a dummy hash).
    """
    verify_password(password, _dummy_hash())


def warm_up() -> None:
    """Create the dummy hash now, so the first refused login takes no longer than others."""
    _dummy_hash()
