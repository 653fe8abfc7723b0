"""vCard import keeps every property value: decoded before and after, compared.

The samples (``tests/data/vcard_fidelity``) are written the way the exporters
write them: an Android vCard 2.1 export (every byte of a value quoted-printable,
soft line breaks every 67 columns, components encoded one by one), an
Outlook-style 2.1 card (ISO-8859-1/Windows-1252 quoted-printable, soft breaks
inside text), an iOS 3.0 export (``item1.`` groups, ``X-ABLabel``, escapes,
folded lines, a PNG photo) and a Nextcloud/Thunderbird 4.0 card (``data:``
photo, ``TEL;VALUE=uri``, quoted ``TYPE``, ``LABEL`` parameter, unknown IANA
properties).

:func:`decode_card` below is an independent reader: it turns each property into
its group, name, normalised parameters and *decoded* value (quoted-printable in
its charset, base64 as bytes, text unescaped and split into components and list
elements only where the property is structured or a list). Import must give
back the same decoded properties, except that ``VERSION:2.1`` becomes ``3.0``
and a card without ``UID`` gets one.
"""

from __future__ import annotations

import base64
import quopri
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from radicale import item as radicale_item

from dav_cms import transfer
from dav_cms.importers.export import to_vcf
from dav_cms.importers.folds import join_split_characters
from dav_cms.importers.vcf import parse_vcf
from tests import factories
from tests.cli_runner import run_with_url
from tests.dav import Dav, response_statuses
from tests.servers import start_server

DATA = Path(__file__).parent / "data" / "vcard_fidelity"
SAMPLES = {"android_21.vcf": 3, "ios_30.vcf": 2, "nextcloud_40.vcf": 1}
PASSWORD = "vcard-fidelity-pw"

# -- an independent decoder ------------------------------------------------------------

_LINE = re.compile(
    r"^(?:(?P<group>[A-Za-z0-9-]+)\.)?(?P<name>[A-Za-z0-9-]+)"
    r'(?P<params>(?:;(?:[^:;"]|"[^"]*")*)*):(?P<value>.*)$',
    re.S,
)
_PARAM = re.compile(r';((?:[^;"]|"[^"]*")*)')
TEXT = {"FN", "NOTE", "TITLE", "ROLE", "LABEL", "EMAIL", "UID", "PRODID", "MAILER"}
LISTS = {"NICKNAME", "CATEGORIES"}
CODECS = {"UTF-8": "utf-8", "ISO-8859-1": "latin-1", "WINDOWS-1252": "cp1252"}


@dataclass(frozen=True)
class Prop:
    group: str
    name: str
    params: frozenset[tuple[str, str]]
    value: object


def cards_of(text: str) -> list[list[str]]:
    """The physical lines of each card (BEGIN/END left out)."""
    cards: list[list[str]] = []
    for match in re.finditer(r"(?ms)^BEGIN:VCARD\r?\n(.*?)^END:VCARD\r?$", text):
        cards.append(match.group(1).replace("\r\n", "\n").split("\n"))
    return cards


def content_lines(physical: list[str]) -> list[str]:
    """Unfold: quoted-printable soft breaks join the next line as is, folds lose one blank."""
    lines: list[str] = []
    soft = False
    for line in physical:
        if soft:
            lines[-1] = lines[-1][:-1] + line
        elif line[:1] in (" ", "\t"):
            lines[-1] += line[1:]
        elif line:
            lines.append(line)
        else:
            continue
        soft = "QUOTED-PRINTABLE" in lines[-1].split(":", 1)[0].upper() and lines[-1][-1:] == "="
    return lines


def unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            out.append("\n" if nxt in "nN" else nxt if nxt in "\\,;" else "\\" + nxt)
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def split(text: str, sep: str) -> list[str]:
    """Split at ``sep`` not preceded by an escaping backslash (escapes kept)."""
    parts, current, index = [], "", 0
    while index < len(text):
        if text[index] == "\\":
            current += text[index : index + 2]
            index += 2
            continue
        if text[index] == sep:
            parts.append(current)
            current = ""
        else:
            current += text[index]
        index += 1
    return [*parts, current]


def trimmed(parts: list[object], empty: object) -> tuple[object, ...]:
    while parts and parts[-1] == empty:
        parts.pop()
    return tuple(parts)


