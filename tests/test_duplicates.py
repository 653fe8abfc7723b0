"""``dav-cms duplicates``: cards PUT to a real server, the real command through its entry point."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from dav_cms import merge, vcardlines
from dav_cms.storage.collection import Collection
from tests import factories
from tests.cli_runner import run_with_url
from tests.dav import Dav
from tests.servers import ServerProcess

PASSWORD = "duplicates-password-1"
BOOK = "/alice/contacts/"


def card(uid: str, fn: str, *lines: str) -> str:
    body = "".join(line + "\r\n" for line in lines)
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n{body}END:VCARD\r\n"


CARDS = {
    # same email (case and spaces differ), names differ
    "e1.vcf": card("e1", "Ada Lovelace", "EMAIL: Ada@Example.ORG "),
    "e2.vcf": card("e2", "Augusta King", "EMAIL;TYPE=WORK:ada@example.org"),
    # same number, written differently
    "p1.vcf": card("p1", "Charles Babbage", "TEL:0721 5550100"),
    "p2.vcf": card("p2", "C. B.", "TEL;TYPE=CELL:+49 (721) 555-0100"),
    # the same name words, another order, case and accents
    "n1.vcf": card("n1", "Jürgen Müller"),
    "n2.vcf": card("n2", "MULLER Jurgen"),
    # very similar names
    "s1.vcf": card("s1", "Jonathan Smithson"),
    "s2.vcf": card("s2", "Jonathon Smithson"),
    # three cards with one address: three pairs
    "t1.vcf": card("t1", "Team Alpha", "EMAIL:team@example.net"),
    "t2.vcf": card("t2", "Team Beta", "EMAIL:TEAM@example.net"),
    "t3.vcf": card("t3", "Team Gamma", "EMAIL:team@example.net"),
    # not duplicates: same last digits but different numbers, a shared first name,
    # too few digits, similar emails
    "x1.vcf": card("x1", "Grace Hopper", "TEL:+44 20 5550100", "EMAIL:grace@example.org"),
    "x2.vcf": card("x2", "Grace Kelly", "TEL:555", "EMAIL:grace@example.com"),
    "x3.vcf": card("x3", "Alan Turing", "TEL:0555", "EMAIL:alan@example.org"),
}
EXPECTED = {
    ("e1.vcf", "e2.vcf"): {"email"},
    ("p1.vcf", "p2.vcf"): {"phone"},
    ("n1.vcf", "n2.vcf"): {"same name"},
    ("s1.vcf", "s2.vcf"): {"similar name"},
    ("t1.vcf", "t2.vcf"): {"email"},
    ("t1.vcf", "t3.vcf"): {"email"},
    ("t2.vcf", "t3.vcf"): {"email"},
}


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_with_url(url, "duplicates", *args)


def listing(url: str) -> list[dict[str, Any]]:
    done = run(url, "--user", "alice", "--collection", "contacts", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.fixture
def alice(server: ServerProcess) -> Dav:
    factories.add_user(server.database_url, "alice", PASSWORD)
    client = Dav(server.url, "alice", PASSWORD)
    assert client.mkaddressbook(BOOK).status_code == 201
    return client


def put_all(client: Dav, cards: dict[str, str]) -> None:
    for href, text in cards.items():
        assert client.put(BOOK + href, text).status_code == 201


def _kind(reason: str) -> str:
    return next(k for k in ("email", "phone", "same name", "similar name") if k in reason)


def test_each_reason_is_found_and_nothing_else(server: ServerProcess, alice: Dav) -> None:
    put_all(alice, CARDS)
    pairs = listing(server.database_url)
    found = {
        (p["first"]["href"], p["second"]["href"]): {_kind(r) for r in p["reasons"]} for p in pairs
    }
    assert found == EXPECTED
    scores = [p["score"] for p in pairs]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < score <= 1 for score in scores)
    by_pair = {(p["first"]["href"], p["second"]["href"]): p for p in pairs}
    assert by_pair["n1.vcf", "n2.vcf"]["first"]["fn"] == "Jürgen Müller"
    assert "same email ada@example.org" in by_pair["e1.vcf", "e2.vcf"]["reasons"]
    assert "same phone 7215550100" in by_pair["p1.vcf", "p2.vcf"]["reasons"]
    # email and phone are stronger evidence than a similar name
    assert by_pair["e1.vcf", "e2.vcf"]["score"] > by_pair["s1.vcf", "s2.vcf"]["score"]

    table = run(server.database_url, "--user", "alice", "--collection", "contacts")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["SCORE", "FIRST", "SECOND", "REASONS"]
    assert len(lines) == 1 + len(EXPECTED)
    assert any(
        "Jürgen Müller (n1.vcf)" in line and "MULLER Jurgen (n2.vcf)" in line for line in lines
    )


def test_several_reasons_add_up(server: ServerProcess, alice: Dav) -> None:
    put_all(
        alice,
        {
            "a.vcf": card("a", "Ada Lovelace", "EMAIL:ada@example.org", "TEL:0721 5550100"),
            "b.vcf": card("b", "Lovelace\\, Ada", "EMAIL:ADA@example.org", "TEL:+49 721 5550100"),
            "c.vcf": card("c", "Ada Lovelace"),
        },
    )
    pairs = listing(server.database_url)
    found = {(p["first"]["href"], p["second"]["href"]): p for p in pairs}
    assert {_kind(r) for r in found["a.vcf", "b.vcf"]["reasons"]} == {"email", "phone", "same name"}
    assert {_kind(r) for r in found["a.vcf", "c.vcf"]["reasons"]} == {"same name"}
    assert pairs[0]["first"]["href"] == "a.vcf"
    assert pairs[0]["second"]["href"] == "b.vcf"
    assert found["a.vcf", "b.vcf"]["score"] > found["a.vcf", "c.vcf"]["score"]


KEEP = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:keep-uid\r\nPRODID:-//one//EN\r\n"
    "FN:Ada Lovelace\r\nN:Lovelace;Ada;;;\r\nEMAIL;TYPE=WORK:ada@example.org\r\n"
    "TEL;TYPE=CELL:+49 721 5550100\r\nitem1.EMAIL:home@example.org\r\nitem1.X-ABLabel:Home\r\n"
    "BDAY:1815-12-10\r\nCATEGORIES:Friends\r\nNOTE:Kept note\\, with comma\r\n"
    "REV:20260101T000000Z\r\nEND:VCARD\r\n"
)
OTHER = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:other-uid\r\nPRODID:-//two//EN\r\n"
    "FN:Augusta Ada King\r\nN:King;Augusta Ada;;Countess;\r\nEMAIL;TYPE=WORK:ada@example.org\r\n"
    "EMAIL;TYPE=HOME:ada.king@example.com\r\nTEL;TYPE=HOME:0721 5550199\r\n"
    "item1.URL:https://example.org/ada\r\nitem1.X-ABLabel:Blog\r\nBDAY:1815-12-10\r\n"
    "NICKNAME:Ada\r\nADR;TYPE=HOME:;;12 St James's Square;London;;;UK\r\n"
    "CATEGORIES:Math,Friends\r\nX-SKYPE:ada.king\r\nNOTE:Other note\r\nORG:Analytical Engines\r\n"
    "X-GENDER:F\r\nREV:20260202T000000Z\r\nEND:VCARD\r\n"
)


def _lines(text: str) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(group, NAME, sorted params, value) of each property line, escapes of ; and , undone."""
    result = []
    for raw in re.sub(r"\r?\n[ \t]", "", text).splitlines():
        line = vcardlines.parse_line(raw)
        if line.name in ("BEGIN", "END"):
            continue
        value = line.value.replace("\\;", ";").replace("\\,", ",")
        result.append((line.group.upper(), line.name, line.key[1], value))
    return result


