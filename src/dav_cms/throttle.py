"""Login throttling: failed logins per login name and per client address, in SQL.

Each scope ("login", "address") has a row per key in ``login_failures``: how
many failures in a row, when the last one was, and until when further attempts
are refused unchecked. The first ``free`` failures cost nothing; every further
one blocks the key for ``first_delay * 2**n`` seconds (n = 0, 1, 2 ...), at most
``max_delay``. A counter whose last failure is older than ``forget_after``
starts again from zero, and such rows are deleted whenever a failure is written
(one indexed DELETE), so the table stays as small as the current attacks.

Every server process reads and writes the same rows, so a block made by one
process holds on all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dav_cms.db.models import LoginFailure

__all__ = [
    "ADDRESS",
    "LOGIN",
    "Policy",
    "Standing",
    "clear_login",
    "forget",
    "keys",
    "read",
    "record_failure",
]

LOGIN = "login"
ADDRESS = "address"
_KEY_LENGTH = 320


@dataclass(frozen=True)
class Policy:
    """How hard to throttle (see the module docstring); ``enabled`` False: never."""

    enabled: bool = True
    login_failures: int = 5
    address_failures: int = 20
    first_delay: float = 1.0
    max_delay: float = 900.0
    forget_after: float = 86400.0

    def free(self, scope: str) -> int:
        """Failures of ``scope`` that block nothing."""
        return self.login_failures if scope == LOGIN else self.address_failures

    def block_ms(self, scope: str, failures: int) -> int:
        """How long (ms) the ``failures``-th failure in a row blocks its key."""
        beyond = failures - self.free(scope)
        if beyond <= 0:
            return 0
        # Exponent capped so the float never overflows; max_delay caps the result.
        seconds = min(self.first_delay * 2.0 ** min(beyond - 1, 60), self.max_delay)
        return int(seconds * 1000)


@dataclass(frozen=True)
class Standing:
    """The throttling rows of one attempt, as read before checking the password."""

    blocked_until: int = 0  # epoch ms, 0: not blocked
    login_failures: int = 0  # failures of the login in a row (0: no row)

    def retry_after(self, now_ms: int) -> int:
        """Whole seconds until the block ends (0: not blocked)."""
        remaining = self.blocked_until - now_ms
        return 0 if remaining <= 0 else -(-remaining // 1000)


def _key(value: str) -> str:
    # Cut to the column; NUL (refused by PostgreSQL) stands for itself as U+FFFD.
    return value.replace("\x00", "\ufffd")[:_KEY_LENGTH]


def keys(login: str, address: str) -> list[tuple[str, str]]:
    """The (scope, key) rows an attempt by ``login`` from ``address`` counts on."""
    found = [(LOGIN, _key(login))]
    if address:
        found.append((ADDRESS, _key(address)))
    return found


def read(session: Session, login: str, address: str) -> Standing:
    """The current standing of ``login`` and ``address`` (one indexed SELECT)."""
    wanted = keys(login, address)
    rows = session.execute(
        select(LoginFailure.scope, LoginFailure.failures, LoginFailure.blocked_until).where(
            or_(*(and_(LoginFailure.scope == s, LoginFailure.key == k) for s, k in wanted))
        )
    ).all()
    blocked = max((row.blocked_until for row in rows), default=0)
    login_failures = sum(row.failures for row in rows if row.scope == LOGIN)
    return Standing(blocked, login_failures)


def _insert(session: Session) -> Any:  # noqa: ANN401 - the dialect's Insert
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(LoginFailure)
    return sqlite.insert(LoginFailure)


def record_failure(session: Session, policy: Policy, login: str, address: str, now_ms: int) -> int:
    """Count a failure of ``login`` from ``address``; returns the resulting block (epoch ms).

    Atomic per row (``INSERT ... ON CONFLICT DO UPDATE``), so concurrent
    failures on several processes all count.
    """
    forget_before = now_ms - int(policy.forget_after * 1000)
    blocked_until = 0
    for scope, key in keys(login, address):
        stmt = _insert(session).values(
            scope=scope, key=key, failures=1, last_failure_at=now_ms, blocked_until=0
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope", "key"],
            set_={
                "failures": case(
                    (LoginFailure.last_failure_at < forget_before, 1),
                    else_=LoginFailure.failures + 1,
                ),
                "last_failure_at": now_ms,
            },
        ).returning(LoginFailure.failures, LoginFailure.blocked_until)
        failures, until = session.execute(stmt).one()
        block = policy.block_ms(scope, failures)
        if block and now_ms + block > until:
            until = now_ms + block
            session.execute(
                update(LoginFailure)
                .where(LoginFailure.scope == scope, LoginFailure.key == key)
                .values(blocked_until=until)
            )
        blocked_until = max(blocked_until, until)
    forget(session, policy, now_ms)
    return blocked_until


def forget(session: Session, policy: Policy, now_ms: int) -> None:
    """Delete rows whose last failure is older than ``forget_after`` and not blocking."""
    cutoff = now_ms - int(policy.forget_after * 1000)
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.last_failure_at < cutoff, LoginFailure.blocked_until <= now_ms
        )
    )


def clear_login(session: Session, login: str) -> None:
    """Forget the failures of ``login`` (after it logged in successfully)."""
    session.execute(
        delete(LoginFailure).where(LoginFailure.scope == LOGIN, LoginFailure.key == _key(login))
    )
