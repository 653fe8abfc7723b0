"""``import-radicale`` keeps every ETag and body a stock Radicale server serves for the same files.

A Radicale file-storage tree is built from files as exporters and editors
write them (CRLF and LF, folded and unfolded lines, non-ASCII, vCard 2.1 to 4.0,
calendar quirks Radicale repairs when it reads them), plus items a stock
Radicale server writes itself. Stock Radicale then serves the tree, the import
moves it into a database on each engine, dav_cms serves it, and every item's
PROPFIND getetag, GET ETag and GET body are compared.
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from radicale import item as radicale_item

from dav_cms import accounts
from tests import factories
from tests.cli_runner import run_dav_cms
from tests.dav import Dav
from tests.servers import start_server
from tests.stock_radicale import Served, served_items, stock_radicale

CARD_CRLF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:crlf-1\r\nFN:Jörg Müller\r\nN:Müller;Jörg;;;\r\n"
    "EMAIL;TYPE=work:joerg@example.org\r\nNOTE:Ein sehr langer Hinweis\\, der über die Zeil\r\n"
    " engrenze hinausgeht und deshalb gefaltet wurde\\; mit Umlauten äöü.\r\nEND:VCARD\r\n"
)
CARD_LF = (
    "BEGIN:VCARD\nVERSION:3.0\nUID:lf-1\nFN:Zoë Ångström\nORG:Café Ünïcode\n"
    "NOTE:An unfolded line that is much longer than seventy-five octets, as many editors "
    "write it without folding.\nTEL;TYPE=cell:+49 170 1234567\nEND:VCARD\n"
)
CARD_MIXED = (
    "BEGIN:VCARD\r\nVERSION:4.0\nUID:mixed-1\r\nFN:Mixed Endings\n"
    "ADR;TYPE=home:;;Hauptstraße 1;Köln;;50667;Deutschland\r\n\r\n"
    "NOTE:folded with a\n\ttab\r\nEND:VCARD"
)
CARD_PHOTO = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo-1\r\nFN:With Photo\r\n"
    "PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4\r\n"
    " 2mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\nEND:VCARD\r\n"
)
CARD_21 = (
    "BEGIN:VCARD\nVERSION:2.1\nUID:android-1\nN;CHARSET=UTF-8:Weiß;Anna;;;\n"
    "FN;CHARSET=UTF-8:Anna Weiß\n"
    "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Erste Zeile, mit Komma=0D=0A=\n"
    "zweite Zeile=C3=A4\nEND:VCARD\n"
)
CARD_NONASCII_NAME = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:name-1\r\nFN:Ådne\r\nEND:VCARD\r\n"
CARD_TEAM = "BEGIN:VCARD\nVERSION:3.0\nUID:team-1\nFN:Team Member\nEND:VCARD\n"
EVENT_CRLF = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//Exporter//EN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "TZNAME:CET\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "TZNAME:CEST\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:event-crlf\r\n"
    "DTSTAMP:20240101T120000Z\r\nDTSTART;TZID=Europe/Berlin:20240312T090000\r\n"
    "DTEND;TZID=Europe/Berlin:20240312T100000\r\nSUMMARY:Besprechung über Änderungen\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
# Evolution writes EXDATE as DATE under a DATE-TIME DTSTART: Radicale converts it.
EVENT_EVOLUTION = (
    "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Evolution//EN\nBEGIN:VEVENT\n"
    "UID:event-evolution\nDTSTAMP:20240101T120000Z\nDTSTART:20240105T080000Z\n"
    "DTEND:20240105T090000Z\nRRULE:FREQ=WEEKLY;COUNT=10\nEXDATE;VALUE=DATE:20240112\n"
    "SUMMARY:Weekly\nEND:VEVENT\nEND:VCALENDAR\n"
)
# Thunderbird writes DTEND and DURATION:PT0S for a moved occurrence: Radicale drops DURATION.
EVENT_LIGHTNING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mozilla.org//Lightning//EN\r\nBEGIN:VEVENT\r\n"
    "UID:event-lightning\r\nDTSTAMP:20240101T120000Z\r\nDTSTART:20240201T100000Z\r\n"
    "DTEND:20240201T110000Z\r\nDURATION:PT0S\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
TODO_LF = (
    "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Example//EN\nBEGIN:VTODO\nUID:todo-1\n"
    "DTSTAMP:20240101T120000Z\nSUMMARY:Einkaufen: Äpfel\\, Birnen\nEND:VTODO\nEND:VCALENDAR\n"
)

ADDRESSBOOK_PROPS = (
    '{"tag": "VADDRESSBOOK", "D:displayname": "Kontakte \u2013 Jörg", '
    '"CR:addressbook-description": "Büro und Familie"}'
)
CALENDAR_PROPS = (
    '{"tag": "VCALENDAR", "D:displayname": "Kalender", "ICAL:calendar-color": "#ff8800ff", '
    '"C:supported-calendar-component-set": "VEVENT,VTODO"}'
)

PROPS_QUERY = """<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:" xmlns:ICAL="http://apple.com/ns/ical/"
            xmlns:CR="urn:ietf:params:xml:ns:carddav">
