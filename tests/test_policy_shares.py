"""The access policy's share resolution agrees with Radicale's record format and matching.

The policy (:mod:`dav_cms.policy.shares`) keeps its own copy of Radicale's
record constants and its own matching; these tests hold both to Radicale's:
the constants must be equal, and for generated records, users and groups the
policy's winner at a path must be the record Radicale's own helpers
(``radicale.sharing.common``) pick. The HTTP behaviour is covered by
tests/test_differential.py and Radicale's own suite (compat/).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from radicale import sharing as radicale_sharing
from radicale.app import put as radicale_put
from radicale.sharing import common

from dav_cms import shares, sharing
from dav_cms.importers import ics
from dav_cms.policy import shares as policy_shares

LOGINS = ("alice", "bob", "al@ice")
GROUPS = ("sales", "team", "ops")
NAMES = ("book", "bob-book")


def test_constants_are_radicales() -> None:
    assert tuple(radicale_sharing.DB_FIELDS_V1) == shares.FIELDS
    assert radicale_sharing.SHARING_SEPARATOR_GROUP == shares.GROUP_PREFIX
    assert radicale_sharing.SHARING_SEPARATOR_REALM == shares.REALM_PREFIX
    assert radicale_sharing.TOKEN_PATTERN_V1 == shares.TOKEN_PATTERN
    # Not a sharing constant, but kept for the same reason (no Radicale application module).
    assert radicale_put.PRODID == ics.PRODID


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    owner = draw(st.sampled_from(LOGINS))
    name = draw(st.sampled_from(NAMES))
    kind = draw(st.sampled_from(("user", "group", "realm")))
    if kind == "user":
        user = draw(st.sampled_from(LOGINS))
        path = f"/{draw(st.sampled_from((user, *LOGINS)))}/{name}/"
    else:
        user = (
            ":" + ",".join(draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=2)))
            if kind == "group"
            else "@" + draw(st.sampled_from(("ice", "ob", "l")))
        )
        path = f"/{{user}}/{name}/"
    return {
        "ShareType": "map",
        "PathOrToken": path,
        "PathMapped": f"/{owner}/{draw(st.sampled_from(NAMES))}/",
        "Conversion": "",
        "Owner": owner,
        "User": user,
        "Permissions": draw(st.sampled_from(("r", "rw", "epur", "epurw"))),
        "EnabledByOwner": True,
        "EnabledByUser": True,
        "HiddenByOwner": False,
        "HiddenByUser": False,
        "TimestampCreated": 0,
        "TimestampUpdated": 0,
        "Properties": {},
        "Actions": {},
    }


def _radicales_winner(
    rows: list[dict[str, Any]], path: str, user: str, groups: frozenset[str]
) -> dict[str, Any] | None:
    """What Radicale's csv backend's database_get_sharing finds (its own helpers)."""
    lookup = user + (":" + ",".join(sorted(groups)) if groups else "")
    matched = []
    for row in rows:
        found = common.database_common_check_row_match(
            row=dict(row), ShareType="map", PathOrToken=path, User=lookup
        )
        if found is not None:
            matched.append(found)
    winners = common.database_common_filter_resolved_duplicate_shares(matched)
    return winners[0] if winners else None


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    rows=st.lists(records(), max_size=6),
    user=st.sampled_from(LOGINS),
    groups=st.frozensets(st.sampled_from(GROUPS), max_size=2),
    name=st.sampled_from(NAMES),
)
def test_winner_at_a_path_is_radicales(
    rows: list[dict[str, Any]], user: str, groups: frozenset[str], name: str
) -> None:
    path = f"/{user}/{name}/"
    want = _radicales_winner(rows, path, user, groups)
    got = policy_shares.resolve_map(lambda _type, _path: rows, path, user, groups)
    if want is None:
        assert got is None
        return
    assert isinstance(got, dict)
    for field in ("PathMapped", "Owner", "User"):
        assert got[field] == want[field]
    assert set(got["Permissions"]) == set(want["Permissions"])


def test_resolving_a_link_never_logs_its_token(caplog: pytest.LogCaptureFixture) -> None:
    """The sharing plugin's log lines name a link's share, never its path (the secret)."""
    token = "/.token/v1/" + "S" * 44 + "/"
    record = {
        "ShareType": "token",
        "PathOrToken": token,
        "PathMapped": "/alice/book/",
        "Owner": "alice",
        "User": "alice",
        "Permissions": "r",
        "EnabledByOwner": True,
        "EnabledByUser": True,
        "HiddenByOwner": False,
        "HiddenByUser": False,
        "Properties": {},
        "Actions": {},
        "Conversion": "",
    }
    with caplog.at_level(logging.INFO, logger="dav_cms.sharing"):
        found = sharing._as_share(record, token + "a.vcf", "")
        refused = sharing._as_share(policy_shares.Refused("token-not-found"), token, "")
    assert found is not None
    assert found["PathOrToken"] == token
    assert refused == {"error": "token-not-found"}
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all("S" * 44 not in message and "a share link" in message for message in messages)