def decode_card(physical: list[str]) -> list[Prop]:
    lines = content_lines(physical)
    version = next(line[8:].strip() for line in lines if line.upper().startswith("VERSION:"))
    return [decode_line(line, legacy=version == "2.1") for line in lines]


def decode_line(line: str, *, legacy: bool) -> Prop:
    match = _LINE.match(line)
    assert match, line
    name = match["name"].upper()
    params: set[tuple[str, str]] = set()
    encoding = charset = ""
    for param in _PARAM.findall(match["params"]):
        key, _, given = param.partition("=") if "=" in param else ("TYPE", "", param)
        key = key.upper()
        if key == "TYPE" and given.upper() in ("QUOTED-PRINTABLE", "BASE64"):
            encoding = given.upper()
        elif key == "CHARSET":
            charset = given.upper()
        elif key == "ENCODING":
            encoding = given.upper()
        elif key == "TYPE":
            params.update(("TYPE", t.lower()) for t in given.strip('"').split(","))
        elif key == "VALUE":
            params.add(("VALUE", "uri" if given.lower() == "url" else given.lower()))
        else:
            params.add((key, given.strip('"') if given.startswith('"') else given))
    raw = match["value"]
    if encoding in ("B", "BASE64"):
        value: object = base64.b64decode("".join(raw.split()))
    elif legacy or encoding == "QUOTED-PRINTABLE":
        value = decode_21(name, raw, encoding, CODECS.get(charset, "utf-8"))
    else:
        value = decode_30(name, raw)
    return Prop((match["group"] or "").lower(), name, frozenset(params), value)


def decode_21(name: str, raw: str, encoding: str, codec: str) -> object:
    compound = name in ("N", "ADR", "ORG") or name.startswith("X-")
    parts = re.split(r"(?<!\\);", raw) if compound else [raw]
    parts = [part.replace("\\;", ";") for part in parts]
    if encoding == "QUOTED-PRINTABLE":
        parts = [quopri.decodestring(part.encode("ascii")).decode(codec) for part in parts]
    parts = [part.replace("\r\n", "\n") for part in parts]
    if name in ("N", "ADR"):
        return trimmed([(part,) for part in parts], ("",))
    if compound:
        return trimmed(list(parts), "")
    if name == "CATEGORIES":
        return tuple(re.split(r"[,;]", parts[0]))
    if name == "GEO":
        return tuple(parts[0].split(","))
    return (parts[0],)


def decode_30(name: str, raw: str) -> object:
    if name in TEXT:
        return (unescape(raw),)
    if name in ("N", "ADR"):
        comps = [tuple(unescape(v) for v in split(comp, ",")) for comp in split(raw, ";")]
        return trimmed(list(comps), ("",))
    if name == "ORG" or name.startswith("X-"):
        return trimmed([unescape(comp) for comp in split(raw, ";")], "")
    if name in LISTS:
        return tuple(unescape(v) for v in split(raw, ","))
    if name == "GEO" and not raw.startswith("geo:"):
        return tuple(raw.split(";"))
    data = re.fullmatch(r"data:([^;,]*);base64,(.*)", raw, re.S)
    if data:
        return (data[1], base64.b64decode(data[2]))
    return (raw,)


def comparable(props: list[Prop]) -> Counter[Prop]:
    """Every property except VERSION (2.1 becomes 3.0) and UID (added when missing)."""
    return Counter(p for p in props if p.name not in ("VERSION", "UID"))


def assert_same_meaning(source: list[str], imported: str) -> None:
    before = decode_card(source)
    after = decode_card(cards_of(imported)[0])
    assert comparable(after) == comparable(before), {
        "lost": comparable(before) - comparable(after),
        "new": comparable(after) - comparable(before),
    }
    old_uid = [p.value for p in before if p.name == "UID"]
    new_uid = [p.value for p in after if p.name == "UID"]
    assert len(new_uid) == 1
    assert old_uid in ([], new_uid)
    old_version = next(p.value for p in before if p.name == "VERSION")
    new_version = next(p.value for p in after if p.name == "VERSION")
    assert new_version == (("3.0",) if old_version == ("2.1",) else old_version)


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