<D:prop><D:displayname/><ICAL:calendar-color/><CR:addressbook-description/></D:prop>
</D:propfind>"""

# What the tree holds that dav_cms must leave out and list, Radicale serving it or not.
LEFT_OUT = {
    "/alice/contacts/broken.vcf": "stock Radicale cannot load it",
    "/alice/contacts/latin1.vcf": "not valid utf-8",
    "/alice/contacts/nouid.vcf": "VCARD object without UID",
    "/alice/contacts/duplicate.vcf": "UID 'crlf-1' is already used by /alice/contacts/crlf.vcf",
    "/alice/contacts/.hidden.vcf": "hidden or backup name",
    "/alice/contacts/backup.vcf~": "hidden or backup name",
    "/alice/contacts/outside.vcf": "symbolic link to outside the folder",
    "/alice/contacts/pipe": "not a regular file",
    "/alice/external/": "symbolic link to outside the folder",
    "/alice/contacts-link/": "symbolic link to a folder",
    "/bob/notes.txt": "not an address book or calendar",
    "/bob/subscription/stray.ics": "not an address book or calendar",
}
# Collections both servers serve, with their owner.
COLLECTIONS = {
    "/alice/contacts/": "alice",
    "/alice/calendar/": "alice",
    "/bob/team/": "bob",
}


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(data)  # bytes as given: no newline translation


def _build_tree(base: Path) -> Path:
    """A Radicale ``filesystem_folder`` with realistic and hostile entries; returns it."""
    folder = base / "radicale"
    root = folder / "collection-root"
    outside = base / "outside"
    _write(outside / "secret.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:s\r\nFN:S\r\nEND:VCARD\r\n")
    _write(outside / "book" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(
        outside / "book" / "o.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:o\r\nFN:O\r\nEND:VCARD\r\n"
    )
    contacts = root / "alice" / "contacts"
    _write(contacts / ".Radicale.props", ADDRESSBOOK_PROPS)
    _write(contacts / "crlf.vcf", CARD_CRLF)
    _write(contacts / "lf.vcf", CARD_LF)
    _write(contacts / "mixed.vcf", CARD_MIXED)
    _write(contacts / "photo.vcf", CARD_PHOTO)
    _write(contacts / "android.vcf", CARD_21)
    _write(contacts / "ådne.vcf", CARD_NONASCII_NAME)
    _write(contacts / "broken.vcf", "BEGIN:VCARD\r\nnot a card\r\n")
    _write(contacts / "latin1.vcf", CARD_LF.replace("lf-1", "latin-1").encode("latin-1"))
    _write(contacts / "nouid.vcf", "BEGIN:VCARD\nVERSION:3.0\nFN:No UID\nEND:VCARD\n")
    _write(contacts / "duplicate.vcf", CARD_CRLF.replace("FN:Jörg Müller", "FN:Jörg M."))
    _write(contacts / ".hidden.vcf", CARD_TEAM.replace("team-1", "hidden-1"))
    _write(contacts / "backup.vcf~", CARD_TEAM.replace("team-1", "backup-1"))
    (contacts / "outside.vcf").symlink_to(outside / "secret.vcf")
    (contacts / "team-link.vcf").symlink_to(Path("..", "..", "bob", "team", "t.vcf"))
    os.mkfifo(contacts / "pipe")
    calendar = root / "alice" / "calendar"
    _write(calendar / ".Radicale.props", CALENDAR_PROPS)
    _write(calendar / "event-crlf.ics", EVENT_CRLF)
    _write(calendar / "evolution.ics", EVENT_EVOLUTION)
    _write(calendar / "lightning.ics", EVENT_LIGHTNING)
    _write(calendar / "todo.ics", TODO_LF)
    (root / "alice" / "external").symlink_to(outside / "book")
    (root / "alice" / "contacts-link").symlink_to(Path("contacts"))
    _write(root / "bob" / "team" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(root / "bob" / "team" / "t.vcf", CARD_TEAM)
    # Deeper than /USER/NAME/: imported, but dav_cms's rights (like Radicale's
    # owner_only) let no client open it.
    _write(root / "bob" / "work" / "deep" / ".Radicale.props", '{"tag": "VADDRESSBOOK"}')
    _write(root / "bob" / "work" / "deep" / "d.vcf", CARD_TEAM.replace("team-1", "deep-1"))
    _write(root / "bob" / "notes.txt", "shopping list\n")
    _write(
        root / "bob" / "subscription" / ".Radicale.props",
        '{"tag": "VSUBSCRIBED", "CS:source": "https://example.org/holidays.ics"}',
    )
    _write(root / "bob" / "subscription" / "stray.ics", TODO_LF)
    return folder


@dataclass(frozen=True)
class StockState:
    """The tree, and what stock Radicale served for it."""

    folder: Path
    items: dict[str, dict[str, Served]]
    props: dict[str, dict[str, str]]
    written_by_radicale: dict[str, Path]


def _props(client: Dav, path: str) -> dict[str, str]:
    response = client.request("PROPFIND", path, PROPS_QUERY, Depth="0")
    assert response.status_code == 207, response.text
    found = {}
    for prop in ET.fromstring(response.content).iter("{DAV:}prop"):
        for child in prop:
            if child.text:
                found[child.tag] = child.text
    return found


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StockState]:
    """Stock Radicale served the tree (and wrote two items itself) before any import."""
    base = tmp_path_factory.mktemp("stock")
    folder = _build_tree(base)
    with stock_radicale(folder, base / "radicale.log") as url:
        client = Dav(url, "alice", "any")
        written = {}
        for n, card in enumerate((factories.vcard(), CARD_LF.replace("lf-1", "put-lf"))):
            href = f"/alice/contacts/put-{n}.vcf"
            assert client.put(href, card).status_code == 201
            written[href] = folder / "collection-root" / href.strip("/")
        owners = {path: Dav(url, owner, "any") for path, owner in COLLECTIONS.items()}
        items = {path: served_items(owners[path], path) for path in COLLECTIONS}
        props = {path: _props(owners[path], path) for path in COLLECTIONS}
        # What makes this a test: stock Radicale serves the symlinks and the duplicate UID.
        assert "/alice/contacts/outside.vcf" in items["/alice/contacts/"]
        assert "/alice/contacts/duplicate.vcf" in items["/alice/contacts/"]
        assert "/alice/contacts/team-link.vcf" in items["/alice/contacts/"]
        assert served_items(client, "/alice/external/")
    yield StockState(folder, items, props, written)


def _import(folder: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_dav_cms("import-radicale", str(folder), "--database-url", url, *extra)


def _left_out(stdout: str) -> dict[str, str]:
    """{path: reason} of the summary's left-out lines."""
    section = stdout.split("left out:", 1)[1]
    return dict(re.findall(r"^  (/\S*): (.*)$", section, re.M))


