"""Files in the encodings real exporters write: detected, named in the summary, read exactly.

The samples: Google's legacy CSV export (UTF-16 LE with a byte-order mark, Google's
header row, names such as José Müller, Zoë, Łukasz Żółć and an emoji outside the
BMP), Outlook's desktop export (Windows-1252, every field quoted, Outlook's 92
columns, ``0/0/00`` for an empty date, €, non-breaking spaces, dashes and
guillemets), and a vCard file from an old phone in Windows-1252.
"""

from __future__ import annotations

import codecs
import subprocess
from pathlib import Path
from typing import Any

import pytest
import vobject

from dav_cms import accounts, transfer
from dav_cms.importers import decoding
from tests.dav import Dav
from tests.servers import ServerProcess
from tests.servers import run_cli as _cli

DATA = Path(__file__).parent / "data" / "importers"
GOOGLE = DATA / "google_legacy_utf16.csv"
OUTLOOK = DATA / "outlook_desktop_cp1252.csv"
PASSWORD = "encodings-pw"

#: Decoded values of the cards the samples must give, by FN (see ``_decoded``).
GOOGLE_CARDS: dict[str, dict[str, list[Any]]] = {
    "José Müller": {
        "FN": [((), "José Müller")],
        "N": [((), ("Müller", "José", "", "", ""))],
        "BDAY": [((), "1980-04-15")],
        "NOTE": [((), "Café-Besitzer, mag „Kölsch“ — nicht Pils.\nGeburtstag: 🎂")],
        "CATEGORIES": [((), ("Freunde",))],
        "EMAIL": [(("home", "pref"), "jose.mueller@example.de")],
        "TEL": [(("cell",), "+49 170 1234567")],
        "ADR": [(("home",), ("", "", "Kölner Straße 7", "Köln", "", "50667", "Deutschland"))],
        "ORG": [((), ("Café Zoë GmbH",))],
        "TITLE": [((), "Geschäftsführer")],
    },
    "Zoë": {
        "FN": [((), "Zoë")],
        "N": [((), ("", "Zoë", "", "", ""))],
        "EMAIL": [(("other",), "zoe@example.fr")],
    },
    "Łukasz Żółć": {
        "FN": [((), "Łukasz Żółć")],
        "N": [((), ("Żółć", "Łukasz", "", "", ""))],
        "TEL": [(("work",), "+48 22 123 45 67"), (("work",), "+48 600 700 800")],
    },
}
OUTLOOK_CARDS: dict[str, dict[str, list[Any]]] = {
    "Mr. François Lefèvre": {
        "FN": [((), "Mr. François Lefèvre")],
        "N": [((), ("Lefèvre", "François", "", "Mr.", ""))],
        "ORG": [((), ("Café Crème SARL", "Comptabilité"))],
        "TITLE": [((), "Directeur financier")],
        "ADR": [(("work",), ("", "", "12 rue de l'Église", "Paris", "", "75004", "France"))],
        "TEL": [(("voice", "work"), "+33 1 42 68 53 00"), (("cell",), "+33 6 12 34 56 78")],
        "BDAY": [((), "1980-04-15")],  # Outlook's 4/15/1980
        "CATEGORIES": [((), ("Clients", "VIP"))],
        "EMAIL": [(("internet",), "francois.lefevre@example.fr")],
        "NOTE": [((), "Budget 5\u00a0000 € — payé.\nRéunion « jeudi »")],
        "URL": [((), "https://cafe-creme.example.fr")],
    },
    "Jürgen Weiß": {  # Birthday and Anniversary 0/0/00: no BDAY at all
        "FN": [((), "Jürgen Weiß")],
        "N": [((), ("Weiß", "Jürgen", "", "", ""))],
        "ORG": [((), ("Bäckerei Weiß",))],
        "ADR": [(("home",), ("", "", "Königsallee 5", "Düsseldorf", "", "40212", "Deutschland"))],
        "TEL": [(("home", "voice"), "0211 123456")],
        "EMAIL": [(("internet",), "j.weiss@example.de")],
        "NOTE": [((), "Öffnungszeiten: Mo\u2013Fr 6\u201318 Uhr")],  # en dashes (0x96)
    },
    "Señor Ñandú S.A.": {
        "FN": [((), "Señor Ñandú S.A.")],
        "N": [((), ("", "", "", "", ""))],
        "ORG": [((), ("Señor Ñandú S.A.",))],
        "ADR": [(("work",), ("Apdo. 123", "", "", "Madrid", "", "", ""))],
        "TEL": [(("voice", "work"), "+34 91 123 45 67")],
    },
}
OLD_PHONE_VCF = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lindqvist;Åsa;;;\r\nFN:Åsa Lindqvist\r\n"
    "NOTE:Prix: 12 € — à payer\r\nTEL;TYPE=CELL:+46 70 765 43 21\r\nEND:VCARD\r\n"
)


