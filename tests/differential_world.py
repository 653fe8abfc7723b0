"""The changing world of the differential test: collections, items, groups and shares.

A Hypothesis state machine whose rules change the shared database, through the
project's own domain functions (groups, shares) or through Radicale alone
(collections and items, as a client makes them). Every collection path a client
could ask for lands in the ``targets`` bundle: the own collections made, the
paths shares show in recipients' homes (for a group share: in every user's
home, members or not) and token links. The names clash on purpose: ``/bob/alice-a/``
may be Bob's own collection and also where Alice's ``/alice/a/`` appears.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, multiple, rule

from dav_cms import groups, shares
from dav_cms.errors import ConflictError, NotFoundError
from tests import differential_requests as dav
from tests.differential_pair import Pair

USERS = ("alice", "bob", "carol")
# "a", and the name the share of Alice's "a" gets in a recipient's home.
NAMES = ("a", "alice-a")
KINDS = ("addressbook", "calendar")
GROUPS = ("team", "crew")
ITEMS = ("i1", "i2")
PERMISSIONS = ("r", "rw")
SHARE_KINDS = ("group", "user", "token")
# How to share: the kind, the user or group it is for, the permissions.
Sharing = tuple[str, str, str, str]
SHARING = st.tuples(
    st.sampled_from(SHARE_KINDS),
    st.sampled_from(USERS),
    st.sampled_from(GROUPS),
    st.sampled_from(PERMISSIONS),
)
REFUSED = (ValueError, NotFoundError, ConflictError)  # the domain said no: nothing changed


def password(login: str) -> str:
    """The password of a test user."""
    return f"pw of {login}"


@dataclass(frozen=True)
class Target:
    """A collection path a client may ask for, and the kind of what is (or would be) there."""

    path: str
    kind: str

    def item(self, name: str) -> str:
        """The path of the item ``name`` in it."""
        return self.path + name + (".vcf" if self.kind == "addressbook" else ".ics")

    @property
    def home_user(self) -> str | None:
        """The user whose home the path is in (None for a token link)."""
        first = self.path.strip("/").split("/")[0]
        return first if first in USERS else None


class World(RuleBasedStateMachine):
    """The rules that change the database; subclasses add the reads."""

    pair: Pair
    targets = Bundle("targets")

    def __init__(self) -> None:
        super().__init__()
        self.groups: set[str] = set()
        self.group_shares: set[tuple[str, str]] = set()

    @initialize()
    def homes(self) -> None:
        """Every user's principal, made before anything is compared."""
        for login in USERS:
            status = self.pair.write(
                "PROPFIND",
                f"/{login}/",
                dav.propfind([(dav.DAV, "resourcetype")]).encode(),
                login=login,
                password=password(login),
                content_type=dav.XML,
            )
            assert status == 207, status

    @initialize(
        members=st.lists(
            st.tuples(st.sampled_from(GROUPS), st.sampled_from(USERS)), max_size=4, unique=True
        )
    )
    def teams(self, members: list[tuple[str, str]]) -> None:
        """A few groups and members to start from."""
        for group, login in members:
            self._group(group)
            groups.add_member(self.pair.url, group, login)

    @initialize(
        target=targets,
        places=st.lists(
            st.tuples(
                st.sampled_from(USERS),
                st.sampled_from(NAMES),
                st.sampled_from(KINDS),
                st.none() | SHARING,
            ),
            min_size=1,
            max_size=4,
            unique_by=lambda place: place[:2],
        ),
        items=st.lists(st.sampled_from(ITEMS), min_size=1, max_size=2, unique=True),
    )
    def collections(
        self, places: list[tuple[str, str, str, Sharing | None]], items: list[str]
    ) -> object:
        """A few collections with a few items, some shared, to start from."""
        made: list[Target] = []
        for owner, name, kind, _ in places:
            target = self._make(owner, name, kind)
            assert target is not None  # nothing refuses a new name in one's own empty home
            for item in items:
                self._change(target, item, 0)
            made.append(target)
        shown = [
            path
            for target, (*_, sharing) in zip(made, places, strict=True)
            if sharing is not None
            for path in self._share(target, *sharing)
        ]
        return multiple(*made, *shown)

    def teardown(self) -> None:
        """The next example starts from an empty database (but the users)."""
        self.pair.reset()

    @rule(
        target=targets,
        owner=st.sampled_from(USERS),
        name=st.sampled_from(NAMES),
        kind=st.sampled_from(KINDS),
    )
    def make_collection(self, owner: str, name: str, kind: str) -> object:
        """MKCOL of an address book or MKCALENDAR, by the owner."""
        made = self._make(owner, name, kind)
        return multiple() if made is None else made

    def _make(self, owner: str, name: str, kind: str) -> Target | None:
        path = f"/{owner}/{name}/"
        if kind == "calendar":
            method, body = "MKCALENDAR", b""
        else:
            method, body = "MKCOL", dav.MKCOL_ADDRESSBOOK.encode()
        status = self.pair.write(
            method, path, body, login=owner, password=password(owner), content_type=dav.XML
        )
        assert status < 500, status
        return Target(path, kind) if status == 201 else None

    @rule(at=targets, item=st.sampled_from(ITEMS), version=st.integers(-1, 2))
    def change_item(self, at: Target, item: str, version: int) -> None:
        """PUT (a new text per version) or DELETE (version -1), by the user of the home."""
        self._change(at, item, version)

    def _change(self, at: Target, item: str, version: int) -> None:
        login = at.home_user
        if login is None:
            return
        if version < 0:
            method, text, content_type = "DELETE", "", ""
        elif at.kind == "addressbook":
            method, text, content_type = "PUT", dav.vcard(item, version), "text/vcard"
        else:
            method, text, content_type = "PUT", dav.event(item, version), "text/calendar"
        status = self.pair.write(
            method,
            at.item(item),
            text.encode(),
            login=login,
            password=password(login),
            content_type=content_type,
        )
        assert status < 500, status

    @rule(group=st.sampled_from(GROUPS), login=st.sampled_from(USERS), join=st.booleans())
    def membership(self, group: str, login: str, join: bool) -> None:
        """Make the group if it is new; add or remove a member."""
        self._group(group)
        try:
            if join:
                groups.add_member(self.pair.url, group, login)
            else:
                groups.remove_member(self.pair.url, group, login)
        except REFUSED:
            pass

    @rule(target=targets, shared=targets, sharing=SHARING)
    def share(self, shared: Target, sharing: Sharing) -> object:
        """Share with a user, a group (made if new) or by a token link."""
        return multiple(*self._share(shared, *sharing))

    def _share(
        self, shared: Target, how: str, login: str, group: str, permissions: str
    ) -> list[Target]:
        """The paths a new share shows ``shared`` at (none when the domain refused it)."""
        url = self.pair.url
        try:
            if how == "token":
                return [Target(shares.add_token_share(url, shared.path, permissions), shared.kind)]
            if how == "user":
                record, _ = shares.add_map_share(
                    url, shared.path, user=login, permissions=permissions
                )
                return [Target(str(record["PathOrToken"]), shared.kind)]
            self._group(group)
            record, _ = shares.add_map_share(url, shared.path, group=group, permissions=permissions)
        except REFUSED:
            return []
        self.group_shares.add((shared.path, group))
        placeholder = str(record["PathOrToken"])
        return [
            Target(placeholder.replace(shares.USER_PLACEHOLDER, user), shared.kind)
            for user in USERS
        ]

    def _group(self, group: str) -> None:
        if group not in self.groups:
            groups.add_group(self.pair.url, group)
            self.groups.add(group)

    @rule(shared=targets, login=st.sampled_from(USERS), group=st.sampled_from((None, *GROUPS)))
    def revoke(self, shared: Target, login: str, group: str | None) -> None:
        """Stop sharing with a user or a group."""
        try:
            if group is None:
                shares.revoke_map_share(self.pair.url, shared.path, user=login)
            else:
                shares.revoke_map_share(self.pair.url, shared.path, group=group)
                self.group_shares.discard((shared.path, group))
        except REFUSED:
            pass