def test_every_item_keeps_stock_radicales_etag_and_body(
    stock: StockState, migrated_db_url: str, tmp_path: Path
) -> None:
    result = _import(stock.folder, migrated_db_url, "--batch-size", "3")
    assert result.returncode == 0, result.stderr
    listed = _left_out(result.stdout)
    assert set(listed) == set(LEFT_OUT), result.stdout
    for path, reason in LEFT_OUT.items():
        assert reason in listed[path], (path, listed[path])
    # Every item stock Radicale serves but the symlink out and the duplicate UID; and the deep one.
    imported = sum(len(items) for items in stock.items.values()) - 2 + 1
    assert "(deeper than /USER/NAME/): 1\n  /bob/work/deep/\n" in result.stdout
    assert f"items: created {imported}, updated 0, unchanged 0" in result.stdout
    accounts.add_user(migrated_db_url, "alice", "pw-alice-1")
    accounts.add_user(migrated_db_url, "bob", "pw-bob-1")
    server = start_server(migrated_db_url, tmp_path)
    try:
        for path, owner in COLLECTIONS.items():
            client = Dav(server.url, owner, f"pw-{owner}-1")
            ours = served_items(client, path)
            theirs = stock.items[path]
            assert set(theirs) - set(ours) <= set(LEFT_OUT)
            assert set(ours) == set(theirs) - set(LEFT_OUT)
            for href, served in ours.items():
                expected = theirs[href]
                assert served.listed_etag == expected.listed_etag, href
                assert served.etag == expected.etag, href
                assert served.body == expected.body, href
                assert served.listed_etag == served.etag, href
            assert _props(client, path) == stock.props[path]
    finally:
        server.stop()


def test_items_radicale_wrote_keep_the_etag_of_their_bytes(
    stock: StockState, migrated_db_url: str, tmp_path: Path
) -> None:
    """Files stock Radicale wrote hold its serialisation (CRLF): the ETag is of those bytes."""
    assert _import(stock.folder, migrated_db_url).returncode == 0
    accounts.add_user(migrated_db_url, "alice", "pw-alice-1")
    server = start_server(migrated_db_url, tmp_path)
    try:
        client = Dav(server.url, "alice", "pw-alice-1")
        for href, file in stock.written_by_radicale.items():
            raw = file.read_bytes()
            assert b"\r\n" in raw
            response = client.request("GET", href)
            assert response.content == raw
            assert response.headers["ETag"] == radicale_item.get_etag(raw.decode("utf-8"))
            assert response.headers["ETag"] == stock.items["/alice/contacts/"][href].etag
    finally:
        server.stop()


def test_a_second_import_changes_nothing(stock: StockState, migrated_db_url: str) -> None:
    first = _import(stock.folder, migrated_db_url, "--batch-size", "4")
    assert first.returncode == 0, first.stderr
    second = _import(stock.folder, migrated_db_url, "--batch-size", "2")
    assert second.returncode == 0, second.stderr
    created = re.search(r"items: created (\d+)", first.stdout)
    assert created is not None
    assert f"items: created 0, updated 0, unchanged {created.group(1)}" in second.stdout
    assert "collections: created 0, updated 0" in second.stdout
    assert _left_out(second.stdout) == _left_out(first.stdout)
