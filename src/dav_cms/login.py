"""A DAV login: throttling, the main password or an app password, the audit rows.

:class:`LoginChecker` is what the auth plugin asks. One attempt costs one read
transaction (the throttling rows, the account and at most one app password
picked by its prefix) and exactly one argon2 verification whatever the outcome,
so an unknown login, a disabled account, a barred main password and a wrong
password take the same time and get the same answer. A failure is then counted
in a short write transaction of its own (so it stays counted whatever happens to
the request); a success writes only when something changed.

An attempt refused by the throttle costs that one read: no argon2 check, and
the ``login.throttled`` audit row is written once per key and block, not on
every refused attempt. One attempt at a time per client address is checked per
process, so parallel guesses from one address cannot run many argon2 checks at
once: a second attempt waits for the running one (at most :data:`CHECK_WAIT`
seconds, then it is checked anyway), or, once the login at that address or the
address has used up its free failures, is refused at once (429, Retry-After 1,
not counted).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from dav_cms import app_passwords, audit, passwords, throttle
from dav_cms.accounts import MAX_LOGIN_LENGTH, _transaction
from dav_cms.db.models import AppPassword, User

logger = logging.getLogger(__name__)

# last_used_at of an app password is written at most this often.
LAST_USED_GRANULARITY = timedelta(seconds=60)
_SUCCESS_MEMO_LIMIT = 10_000
_THROTTLED_MEMO_LIMIT = 10_000
# Seconds an attempt waits for the running check from its address while that
# address has free failures left (then it is checked anyway); without any
# left it is refused at once.
CHECK_WAIT = 5.0

__all__ = ["LoginChecker", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """The answer to one login attempt."""

    user: str = ""  # the login when accepted, else ""
    retry_after: int = 0  # > 0: refused unchecked, blocked for this many seconds
    credential: str = ""  # "password" or "app-password"
    label: str = ""  # the app password's label


@dataclass(frozen=True)
class _Account:
    user_id: int
    password_hash: str
    dav_main_password: bool
    # (id, label, hash, last_used_at) of app passwords whose prefix matches.
    candidates: tuple[tuple[int, str, str, datetime | None], ...]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LoginChecker:
    """Checks DAV logins against one database with one throttling policy."""

    def __init__(self, url: str, policy: throttle.Policy, success_interval: float = 3600.0) -> None:
        self.url = url
        self.policy = policy
        # login.success is recorded once per (login, address, credential) and
        # interval per process, not on every request (clients log in on each one).
        self.success_interval = success_interval
        self._recorded: dict[tuple[str, str, str], float] = {}
        # login.throttled is recorded once per (login, address) and block.
        self._throttled_until: dict[tuple[str, str], int] = {}
        # Addresses whose attempt is being checked now (one at a time each).
        self._checking: set[str] = set()
        self._checks_done = threading.Condition(threading.Lock())
        self._lock = threading.Lock()

    def check(self, login: str, password: str, address: str) -> Outcome:
        """Accept or refuse ``login`` with ``password`` from ``address``."""
        now_ms = _now_ms()
        standing = throttle.Standing()
        account: _Account | None = None
        with _transaction(self.url) as session:
            if self.policy.enabled:
                standing = throttle.read(session, self.policy, login, address, now_ms)
            if (
                not standing.retry_after(now_ms)
                and len(login) <= MAX_LOGIN_LENGTH
                and "\x00" not in login
            ):
                account = self._account(session, login, password)
        retry_after = standing.retry_after(now_ms)
        if retry_after:
            self._throttled(login, address, standing, retry_after)
            return Outcome(retry_after=retry_after)
        guarded = bool(address) and self._claim(address, 0.0 if standing.suspect else CHECK_WAIT)
        if standing.suspect and address and not guarded:
            # One check at a time from an address without free failures left:
            # parallel guesses cost no argon2 check each, and are not counted.
            logger.debug(
                "Login of %r from %s refused: a check from there is running", login, address
            )
            return Outcome(retry_after=1)
        try:
            outcome, new_hash = self._verify(login, password, account)
            if outcome.user:
                assert account is not None
                self._succeeded(outcome, account, standing, address, new_hash)
            else:
                self._failed(login, address, now_ms)
        finally:
            if guarded:
                with self._checks_done:
                    self._checking.discard(address)
                    self._checks_done.notify_all()
        return outcome

    def _claim(self, address: str, wait: float) -> bool:
        """Mark a check from ``address`` as running, waiting up to ``wait`` s for one running."""
        with self._checks_done:
            if not self._checks_done.wait_for(lambda: address not in self._checking, wait):
                return False
            self._checking.add(address)
            return True

    # -- reading ----------------------------------------------------------

    @staticmethod
    def _account(session: Session, login: str, password: str) -> _Account | None:
        """The enabled account ``login`` with the app passwords its prefix picks, or None."""
        prefix = (
            app_passwords.prefix_of(password) if app_passwords.looks_like_secret(password) else ""
        )
        rows = session.execute(
            select(
                User.id,
                User.password_hash,
                User.disabled,
                User.dav_main_password,
                AppPassword.id.label("app_id"),
                AppPassword.label,
                AppPassword.password_hash.label("app_hash"),
                AppPassword.last_used_at,
            )
            .outerjoin(
                AppPassword,
                and_(AppPassword.user_id == User.id, AppPassword.prefix == prefix),
            )
            .where(User.login == login)
        ).all()
        if not rows or rows[0].disabled:
            return None
        first = rows[0]
        candidates = tuple(
            (row.app_id, row.label, row.app_hash, row.last_used_at)
            for row in rows
            if row.app_id is not None
        )
        return _Account(first.id, first.password_hash, first.dav_main_password, candidates)

    # -- verifying --------------------------------------------------------

    @staticmethod
    def _verify(login: str, password: str, account: _Account | None) -> tuple[Outcome, str | None]:
        """Exactly one argon2 verification (two only for a clash of prefixes)."""
        if account is None:
            passwords.dummy_verify(password)
            return Outcome(), None
        if account.candidates:
            # The password has an app password's form and prefix: it is not the
            # main password (whose check would cost a second hash).
            for _app_id, label, app_hash, _used in account.candidates:
                if passwords.verify_password(password, app_hash)[0]:
                    return Outcome(user=login, credential="app-password", label=label), None
            return Outcome(), None
        if not account.dav_main_password:
            passwords.dummy_verify(password)
            return Outcome(), None
        matches, new_hash = passwords.verify_password(password, account.password_hash)
        if matches:
            return Outcome(user=login, credential="password"), new_hash
        return Outcome(), None

    # -- recording ----------------------------------------------------------

    def _throttled(
        self, login: str, address: str, standing: throttle.Standing, retry_after: int
    ) -> None:
        """Audit and log a refused attempt, once per block of its (login, address)."""
        key = (login, address)
        with self._lock:
            if self._throttled_until.get(key) == standing.blocked_until:
                return
            if len(self._throttled_until) >= _THROTTLED_MEMO_LIMIT:
                self._throttled_until.clear()
            self._throttled_until[key] = standing.blocked_until
        detail = {"retry_after": retry_after, "scope": standing.scope}
        with _transaction(self.url, write=True) as session:
            audit.record_as(session, "", address, "login.throttled", login, detail)
        logger.warning(
            "Login of %r from %s refused unchecked (%s): blocked for %d s",
            login,
            address,
            standing.scope,
            retry_after,
        )

    def _failed(self, login: str, address: str, now_ms: int) -> None:
        with _transaction(self.url, write=True) as session:
            detail: dict[str, Any] = {}
            if self.policy.enabled:
                until = throttle.record_failure(session, self.policy, login, address, now_ms)
                if until > now_ms:
                    detail["blocked_for"] = -(-(until - now_ms) // 1000)
            audit.record_as(session, "", address, "login.failure", login, detail)

    def _succeeded(
        self,
        outcome: Outcome,
        account: _Account,
        standing: throttle.Standing,
        address: str,
        new_hash: str | None,
    ) -> None:
        now = datetime.now(UTC)
        stale_app = [
            app_id
            for app_id, label, _hash, used in account.candidates
            if label == outcome.label and (used is None or _utc(used) < now - LAST_USED_GRANULARITY)
        ]
        record = self._success_due(outcome, address)
        if not (standing.pair_failures or stale_app or new_hash or record):
            return
        with _transaction(self.url, write=True) as session:
            if standing.pair_failures:
                throttle.clear_pair(session, outcome.user, address)
            if stale_app and outcome.credential == "app-password":
                session.execute(
                    update(AppPassword)
                    .where(AppPassword.id.in_(stale_app))
                    .values(last_used_at=now)
                )
            if new_hash:
                # Only if unchanged meanwhile: a concurrent `user passwd` wins.
                session.execute(
                    update(User)
                    .where(User.id == account.user_id, User.password_hash == account.password_hash)
                    .values(password_hash=new_hash)
                )
            if record:
                detail = {"credential": outcome.credential}
                if outcome.label:
                    detail["label"] = outcome.label
                audit.record_as(
                    session, outcome.user, address, "login.success", outcome.user, detail
                )
        if new_hash:
            logger.info("Rehashed the password of %r with the current parameters", outcome.user)

    def _success_due(self, outcome: Outcome, address: str) -> bool:
        key = (outcome.user, address, outcome.label)
        now = time.monotonic()
        with self._lock:
            last = self._recorded.get(key)
            if last is not None and now - last < self.success_interval:
                return False
            if len(self._recorded) >= _SUCCESS_MEMO_LIMIT:
                self._recorded.clear()
            self._recorded[key] = now
            return True


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