# -- the parser ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_parse_keeps_every_property(name: str) -> None:
    source = cards_of(sample(name))
    result = parse_vcf(sample(name))
    assert result.skipped == []
    assert len(result.entries) == len(source) == SAMPLES[name]
    for card, entry in zip(source, result.entries, strict=True):
        assert_same_meaning(card, entry.text)
        # What Radicale serves must be what it reads back (no later re-encoding).
        (component,) = radicale_item.read_components(entry.text)
        assert radicale_item.get_uid(component) == entry.uid


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_import_is_stable_under_export_round_trip(name: str) -> None:
    texts = [entry.text for entry in parse_vcf(sample(name)).entries]
    assert [entry.text for entry in parse_vcf(to_vcf(texts)).entries] == texts


def values(text: str, name: str) -> list[object]:
    return [p.value for p in decode_card(cards_of(text)[0]) if p.name == name]


def test_android_quoted_printable_note_with_commas_is_kept_whole() -> None:
    jurgen, bob, francois = (entry.text for entry in parse_vcf(sample("android_21.vcf")).entries)
    assert values(jurgen, "NOTE") == [
        (
            "Kennengelernt auf der Messe in Köln, Halle 7, Stand B12.\n"
            "Interessiert an: Wartung, Schulung, Support; Angebot bis 30.6. schicken!\n"
            "Rückruf: Mo\u2013Fr, 9\u201317 Uhr. Pfad: C:\\Kunden\\Müller\n\nEnde, wirklich.",
        )
    ]
    assert "NOTE:Kennengelernt auf der Messe in Köln\\, Halle 7\\," in jurgen
    # A semicolon encoded as =3B belongs to its component, as Android means it.
    assert values(jurgen, "ADR") == [
        (
            ("",),
            ("",),
            ("Hauptstraße 1\nc/o Schmidt; Hinterhaus",),
            ("Berlin",),
            ("",),
            ("10115",),
            ("Deutschland",),
        )
    ]
    assert values(jurgen, "ORG") == [("Müller & Söhne, GmbH", "Forschung; Entwicklung")]
    tels = [("+49 170 1234567",), ("+49 30 1234-56,,789",), ("+49 30 987654",)]
    assert values(jurgen, "TEL") == tels
    (photo,) = values(jurgen, "PHOTO")
    assert isinstance(photo, bytes)
    assert photo.startswith(b"\xff\xd8") and photo.endswith(b"\xff\xd9")
    assert values(bob, "NOTE") == [
        ("Call back, after 6pm; ask for Bob. Path C:\\temp\\new",),
        ("Zweite Notiz, mit Komma",),
    ]
    assert values(francois, "NOTE") == [
        (
            "Rendez-vous à 10h, salle 3; coût 5 € par personne, café compris. \n"
            "Deuxième ligne, fin; vraiment.",
        )
    ]
    assert values(francois, "GEO") == [("48.8566", "2.3522")]
    for text in (jurgen, bob, francois):
        assert "QUOTED-PRINTABLE" not in text and "CHARSET" not in text


def test_quoted_printable_edge_cases() -> None:
    card = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:X;Y\r\n"
        # Declared UTF-8, but the bytes are Windows-1252: read as Windows-1252.
        "NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:caf=E9, cr=E8me\r\n"
        # An unknown charset name: UTF-8.
        "TITLE;CHARSET=X-UNKNOWN;QUOTED-PRINTABLE:Gr=C3=BC=C3=9Fe, alle\r\n"
        "URL;VALUE=URL:http://example.org/a;b,c\r\n"
        # Base64 continued on a line without leading blank, then a blank line.
        "PHOTO;ENCODING=BASE64;TYPE=PNG:iVBORw0KGgo\r\n"
        "AAAA\r\n"
        "\r\n"
        # A literal '=' not followed by hex digits, and a soft line break before END.
        "ROLE;ENCODING=QUOTED-PRINTABLE:a = b, c=\r\n"
        "END:VCARD\r\n"
    )
    (entry,) = parse_vcf(card).entries
    assert values(entry.text, "NOTE") == [("café, crème",)]
    assert values(entry.text, "TITLE") == [("Grüße, alle",)]
    assert values(entry.text, "ROLE") == [("a = b, c",)]
    assert values(entry.text, "URL") == [("http://example.org/a;b,c",)]
    assert "URL;VALUE=uri:http://example.org/a;b,c" in entry.text
    assert values(entry.text, "PHOTO") == [base64.b64decode("iVBORw0KGgoAAAA=")]