def _keys(text: str) -> set[tuple[str, tuple[str, ...], str]]:
    return {(name, params, value) for _, name, params, value in _lines(text)}


def test_merge_keeps_every_property(server: ServerProcess, alice: Dav) -> None:
    put_all(alice, {"keep.vcf": KEEP, "other.vcf": OTHER, "third.vcf": card("t", "Someone")})
    _, token, _ = alice.sync(BOOK)
    keep_before = alice.request("GET", BOOK + "keep.vcf").text
    other_before = alice.request("GET", BOOK + "other.vcf").text

    done = run(
        server.database_url,
        "--user",
        "alice",
        "--collection",
        "contacts",
        "--merge",
        "keep.vcf",
        "other.vcf",
    )
    assert done.returncode == 0, done.stderr
    assert "merged other.vcf into keep.vcf" in done.stdout

    merged_response = alice.request("GET", BOOK + "keep.vcf")
    assert merged_response.status_code == 200
    merged = merged_response.text
    assert alice.request("GET", BOOK + "other.vcf").status_code == 404
    have = _keys(merged)
    assert _keys(keep_before) <= have  # the kept card is whole: its UID, N, FN, REV ...
    kept = _keys(keep_before)
    for name, params, value in _keys(other_before):
        if name in ("UID", "REV", "PRODID", "VERSION"):
            # bookkeeping: only the kept card's values
            assert (name, params, value) not in have - kept
        elif name in ("FN", "N"):
            # differing single values are kept under another name
            assert ("X-DAV-CMS-MERGED-" + name, params, value) in have, name
        else:
            assert (name, params, value) in have, (name, value)
    names = [name for _, name, _, _ in _lines(merged)]
    assert names.count("UID") == names.count("FN") == names.count("N") == 1
    assert names.count("BDAY") == 1  # identical lines once
    assert [v for _, n, _, v in _lines(merged) if n == "EMAIL"].count("ada@example.org") == 1
    # the other card's group is renamed: its label stays with its URL, not with the kept email
    groups = {(n, v): g for g, n, _, v in _lines(merged)}
    assert groups["URL", "https://example.org/ada"] == groups["X-ABLABEL", "Blog"]
    assert groups["X-ABLABEL", "Blog"] != groups["X-ABLABEL", "Home"]
    assert groups["EMAIL", "home@example.org"] == groups["X-ABLABEL", "Home"]

    status, _, changes = alice.sync(BOOK, token)
    assert status == 207
    assert changes == {BOOK + "keep.vcf": 200, BOOK + "other.vcf": 404}
    # the search index followed: the other card's email now finds the merged card
    assert listing(server.database_url) == []


