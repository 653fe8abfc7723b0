"""Who may share what, with whom: one policy for ``dav-cms share`` and the HTTP API.

The rules (the README's "Security model" says the same to users):

* Only a collection's owner shares it, and only a calendar or an address book
  of their own home (``/LOGIN/NAME/``). Company collections (``/_groups/...``)
  are never shared: access to them is a group grant (``dav-cms group
  add-member``), and a share of one could not work (its "owner" is no user).
* A share's permissions are read (``r``) or read and write (``rw``), plus the
  flags of Radicale's properties overlay (``P p E e l``) and the read variants
  ``i`` and ``f``. Letters that grant more than writing items (``D`` delete,
  ``O`` replace, ``T``/``M`` share further, ``R``/``W`` folders) are refused.
* A link (token share) that can write lets anyone holding it change the
  collection without logging in: it needs explicit consent
  (``--allow-anonymous-write`` on the command line, ``"AllowAnonymousWrite":
  true`` in an HTTP request).
* A share is never moved to another recipient or another user's collection: an
  update may point it at another calendar or address book of its owner, and
  change its permissions and flags; anything else is revoke and share again.
"""

from __future__ import annotations

from dataclasses import dataclass

from radicale import pathutils
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms.db.models import Collection, Group, User
from dav_cms.names import COMPANY_ROOT

__all__ = [
    "ALLOWED_LETTERS",
    "ShareRefused",
    "check_anonymous_write",
    "check_kind",
    "check_letters",
    "check_owner",
    "check_recipient",
    "shareable",
]

# Letters a share's permissions may hold (see the module's docstring).
ALLOWED_LETTERS = frozenset("rwifPpEel") | frozenset("uU")  # u, U: Radicale's group flags
GROUP_PREFIX = ":"
REALM_PREFIX = "@"
FORBIDDEN = 403
NOT_FOUND = 404
BAD_REQUEST = 400


@dataclass
class ShareRefused(Exception):  # noqa: N818 - a refusal, not a failure
    """The policy refuses: ``status`` is the HTTP answer, ``reason`` says why."""

    status: int
    reason: str

    def __str__(self) -> str:
        return self.reason


def _collection_path(path: str) -> str:
    """``path`` sanitised as ``/a/b/``; ShareRefused(400) when it was not already."""
    sane = pathutils.strip_path(pathutils.sanitize_path(path))
    if not sane or pathutils.unstrip_path(sane, True) != path:
        raise ShareRefused(BAD_REQUEST, f"not a collection path: {path!r}")
    return sane


def check_owner(owner: str, path_mapped: str) -> str:
    """The stripped path of ``path_mapped`` if ``owner`` may share what is there.

    Raises:
        ShareRefused: 403 for a company collection or someone else's path; 400
            for a malformed path.
    """
    sane = _collection_path(path_mapped)
    first = sane.split("/", 1)[0]
    if first == COMPANY_ROOT:
        parts = sane.split("/")
        group = parts[1] if len(parts) > 1 else "GROUP"
        msg = (
            f"{path_mapped} is a company collection: it cannot be shared or linked (such a "
            f"share would be refused on every request). Members of its groups reach it: add "
            f"someone with `dav-cms group add-member {group} LOGIN`, or make a collection for "
            f"another group with `dav-cms collection create --owner-group GROUP ...`"
        )
        raise ShareRefused(FORBIDDEN, msg)
    if first != owner:
        raise ShareRefused(FORBIDDEN, f"{path_mapped} does not belong to {owner!r}")
    return sane


def check_kind(path_mapped: str, tag: str | None) -> None:
    """ShareRefused unless ``tag`` (None: nothing there) is a calendar's or an address book's."""
    if tag is None:
        raise ShareRefused(NOT_FOUND, f"no collection at {path_mapped}")
    if tag not in ("VCALENDAR", "VADDRESSBOOK"):
        msg = f"{path_mapped} is a folder, not a calendar or address book"
        raise ShareRefused(BAD_REQUEST, msg)


def shareable(session: Session, owner: str, path_mapped: str) -> Collection:
    """The calendar or address book at ``path_mapped`` (database), if ``owner`` may share it.

    Raises:
        ShareRefused: as :func:`check_owner` and :func:`check_kind`.
    """
    sane = check_owner(owner, path_mapped)
    collection = session.scalars(select(Collection).where(Collection.path == sane)).one_or_none()
    check_kind(path_mapped, None if collection is None else collection.tag)
    assert collection is not None
    return collection


def check_recipient(
    session: Session,
    owner: str,
    recipient: str,
    *,
    self_share: bool = False,
    users_known: bool = True,
    groups_known: bool = True,
) -> None:
    """A map share's ``User``: an account other than the owner, ``:GROUP[,GROUP]`` or ``@REALM``.

    Args:
        session: Where dav_cms's accounts and groups live.
        owner: The share's owner.
        recipient: The ``User`` value.
        self_share: The owner may be the recipient (a birthday-calendar view of
            their own address book).
        users_known: Logins are dav_cms's accounts (``[auth] type = dav_cms.auth``);
            with Radicale's own auth plugins their existence is not checked.
        groups_known: Groups are dav_cms's (``[group] type = dav_cms.group``).

    Raises:
        ShareRefused: 400 for the owner or an empty value, 404 for no such user or group.
    """
    if recipient.startswith(GROUP_PREFIX):
        for name in recipient[len(GROUP_PREFIX) :].split(","):
            if not name:
                raise ShareRefused(BAD_REQUEST, f"not a group list: {recipient!r}")
            if groups_known and session.scalar(select(Group.id).where(Group.name == name)) is None:
                raise ShareRefused(NOT_FOUND, f"no group {name!r}")
        return
    if recipient.startswith(REALM_PREFIX):
        return  # every login of a realm (Radicale's "@domain" shares)
    if not recipient or (recipient == owner and not self_share):
        raise ShareRefused(BAD_REQUEST, "share with someone other than the owner")
    known = not users_known or recipient == owner
    if not known and session.scalar(select(User.id).where(User.login == recipient)) is None:
        raise ShareRefused(NOT_FOUND, f"no user {recipient!r}")


def check_letters(permissions: str) -> None:
    """ShareRefused(403) when ``permissions`` holds a letter a share may not carry."""
    extra = sorted(set(permissions) - ALLOWED_LETTERS)
    if extra:
        msg = (
            f"a share may read (r) and write items (w); it cannot carry {''.join(extra)!r} "
            f"(deleting, replacing or re-sharing the collection is its owner's alone)"
        )
        raise ShareRefused(FORBIDDEN, msg)


def check_anonymous_write(permissions: str, consent: bool) -> None:
    """ShareRefused(403) for a writable link without explicit consent."""
    if "w" in permissions and not consent:
        msg = (
            "a link that can write lets anyone who has it change the collection without "
            "logging in; ask for it explicitly (--allow-anonymous-write, or "
            '"AllowAnonymousWrite": true over HTTP)'
        )
        raise ShareRefused(FORBIDDEN, msg)