def test_folds_inside_multibyte_characters_are_joined() -> None:
    data = (DATA / "split_utf8_folds.vcf").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the sample really splits characters
    joined = join_split_characters(data)
    (entry,) = parse_vcf(joined.decode("utf-8")).entries
    assert values(entry.text, "NOTE") == [("Notiz." + " Grüße aus München, 日本語のメモ; " * 5,)]
    # The import command's reader joins them before detecting the encoding.
    decoded = transfer.read_file(str(DATA / "split_utf8_folds.vcf"), None, "vcf")
    assert decoded.text == joined.decode("utf-8")
    assert "UTF-8" in decoded.description
    # Folds between whole characters are left alone.
    ascii_folds = b"BEGIN:VCARD\r\nNOTE:abc\r\n def\r\n \xc3\xa4\r\nEND:VCARD\r\n"
    assert join_split_characters(ascii_folds) == ascii_folds


# -- generated values ------------------------------------------------------------------

VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(",;\\\n:="),
    max_size=40,
)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def android_qp(text: str) -> str:
    encoded = "".join(f"={byte:02X}" for byte in text.replace("\n", "\r\n").encode("utf-8"))
    return "=\r\n".join(encoded[i : i + 66] for i in range(0, len(encoded), 66))


def esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return text.replace("\n", "\\n")


@SETTINGS
@given(VALUE, VALUE, VALUE)
def test_generated_values_survive_21_and_30(note: str, street: str, unit: str) -> None:
    qp = "CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE"
    v21 = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Gen\r\n"
        f"NOTE;{qp}:{android_qp(note)}\r\n"
        f"ADR;HOME;{qp}:;;{android_qp(street)};Town;;;\r\n"
        f"ORG;{qp}:Org;{android_qp(unit)}\r\n"
        f"X-ANDROID-CUSTOM;{qp}:vnd.android.cursor.item/nickname;{android_qp(unit)};1\r\n"
        "END:VCARD\r\n"
    )
    v30 = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Gen\r\n"
        f"NOTE:{esc(note)}\r\nADR;TYPE=HOME:;;{esc(street)};Town;;;\r\n"
        f"ORG:Org;{esc(unit)}\r\nX-ANDROID-CUSTOM:vnd.android.cursor.item/nickname;{esc(unit)};1\r\n"
        f"TEL;VALUE=uri:tel:+1-555;ext={unit.replace(chr(10), '')}\r\nEND:VCARD\r\n"
    )
    for card in (v21, v30):
        result = parse_vcf(card)
        assert result.skipped == []
        (entry,) = result.entries
        assert_same_meaning(cards_of(card)[0], entry.text)
        assert parse_vcf(entry.text).entries[0].text == entry.text


# -- the real path: dav-cms import, then GET from a server -----------------------------


def _import(url: str, path: Path, collection: str) -> str:
    done = run_with_url(
        url, "import", str(path), "--user", "alice", "--collection", collection, "--create"
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_then_get_over_http_keeps_every_property(
    migrated_db_url: str, tmp_path: Path
) -> None:
    factories.add_user(migrated_db_url, "alice", PASSWORD)
    for name, count in SAMPLES.items():
        summary = _import(migrated_db_url, DATA / name, Path(name).stem)
        assert summary.startswith(f"created {count}, updated 0, unchanged 0,"), summary
    server = start_server(migrated_db_url, tmp_path)
    try:
        client = Dav(server.url, "alice", PASSWORD)
        for name in SAMPLES:
            collection = f"/alice/{Path(name).stem}/"
            listing = client.request("PROPFIND", collection, Depth="1")
            assert listing.status_code == 207, listing.text
            hrefs = [href for href in response_statuses(listing.text) if href != collection]
            served = []
            for href in hrefs:
                response = client.request("GET", href)
                assert response.status_code == 200, href
                served.append(response.content.decode("utf-8"))
            by_fn = {values(text, "FN")[0]: text for text in served}
            source = cards_of(sample(name))
            assert len(by_fn) == len(source)
            for card in source:
                fn = next(p.value for p in decode_card(card) if p.name == "FN")
                assert_same_meaning(card, by_fn[fn])
    finally:
        server.stop()
