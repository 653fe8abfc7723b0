"""The fast paths answer exactly as Radicale does: a stateful differential test.

Two applications on one database, built as ``dav-cms serve`` builds them
(:mod:`tests.differential_pair`): one with the listing and item-read layers on,
one with both off, so that Radicale (through dav_cms's plugins) answers every
request. Hypothesis changes the world (:mod:`tests.differential_world`: users,
groups, memberships, address books and calendars at clashing paths, items,
user, group and token shares) and between the changes sends listings (PROPFIND
Depth 0 and 1, named properties and allprop), syncs (initial and from an
earlier token), item reads and multigets, as the home's user, other users
(recipients, members, strangers) and anonymous clients, to both applications.
Their answers must be the same: status, headers and body. Over the whole run
each fast path must have answered, so a layer that silently stops answering
fails the test too.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from dav_cms import accounts
from tests import differential_requests as dav
from tests.differential_pair import LISTING_KINDS, Marks, Pair, Reply, recording
from tests.differential_world import ITEMS, USERS, Target, World, password

HOME = "home"  # the user whose home the path is in
ANONYMOUS = "anonymous"  # no credentials
# Who sends a request: the home's user most often, any user, or nobody.
ACTOR = st.sampled_from((HOME, HOME, *USERS, ANONYMOUS))
ROW_PROPS = dav.PROPS[:5]
SYNC_PROPS = st.lists(st.sampled_from(ROW_PROPS), min_size=1, max_size=3)
Props = list[tuple[str, str]]
# Mostly what the listing layer streams, sometimes anything (allprop has a rule of its own).
NAMED_PROPS = st.lists(st.sampled_from(ROW_PROPS), min_size=1, max_size=3) | st.lists(
    st.sampled_from(dav.PROPS), min_size=1, max_size=3
)
PROP_LISTS: st.SearchStrategy[Props] = st.just([]) | NAMED_PROPS  # []: allprop

SETTINGS = settings(
    max_examples=35,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _gzip(on: bool) -> dict[str, str]:
    return {"Accept-Encoding": "gzip"} if on else {}


def _who(actor: str, at: Target) -> str | None:
    """The login of ``actor`` for a request of ``at`` (None: anonymous)."""
    if actor == HOME:
        return at.home_user
    return None if actor == ANONYMOUS else actor


class Differential(World):
    """The world's changes, and reads sent to both applications and compared."""

    stats: Counter[str]
    marks: Marks

    def __init__(self) -> None:
        super().__init__()
        self.sync_tokens: dict[str, str] = {}

    def _compare(
        self, method: str, at: str, body: str = "", *, actor: str | None, **headers: str
    ) -> Reply:
        if body:
            headers["Content-Type"] = dav.XML
        reply, by = self.pair.exchange(
            self.marks,
            method,
            at,
            body.encode(),
            login=actor,
            password=password(actor or ""),
            headers=headers,
        )
        self.stats[by or "radicale"] += 1
        if by == "row" and self.group_shares:
            self.stats["row with a group share"] += 1
        return reply

    # Many small read rules: Hypothesis turns rules off at random per example (swarm
    # testing), and with many of them some reads stay on in almost every example.

    @rule(at=World.targets, actor=ACTOR, props=NAMED_PROPS, gzip=st.booleans())
    def listing(self, at: Target, actor: str, props: Props, gzip: bool) -> None:
        """PROPFIND Depth 1 of a collection, named properties."""
        body = dav.propfind(props)
        self._compare("PROPFIND", at.path, body, actor=_who(actor, at), Depth="1", **_gzip(gzip))

    @rule(at=World.targets, actor=ACTOR, gzip=st.booleans())
    def allprop(self, at: Target, actor: str, gzip: bool) -> None:
        """allprop PROPFIND Depth 1 of a collection."""
        body = dav.propfind([])
        self._compare("PROPFIND", at.path, body, actor=_who(actor, at), Depth="1", **_gzip(gzip))

    @rule(at=World.targets, actor=ACTOR, props=PROP_LISTS)
    def collection(self, at: Target, actor: str, props: Props) -> None:
        """PROPFIND Depth 0 of a collection (no props: allprop)."""
        self._compare("PROPFIND", at.path, dav.propfind(props), actor=_who(actor, at), Depth="0")

    @rule(home=st.sampled_from(USERS), actor=ACTOR, props=PROP_LISTS)
    def home(self, home: str, actor: str, props: Props) -> None:
        """PROPFIND Depth 1 of a home, the collections and shares in it (no props: allprop)."""
        login = _who(actor, Target(f"/{home}/", "addressbook"))
        self._compare("PROPFIND", f"/{home}/", dav.propfind(props), actor=login, Depth="1")

    @rule(at=World.targets, actor=ACTOR, props=SYNC_PROPS, gzip=st.booleans())
    def sync(self, at: Target, actor: str, props: Props, gzip: bool) -> None:
        """Initial sync-collection."""
        self._sync(at, "", _who(actor, at), props, gzip)

    @precondition(lambda self: bool(self.sync_tokens))
    @rule(at=World.targets, actor=ACTOR, props=SYNC_PROPS)
    def sync_again(self, at: Target, actor: str, props: Props) -> None:
        """sync-collection from the token of the last answer for that path (if any)."""
        self._sync(at, self.sync_tokens.get(at.path, ""), _who(actor, at), props, gzip=False)

    def _sync(self, at: Target, token: str, actor: str | None, props: Props, gzip: bool) -> None:
        body = dav.sync_collection(token, props)
        reply = self._compare("REPORT", at.path, body, actor=actor, Depth="1", **_gzip(gzip))
        new = dav.sync_token_of(reply.body) if reply.status.startswith("207") else None
        if new is not None:
            self.sync_tokens[at.path] = new

    @rule(at=World.targets, item=st.sampled_from(ITEMS), actor=ACTOR, gzip=st.booleans())
    def get(self, at: Target, item: str, actor: str, gzip: bool) -> None:
        """GET of an item."""
        self._compare("GET", at.item(item), actor=_who(actor, at), **_gzip(gzip))

    @rule(at=World.targets, item=st.sampled_from(ITEMS), actor=ACTOR, gzip=st.booleans())
    def head(self, at: Target, item: str, actor: str, gzip: bool) -> None:
        """HEAD of an item."""
        self._compare("HEAD", at.item(item), actor=_who(actor, at), **_gzip(gzip))

    @rule(
        at=World.targets,
        actor=ACTOR,
        items=st.lists(st.sampled_from(ITEMS), min_size=1, max_size=2),
    )
    def multiget(self, at: Target, actor: str, items: list[str]) -> None:
        """addressbook-multiget or calendar-multiget of items of a collection."""
        body = dav.multiget(at.kind == "calendar", [at.item(item) for item in items])
        self._compare("REPORT", at.path, body, actor=_who(actor, at), Depth="1")


@pytest.fixture
def pair(migrated_db_url: str) -> Pair:
    """The two applications on a database with the users (made once: argon2 is slow)."""
    for login in USERS:
        accounts.add_user(migrated_db_url, login, password(login))
    return Pair(migrated_db_url)


def test_fast_paths_answer_as_radicale(pair: Pair) -> None:
    stats: Counter[str] = Counter()
    with recording() as marks:

        class Run(Differential):
            """The machine on this test's applications, counting into ``stats``."""

        Run.pair, Run.stats, Run.marks = pair, stats, marks
        run_state_machine_as_test(Run, settings=SETTINGS)
    # Each fast path answered (a layer that turned itself off would pass everything on).
    for kind in LISTING_KINDS:
        assert stats[f"stream:{kind}"] > 0, stats
    assert stats["row"] > 0, stats
    # A group share of some other collection does not stop the reads of one's own items.
    assert stats["row with a group share"] > 0, stats