@pytest.fixture
def alice(migrated_db_url: str) -> str:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    return migrated_db_url


def _import(url: str, path: Path, collection: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["import", str(path), "--user", "alice", "--collection", collection, "--create"]
    return _cli(url, *args, *extra)


def _decoded(text: str) -> dict[str, list[Any]]:
    """{property: [(sorted TYPEs, decoded value)]} of a vCard, without VERSION/UID/PRODID/REV."""
    card = vobject.readOne(text)
    out: dict[str, list[Any]] = {}
    for child in card.getChildren():
        name = child.name.upper()
        if name in ("VERSION", "UID", "PRODID", "REV"):
            continue
        value = child.value
        if name == "N":
            value = (value.family, value.given, value.additional, value.prefix, value.suffix)
        elif name == "ADR":
            parts = ("box", "extended", "street", "city", "region", "code", "country")
            value = tuple(getattr(value, part) for part in parts)
        elif name in ("ORG", "CATEGORIES"):
            value = tuple(value)
        types = tuple(sorted(str(t).lower() for t in child.params.get("TYPE", [])))
        out.setdefault(name, []).append((types, value))
    return out


def _cards_over_http(server: ServerProcess, collection: str) -> dict[str, dict[str, list[Any]]]:
    """Every card of ``/alice/<collection>/`` as a client GETs it, decoded, by FN."""
    client = Dav(server.url, "alice", PASSWORD)
    status, _, hrefs = client.sync(f"/alice/{collection}/")
    assert status == 207
    cards = {}
    for href in hrefs:
        response = client.request("GET", href)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/vcard")
        decoded = _decoded(response.content.decode("utf-8"))
        cards[decoded["FN"][0][1]] = decoded
    return cards


def test_the_samples_are_what_the_exporters_write() -> None:
    google, outlook = GOOGLE.read_bytes(), OUTLOOK.read_bytes()
    assert google.startswith(codecs.BOM_UTF16_LE)
    assert (
        google[2:]
        .decode("utf-16-le")
        .startswith("Name,Given Name,Additional Name,Family Name,Yomi Name,")
    )
    assert "E-mail 1 - Type,E-mail 1 - Value,E-mail 2 - Type" in google.decode("utf-16")
    with pytest.raises(UnicodeDecodeError):
        outlook.decode("utf-8")
    header = outlook.decode("cp1252").split("\r\n", 1)[0]
    assert header.startswith('"Title","First Name","Middle Name","Last Name","Suffix","Company"')
    assert header.count('","') == 91
    assert b"\x80" in outlook  # €
    assert b'"0/0/00"' in outlook
    assert b'"4/15/1980"' in outlook


@pytest.mark.parametrize(
    ("data", "codec", "reason"),
    [
        (codecs.BOM_UTF16_LE + "Zoë €\n".encode("utf-16-le"), "utf-16-le", "byte-order mark"),
        (codecs.BOM_UTF16_BE + "Zoë €\n".encode("utf-16-be"), "utf-16-be", "byte-order mark"),
        (codecs.BOM_UTF32_LE + "Zoë €\n".encode("utf-32-le"), "utf-32-le", "byte-order mark"),
        (codecs.BOM_UTF32_BE + "Zoë €\n".encode("utf-32-be"), "utf-32-be", "byte-order mark"),
        (codecs.BOM_UTF8 + "Zoë €\n".encode(), "utf-8", "byte-order mark"),
        ("Zoë €\n".encode(), "utf-8", ""),
        ("Zoë €\n".encode("cp1252"), "cp1252", "not valid UTF-8"),
        (
            "Name,E-mail\nZoë,zoe@example.fr\n".encode("utf-16-le"),
            "utf-16-le",
            "no byte-order mark; told by its zero bytes",
        ),
    ],
)
def test_detection_order(data: bytes, codec: str, reason: str) -> None:
    decoded = decoding.decode(data)
    assert (decoded.encoding, decoded.reason) == (codec, reason)
    assert decoded.text.startswith(("Zoë €\n", "Name,E-mail\nZoë"))  # the mark is dropped


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        # 0x81 is one of the five bytes Windows-1252 leaves undefined (Ѓ in Windows-1251)
        (b"N:A\r\nFN:x\r\nNOTE:\x81\xe0\xf2\r\n", None, r"byte 0x81 at offset 16 \(line 3\)"),
        (
            "FN:Zoë\n".encode() + "FN:Zoë\n".encode("cp1252"),
            None,
            r"mixes UTF-8 \(at offset 5, line 1\) with bytes that are not UTF-8 "
            r"\(at offset 13, line 2\)",
        ),
        (b"FN:a\nFN:b\x00\n", None, r"zero byte at offset 9 \(line 2\)"),
        ("a\nb\nZoë".encode("cp1252"), "utf-8", r"not valid UTF-8: .* offset 6 \(line 3\)"),
        (codecs.BOM_UTF16_LE + "a\nb".encode("utf-16-le") + b"\x00", None, r"offset 8 \(line 2\)"),
    ],
)
def test_undecodable_bytes_are_named(data: bytes, encoding: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decoding.decode(data, encoding)


@pytest.mark.parametrize("name", ["klingon", "rot13", "zip", "base64"])
def test_unknown_or_non_text_encoding_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown text encoding"):
        decoding.check_encoding(name)


def test_google_and_outlook_exports_import_exactly(alice: str, server: ServerProcess) -> None:
    google = _import(alice, GOOGLE, "google")
    assert google.returncode == 0, google.stderr
    assert google.stdout.startswith("created 3, updated 0, unchanged 0, skipped 0")
    assert f"read {GOOGLE} as UTF-16LE (byte-order mark)\n" in google.stdout
    outlook = _import(alice, OUTLOOK, "outlook")
    assert outlook.returncode == 0, outlook.stderr
    assert outlook.stdout.startswith("created 3, updated 0, unchanged 0, skipped 0")
    assert f"read {OUTLOOK} as Windows-1252 (not valid UTF-8)\n" in outlook.stdout

    assert _cards_over_http(server, "google") == GOOGLE_CARDS
    assert _cards_over_http(server, "outlook") == OUTLOOK_CARDS

    again = _import(alice, OUTLOOK, "outlook")  # the same UIDs: nothing duplicated
    assert again.stdout.startswith("created 0, updated 0, unchanged 3, skipped 0")


def test_exported_csv_of_the_samples_imports_back_exactly(alice: str, tmp_path: Path) -> None:
    assert _import(alice, OUTLOOK, "outlook").returncode == 0
    stored = _stored(alice, "outlook")
    out = tmp_path / "outlook-export.csv"
    exported = _cli(alice, "export", "--user", "alice", "--collection", "outlook", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "Budget 5\u00a0000 € — payé." in out.read_text(encoding="utf-8")
    back = _import(alice, out, "copy")
    assert back.returncode == 0, back.stderr
    assert f"read {out} as UTF-8\n" in back.stdout
    assert _stored(alice, "copy") == stored


def test_encoding_option_overrides_detection(
    alice: str, server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "polish.csv"  # Windows-1250: every byte is defined in 1252 as well
    source.write_bytes(
        "First Name,Last Name,E-mail Address\r\nŁukasz,Żółć,lz@example.pl\r\n".encode("cp1250")
    )
    guessed = _import(alice, source, "guessed")
    assert guessed.returncode == 0, guessed.stderr
    assert "as Windows-1252 (not valid UTF-8)" in guessed.stdout  # the summary shows the guess
    assert set(_cards_over_http(server, "guessed")) == {"£ukasz ¯ó³æ"}

    given = _import(alice, source, "given", "--encoding", "cp1250")
    assert given.returncode == 0, given.stderr
    assert f"read {source} as Windows-1250 (as requested)\n" in given.stdout
    (card,) = _cards_over_http(server, "given").values()
    assert card["N"] == [((), ("Żółć", "Łukasz", "", "", ""))]
    assert card["EMAIL"] == [(("internet",), "lz@example.pl")]


def test_a_cp1252_vcard_from_an_old_phone(
    alice: str, server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "phone.vcf"
    source.write_bytes(OLD_PHONE_VCF.encode("cp1252"))
    result = _import(alice, source, "phone")
    assert result.returncode == 0, result.stderr
    assert "as Windows-1252 (not valid UTF-8)" in result.stdout
    (card,) = _cards_over_http(server, "phone").values()
    assert card["FN"] == [((), "Åsa Lindqvist")]
    assert card["NOTE"] == [((), "Prix: 12 € — à payer")]


def test_bad_encodings_are_clear_errors_and_import_nothing(alice: str, tmp_path: Path) -> None:
    data = OUTLOOK.read_bytes()
    bad = data.index("ç".encode("cp1252"))  # the first non-ASCII byte: in François
    line = data[:bad].count(b"\r\n") + 1
    wrong = _import(alice, OUTLOOK, "contacts", "--encoding", "utf-8")
    assert wrong.returncode == 1
    assert "not valid UTF-8" in wrong.stderr
    assert f"at byte offset {bad} (line {line})" in wrong.stderr

    unknown = _import(alice, OUTLOOK, "contacts", "--encoding", "klingon")
    assert unknown.returncode == 2
    assert "unknown text encoding 'klingon'" in unknown.stderr

    cyrillic = tmp_path / "cyrillic.csv"
    cyrillic.write_bytes("First Name,Last Name\r\nЃорѓи,Ќосев\r\n".encode("cp1251"))  # noqa: RUF001
    undefined = _import(alice, cyrillic, "contacts")
    assert undefined.returncode == 1
    assert "byte 0x81 at offset 22 (line 2) is neither UTF-8 nor Windows-1252" in undefined.stderr
    assert "--encoding" in undefined.stderr
    for result in (wrong, unknown, undefined):
        assert result.stdout == ""
    assert not _exists(alice, "contacts")

    right = _import(alice, cyrillic, "contacts", "--encoding", "cp1251")
    assert right.returncode == 0, right.stderr
    (text,) = _stored(alice, "contacts").values()
    assert "N:Ќосев;Ѓорѓи;;;" in text.split("\r\n")


def _stored(url: str, name: str) -> dict[str, str]:
    storage = transfer.open_storage(url)
    with storage.acquire_lock("r"):
        collection = next(iter(storage.discover(f"/alice/{name}/")))
        return {item.uid: item.serialize() for item in collection.get_all()}


def _exists(url: str, name: str) -> bool:
    storage = transfer.open_storage(url)
    with storage.acquire_lock("r"):
        return bool(list(storage.discover(f"/alice/{name}/")))
