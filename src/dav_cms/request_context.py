"""Who is asking and from where, for the request running on this thread.

The WSGI layer :mod:`dav_cms.web.context` opens a :class:`RequestState` at the
start of every request and closes it at the end; the auth plugin fills in the
logged-in user (or the throttling verdict) and :mod:`dav_cms.audit` reads the
actor and address from it. Outside a request (the ``dav-cms`` command, a script
using the domain functions) the actor is ``cli:<operating-system user>``.
"""

from __future__ import annotations

import contextvars
import functools
import getpass
from dataclasses import dataclass

__all__ = ["RequestState", "actor_and_address", "begin", "current", "end"]


@dataclass
class RequestState:
    """What one request has learned about its client."""

    # Client address (REMOTE_ADDR, or the forwarded one behind a trusted proxy).
    address: str
    # The login that authenticated, "" while anonymous.
    user: str = ""
    # Seconds until the login or address may try again; > 0 when the auth plugin
    # refused the request unchecked because of login throttling.
    retry_after: int = 0
    # The credentials the auth plugin checked in this request (login, password
    # digest): asked again for the same ones, it answers without a second check.
    checked: tuple[str, bytes] | None = None
    # The groups of the logged-in user, as the auth plugin handed them to Radicale.
    groups: frozenset[str] = frozenset()


_current: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "dav_cms_request", default=None
)


def begin(address: str) -> RequestState:
    """Open the state of a new request (replacing any left over on this thread)."""
    state = RequestState(address)
    _current.set(state)
    return state


def end() -> None:
    """Close the request's state: nothing of it reaches the next request."""
    _current.set(None)


def current() -> RequestState | None:
    """The state of the request running here, or None outside a request."""
    return _current.get()


@functools.cache
def cli_actor() -> str:
    """``cli:<operating-system user>``: the actor of everything done outside a request."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in the environment or passwd database
        name = "unknown"
    return f"cli:{name}"


def actor_and_address() -> tuple[str, str]:
    """(actor, address) of the change being made now."""
    state = current()
    if state is None:
        return cli_actor(), ""
    return state.user, state.address
