"""The address books a user may read, each with the path the user reaches it by.

The decision is the access policy's (:mod:`dav_cms.policy`), the one the
server asks: :func:`dav_cms.policy.decide` (what ``[rights] type =
dav_cms.rights`` answers) for the user's own address books, company address
books and, for administrators, every address book; for a map share, the
policy's share matching (:func:`dav_cms.policy.shares.shared_with`) and the
access check Radicale makes (the owner's rights on the shared collection,
intersected with the share's permissions). Token links belong to no user and are left out, as are
shares that turn an address book into something else (``Conversion`` such as
``bday``): through them the user cannot read the cards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from radicale import pathutils
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dav_cms import groups, shares
from dav_cms.db.models import Collection, CollectionGrant, Group, GroupMember, Share, User
from dav_cms.names import COMPANY_ROOT
from dav_cms.policy import rights
from dav_cms.policy import shares as policy_shares

ADDRESSBOOK = "VADDRESSBOOK"
# Shares through which the cards are read as they are.
PLAIN_CONVERSIONS = frozenset({"", "none"})


@dataclass(frozen=True)
class Readable:
    """An address book ``login`` may read: its row id and the path the user sees."""

    collection_id: int
    path: str


def readable_addressbooks(session: Session, login: str) -> dict[int, Readable]:
    """Every address book ``login`` may read, by collection id (direct access before shares)."""
    found: dict[int, Readable] = {}

    def session_of() -> AbstractContextManager[Session]:
        return nullcontext(session)

    for collection_id, path in _direct_candidates(session, login):
        slashed = pathutils.unstrip_path(path, True)
        if "r" in rights.decide(login, slashed, session_of):
            found.setdefault(collection_id, Readable(collection_id, slashed))
    for collection_id, seen_as in _shared(session, login, session_of):
        found.setdefault(collection_id, Readable(collection_id, seen_as))
    return found


def _direct_candidates(session: Session, login: str) -> Iterator[tuple[int, str]]:
    """Address books the rights may allow without a share (the rights decide)."""
    books = select(Collection.id, Collection.path).where(Collection.tag == ADDRESSBOOK)
    if rights.is_admin(session, login):
        yield from session.execute(books.order_by(Collection.path))
        return
    if login != COMPANY_ROOT:
        own = books.where(Collection.path.startswith(f"{login}/", autoescape=True))
        yield from session.execute(own.order_by(Collection.path))
    company = (
        books.join(CollectionGrant, CollectionGrant.collection_id == Collection.id)
        .join(GroupMember, GroupMember.group_id == CollectionGrant.group_id)
        .join(Group, Group.id == GroupMember.group_id)
        .join(User, User.id == GroupMember.user_id)
        .where(User.login == login)
        .distinct()
        .order_by(Collection.path)
    )
    yield from session.execute(company)


def _shared(
    session: Session, login: str, session_of: rights.SessionOpener
) -> Iterator[tuple[int, str]]:
    """(collection id, path in the user's home) of the address books shared with ``login``."""
    member_of = frozenset(groups.groups_of(session, login))
    # The policy's matching decides; SQL only skips rows for other single users.
    candidates = select(Share).where(
        Share.share_type == "map",
        or_(
            Share.user == login,
            Share.user.startswith(shares.GROUP_PREFIX, autoescape=True),
            Share.user.startswith(shares.REALM_PREFIX, autoescape=True),
        ),
    )
    records = [shares.to_record(row) for row in session.scalars(candidates.order_by(Share.id))]
    for record in policy_shares.shared_with(records, login, member_of):
        if record["EnabledByOwner"] is not True or record["EnabledByUser"] is not True:
            continue
        if record["Conversion"] not in PLAIN_CONVERSIONS:
            continue
        owner_letters = rights.decide(record["Owner"], record["PathMapped"], session_of)
        if "r" not in set(owner_letters) & set(record["Permissions"]):
            continue
        collection_id = session.scalar(
            select(Collection.id).where(
                Collection.path == pathutils.strip_path(record["PathMapped"]),
                Collection.tag == ADDRESSBOOK,
            )
        )
        if collection_id is not None:
            yield collection_id, record["PathOrToken"]
