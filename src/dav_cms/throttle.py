"""Login throttling: failed logins per login, per client address and per both, in SQL.

Three scopes count failures, each with a row per key in ``login_failures``
(how many failures, when the last one was, until when attempts are refused
unchecked):

``pair`` (a login at one address)
    The first ``login_failures`` failures cost nothing; every further one
    blocks that login *at that address* for ``first_delay * 2**n`` seconds
    (n = 0, 1, 2 ...), at most ``max_delay``. The same login from another
    address is not affected, so hammering a login locks out the hammering
    address only.
``address``
    The same with ``address_failures`` free failures, for every login tried
    from the address (guessing many logins from one address).
``login`` (a login from all addresses together)
    Blocks nothing by time. While it holds ``login_total_failures`` or more,
    the login is *under attack*: an address that failed this login within
    ``forget_after`` (and has not logged in since) is refused; an address
    that has not failed it is checked as usual. Guessing one login from many
    addresses thus gets one guess per address.

Counters decay: every whole ``decay`` seconds since a key's last failure
forgive one failure of it, and a counter whose last failure is older than
``forget_after`` starts from zero. A counter never exceeds the failures
needed to reach ``max_delay`` (:meth:`Policy.cap`), so after any burst the
next failure is free again after at most ``(steps + 1) * decay`` seconds of
quiet (3 hours with the defaults). Attempts refused unchecked are not counted:
they cannot lengthen a block.

Rows older than ``forget_after`` and not blocking are deleted whenever a
failure is written (one indexed DELETE). Every server process reads and writes
the same rows, so a block made by one process holds on all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import BigInteger, and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from dav_cms.db.models import LoginFailure

__all__ = [
    "ADDRESS",
    "LOGIN",
    "PAIR",
    "Policy",
    "Standing",
    "clear_pair",
    "forget",
    "keys",
    "read",
    "record_failure",
]

LOGIN = "login"
ADDRESS = "address"
PAIR = "pair"
_KEY_LENGTH = 320


@dataclass(frozen=True)
class Policy:
    """How hard to throttle (see the module docstring); ``enabled`` False: never."""

    enabled: bool = True
    login_failures: int = 5
    address_failures: int = 20
    login_total_failures: int = 100
    first_delay: float = 1.0
    max_delay: float = 900.0
    decay: float = 900.0
    forget_after: float = 86400.0

    def free(self, scope: str) -> int:
        """Failures of ``scope`` that block nothing (for ``login``: before it is under attack)."""
        if scope == PAIR:
            return self.login_failures
        if scope == ADDRESS:
            return self.address_failures
        return self.login_total_failures

    def steps(self) -> int:
        """Failures beyond the free ones until a block reaches ``max_delay``."""
        if self.first_delay <= 0 or self.first_delay >= self.max_delay:
            return 1
        return 1 + min(math.ceil(math.log2(self.max_delay / self.first_delay)), 60)

    def cap(self, scope: str) -> int:
        """The most failures a counter of ``scope`` holds."""
        return self.free(scope) + self.steps()

    def block_ms(self, scope: str, failures: int) -> int:
        """How long (ms) the ``failures``-th failure in a row blocks its key."""
        beyond = failures - self.free(scope)
        if scope == LOGIN or beyond <= 0:
            return 0
        # Exponent capped so the float never overflows; max_delay caps the result.
        seconds = min(self.first_delay * 2.0 ** min(beyond - 1, 60), self.max_delay)
        return int(seconds * 1000)

    def effective(self, failures: int, last_failure_at: int, now_ms: int) -> int:
        """A counter's failures at ``now_ms`` after decay (0 once forgotten)."""
        elapsed = now_ms - last_failure_at
        if elapsed > self.forget_after * 1000:
            return 0
        if self.decay <= 0:
            return failures
        return max(0, failures - int(elapsed // (self.decay * 1000)))


class _Row(NamedTuple):
    failures: int
    last_failure_at: int
    blocked_until: int


@dataclass(frozen=True)
class Standing:
    """The throttling rows of one attempt, as read before checking the password."""

    blocked_until: int = 0  # epoch ms, 0: not refused
    pair_failures: int = 0  # failures of the login at this address (0: no row)
    # The scope that refuses longest: PAIR, ADDRESS, or LOGIN (under attack).
    scope: str = ""
    # The address, or the login at it, has used up its free failures (the next
    # failure blocks): one check at a time for it (see dav_cms.login).
    suspect: bool = False

    def retry_after(self, now_ms: int) -> int:
        """Whole seconds until the refusal ends (0: not refused)."""
        remaining = self.blocked_until - now_ms
        return 0 if remaining <= 0 else -(-remaining // 1000)


def _key(value: str) -> str:
    # Cut to the column; NUL (refused by PostgreSQL) stands for itself as U+FFFD.
    return value.replace("\x00", "\ufffd")[:_KEY_LENGTH]


def keys(login: str, address: str) -> list[tuple[str, str]]:
    """The (scope, key) rows an attempt by ``login`` from ``address`` counts on.

    A pair's key is the address, a space and the login (an address has no
    space, so the key is unambiguous; only an over-long login is cut).
    """
    found = [(PAIR, _key(f"{address} {login}")), (LOGIN, _key(login))]
    if address:
        found.append((ADDRESS, _key(address)))
    return found


def read(session: Session, policy: Policy, login: str, address: str, now_ms: int) -> Standing:
    """The current standing of ``login`` at ``address`` (one indexed SELECT)."""
    wanted = keys(login, address)
    rows = {
        row.scope: _Row(row.failures, row.last_failure_at, row.blocked_until)
        for row in session.execute(
            select(
                LoginFailure.scope,
                LoginFailure.failures,
                LoginFailure.last_failure_at,
                LoginFailure.blocked_until,
            ).where(or_(*(and_(LoginFailure.scope == s, LoginFailure.key == k) for s, k in wanted)))
        )
    }
    pair = rows.get(PAIR)
    until = {scope: row.blocked_until for scope, row in rows.items() if scope != LOGIN}
    until[LOGIN] = _attack_until(policy, pair, rows.get(LOGIN), now_ms)
    scope = max(until, key=lambda name: until[name])
    refused = until[scope] > now_ms
    return Standing(
        until[scope] if refused else 0,
        pair.failures if pair is not None else 0,
        scope if refused else "",
        any(
            policy.effective(row.failures, row.last_failure_at, now_ms) >= policy.free(scope)
            for scope, row in rows.items()
            if scope != LOGIN
        ),
    )


def _attack_until(policy: Policy, pair: _Row | None, total: _Row | None, now_ms: int) -> int:
    """Until when (epoch ms) the pair is refused because its login is under attack (0: not)."""
    forget_ms = int(policy.forget_after * 1000)
    if pair is None or total is None or pair.last_failure_at < now_ms - forget_ms:
        return 0
    effective = policy.effective(total.failures, total.last_failure_at, now_ms)
    if effective < policy.login_total_failures:
        return 0
    if policy.decay > 0:
        # Decayed below the threshold (the failures above it, plus one, forgiven).
        ends = total.last_failure_at + int(
            (total.failures - policy.login_total_failures + 1) * policy.decay * 1000
        )
    else:
        ends = total.last_failure_at + forget_ms
    # ... or once this address's failure of the login is forgotten; a second at least.
    return max(min(ends, pair.last_failure_at + forget_ms), now_ms + 1000)


def _insert(session: Session) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT of a row (both have ``on_conflict_do_update``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(LoginFailure)
    return sqlite.insert(LoginFailure)


def _counted(policy: Policy, scope: str, now_ms: int) -> ColumnElement[int]:
    """The row's failures after one more at ``now_ms``: decayed, plus one, capped."""
    forget_before = now_ms - int(policy.forget_after * 1000)
    kept: ColumnElement[int] = LoginFailure.failures.expression
    if policy.decay > 0:
        decay_ms = max(1, int(policy.decay * 1000))
        elapsed = literal(now_ms, BigInteger) - LoginFailure.last_failure_at
        kept = LoginFailure.failures - elapsed // decay_ms
    cap = policy.cap(scope)
    return case(
        (LoginFailure.last_failure_at < forget_before, 1),
        (kept < 1, 1),
        (kept >= cap, cap),
        else_=kept + 1,
    )


def record_failure(session: Session, policy: Policy, login: str, address: str, now_ms: int) -> int:
    """Count a failure of ``login`` from ``address``; returns the resulting block (epoch ms).

    Atomic per row (``INSERT ... ON CONFLICT DO UPDATE``), so concurrent
    failures on several processes all count.
    """
    blocked_until = 0
    for scope, key in keys(login, address):
        insert = _insert(session).values(
            scope=scope, key=key, failures=1, last_failure_at=now_ms, blocked_until=0
        )
        upsert = insert.on_conflict_do_update(
            index_elements=["scope", "key"],
            set_={"failures": _counted(policy, scope, now_ms), "last_failure_at": now_ms},
        ).returning(LoginFailure.failures, LoginFailure.blocked_until)
        failures, until = session.execute(upsert).one()
        block = policy.block_ms(scope, failures)
        if block and now_ms + block > until:
            until = now_ms + block
            session.execute(
                update(LoginFailure)
                .where(LoginFailure.scope == scope, LoginFailure.key == key)
                .values(blocked_until=until)
            )
        if scope != LOGIN:
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


def clear_pair(session: Session, login: str, address: str) -> None:
    """Forget the failures of ``login`` at ``address`` (after it logged in there).

    The address's counter and the login's total stay: one valid account cannot
    clear an attacker's address, nor the victim's success an attack on it.
    """
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.scope == PAIR, LoginFailure.key == _key(f"{address} {login}")
        )
    )