def test_merge_conflicting_single_values_json(server: ServerProcess, alice: Dav) -> None:
    put_all(
        alice,
        {
            "a.vcf": card("a", "Ada", "BDAY:1815-12-10", "N:Lovelace;Ada;;;"),
            "b.vcf": card("b", "Ada", "BDAY:1815-12-11", "N:Lovelace;Ada;;;", "TITLE:Countess"),
        },
    )
    done = run(
        server.database_url,
        "--user",
        "alice",
        "--collection",
        "contacts",
        "--merge",
        "a.vcf",
        "b.vcf",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "kept": "a.vcf",
        "deleted": "b.vcf",
        "kept_as": ["X-DAV-CMS-MERGED-BDAY"],
    }
    merged = _lines(alice.request("GET", BOOK + "a.vcf").text)
    values = {(name, value) for _, name, _, value in merged}
    assert {("BDAY", "1815-12-10"), ("X-DAV-CMS-MERGED-BDAY", "1815-12-11")} <= values
    assert ("TITLE", "Countess") in values
    assert ("UID", "a") in values
    assert not any(name == "X-DAV-CMS-MERGED-N" for name, _ in values)  # same N: once


def test_a_failed_merge_changes_nothing(
    server: ServerProcess, alice: Dav, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_all(alice, {"keep.vcf": KEEP, "other.vcf": OTHER})
    before = {href: alice.request("GET", BOOK + href) for href in ("keep.vcf", "other.vcf")}
    _, token, _ = alice.sync(BOOK)

    def broken(self: Collection, href: str | None = None) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Collection, "delete", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        merge.merge_contacts(server.database_url, "alice", "contacts", "keep.vcf", "other.vcf")
    for href, response in before.items():
        again = alice.request("GET", BOOK + href)
        assert again.status_code == 200
        assert again.headers["ETag"] == response.headers["ETag"]
        assert again.text == response.text
    assert alice.sync(BOOK, token)[2] == {}
    assert [(p["first"]["href"], p["second"]["href"]) for p in listing(server.database_url)] == [
        ("keep.vcf", "other.vcf")
    ]


def test_errors(server: ServerProcess, alice: Dav) -> None:
    put_all(alice, {"a.vcf": CARDS["e1.vcf"], "b.vcf": CARDS["e2.vcf"]})
    calendar = alice.request("MKCALENDAR", "/alice/cal/")
    assert calendar.status_code == 201
    url = server.database_url
    cases = [
        (["--user", "nobody", "--collection", "contacts"], 1, "no user 'nobody'"),
        (["--user", "alice", "--collection", "missing"], 1, "no collection at /alice/missing/"),
        (["--user", "alice", "--collection", "cal"], 1, "not an address book"),
        (["--user", "alice", "--collection", "a/b"], 2, "not a collection name"),
        (
            ["--user", "alice", "--collection", "contacts", "--merge", "a.vcf", "a.vcf"],
            2,
            "two different cards",
        ),
        (
            ["--user", "alice", "--collection", "contacts", "--merge", "a.vcf", "zz.vcf"],
            1,
            "no card 'zz.vcf'",
        ),
        (
            ["--user", "alice", "--collection", "cal", "--merge", "a.vcf", "b.vcf"],
            1,
            "not an address book",
        ),
        (["--user", "alice"], 2, "--collection"),
    ]
    for args, status, message in cases:
        done = run(url, *args)
        assert done.returncode == status, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    # nothing was changed by the refused merges
    assert alice.request("GET", BOOK + "a.vcf").status_code == 200
    assert alice.request("GET", BOOK + "b.vcf").status_code == 200
