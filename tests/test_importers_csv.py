"""CSV contact lists: Google, Outlook, mapped columns, dav-cms export layout."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dav_cms.importers.csv import load_mapping, parse_csv, parse_spec
from dav_cms.importers.export import to_csv

DATA = Path(__file__).parent / "data" / "importers"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def lines(text: str) -> list[str]:
    return text.split("\r\n")


def test_google_old_layout_fields():
    result = parse_csv(read("google.csv"))
    assert [(e.position, e.line) for e in result.entries] == [(1, 2), (2, 5), (4, 7)]
    jm = lines(result.entries[0].text)
    assert "VERSION:3.0" in jm
    assert "FN:Jürgen Müller" in jm
    assert "N:Müller;Jürgen;;Dr.;" in jm
    assert "NICKNAME:Jü" in jm
    assert "BDAY:1975-04-23" in jm
    assert "NOTE:Met at the conference.\\nPrefers e-mail\\, not phone." in jm
    assert "CATEGORIES:Kunden" in jm  # Google's "* myContacts" system group dropped
    assert "EMAIL;TYPE=pref,work:juergen.mueller@example.de" in jm
    assert "EMAIL;TYPE=home:jm@example.org" in jm
    assert "TEL;TYPE=cell:+49 170 1234567" in jm
    assert "TEL;TYPE=work:+49 30 123456" in jm
    assert "ADR;TYPE=home:;;Hauptstraße 1;Berlin;;10115;Deutschland" in jm
    assert "ORG:Müller & Söhne GmbH;Vertrieb" in jm
    assert "TITLE:Geschäftsführer" in jm
    assert "URL;TYPE=blog:https://blog.example.de/jm" in jm
    wang = lines(result.entries[1].text)
    assert "FN:王小明" in wang
    assert "N:王;小明;;;" in wang
    assert "BDAY:--05-17" in wang
    assert "EMAIL;TYPE=other:wang@example.cn" in wang  # " ::: " separates values
    assert "EMAIL;TYPE=other:xm.wang@example.com" in wang
    assert "FN:Zoë" in lines(result.entries[2].text)
    (skipped,) = result.skipped
    assert (skipped.position, skipped.line) == (3, 6)
    assert skipped.reason == "no name, company, e-mail or phone"


def test_google_new_layout_fields():
    (entry,) = parse_csv(read("google_new.csv")).entries
    card = lines(entry.text)
    assert "FN:Ana María García" in card
    assert "N:García;Ana;María;;" in card
    assert "ORG:Acme S.L." in card
    assert "TITLE:Ingeniera" in card
    assert "EMAIL;TYPE=pref,work:ana.garcia@example.es" in card
    assert "ADR;TYPE=work:;;Calle Mayor 5;Madrid;;28013;España" in card
    assert "NOTE:Línea 1\\nLínea 2" in card
    assert "CATEGORIES:Trabajo" in card


def test_outlook_layout_fields():
    result = parse_csv(read("outlook.csv"))
    assert [(e.position, e.line) for e in result.entries] == [(1, 2), (2, 4), (4, 6)]
    bjorn = lines(result.entries[0].text)
    assert "FN:Björn Ångström" in bjorn
    assert "ORG:Nordic Trading AB;Einkauf" in bjorn
    assert "TITLE:Buyer" in bjorn
    assert "ADR;TYPE=work:;;Storgatan 12\\nBox 42;Stockholm;;111 22;Sweden" in bjorn
    assert "TEL;TYPE=work,fax:+46 8 123 457" in bjorn
    assert "TEL;TYPE=work,voice:+46 8 123 456" in bjorn
    assert "TEL;TYPE=cell:+46 70 123 45 67" in bjorn
    assert "BDAY:1985-03-14" in bjorn
    assert "CATEGORIES:Suppliers,VIP" in bjorn
    assert "EMAIL;TYPE=internet:bjorn@example.se" in bjorn
    assert "EMAIL;TYPE=internet:bjorn.private@example.com" in bjorn
    assert "NOTE:Call before noon.\\nSpeaks German and English." in bjorn
    assert "URL:https://nordic.example.se" in bjorn
    taro = lines(result.entries[1].text)
    assert "FN:Mr. Taro Yamada" in taro
    assert "ADR;TYPE=home:;;1-2-3 Shibuya;東京;;150-0002;Japan" in taro
    assert not any(line.startswith("BDAY") for line in taro)  # Outlook's 0/0/00
    assert "FN:Acme Corp" in lines(result.entries[2].text)
    assert [(s.position, s.line) for s in result.skipped] == [(3, 5)]


def test_csv_stable_uids_and_strict():
    for name in ("google.csv", "google_new.csv", "outlook.csv"):
        assert parse_csv(read(name)).entries == parse_csv(read(name)).entries
    with pytest.raises(ValueError, match=r"row 3 \(line 6\): no name"):
        parse_csv(read("google.csv"), strict=True)


def test_csv_semicolon_delimiter_crlf_and_bom():
    text = '\ufeffFirst Name;Last Name;E-mail Address\r\n"Jörg";"Groß";"jg@example.de"\r\n'
    (entry,) = parse_csv(text).entries
    assert "N:Groß;Jörg;;;" in lines(entry.text)


def test_mapping_and_load_mapping(tmp_path):
    mapping = {
        "Mail": "EMAIL;TYPE=work",
        "Handy": "TEL;TYPE=cell",
        "Strasse": "ADR.street;TYPE=home",
        "Ort": "ADR.city;TYPE=home",
        "Name": "FN",
        "Schuhgröße": "shoe-size",
        "Memo": None,
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    assert load_mapping(path) == mapping
    text = "Name,Mail,Handy,Strasse,Ort,Schuhgröße,Memo\nEva,eva@x.de,0171,Weg 1,Köln,38,secret\n"
    (entry,) = parse_csv(text, load_mapping(path)).entries
    card = lines(entry.text)
    assert "FN:Eva" in card
    assert "EMAIL;TYPE=work:eva@x.de" in card
    assert "TEL;TYPE=cell:0171" in card
    assert "ADR;TYPE=home:;;Weg 1;Köln;;;" in card
    assert "X-SHOE-SIZE:38" in card
    assert "secret" not in entry.text


def test_invalid_mappings_and_unknown_header(tmp_path):
    with pytest.raises(ValueError, match="invalid part"):
        parse_spec("EMAIL.street")
    with pytest.raises(ValueError, match="only TYPE"):
        parse_spec("EMAIL;PREF=1")
    path = tmp_path / "m.json"
    path.write_text('["EMAIL"]', encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object"):
        load_mapping(path)
    result = parse_csv("foo,bar\n1,2\n")
    assert result.entries == []
    assert result.skipped[0].reason.startswith("no known columns")
    with pytest.raises(ValueError, match="no known columns"):
        parse_csv("foo,bar\n1,2\n", strict=True)


def test_csv_round_trip_of_every_sample():
    for name in ("google.csv", "google_new.csv", "outlook.csv"):
        texts = [e.text for e in parse_csv(read(name)).entries]
        exported = to_csv(texts)
        assert exported.splitlines()[0].startswith("UID,FN,N.family,N.given")
        again = parse_csv(exported, strict=True)
        assert [e.text for e in again.entries] == texts
        # The readable columns alone reproduce these cards: no VCARD fallback needed.
        assert "BEGIN:VCARD" not in exported


CELL = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=15)


@SETTINGS
@given(st.lists(st.lists(CELL, max_size=8), max_size=6), st.sampled_from([",", ";"]))
def test_parse_csv_never_raises_except_value_error_in_strict(rows, delimiter):
    header = delimiter.join(["Name", "E-mail 1 - Value", "Phone 1 - Type", "Phone 1 - Value"])
    body = "\n".join(delimiter.join(row) for row in rows)
    for text in (header + "\n" + body, body):
        result = parse_csv(text)
        assert all(e.kind == "VCARD" for e in result.entries)
        with contextlib.suppress(ValueError):
            parse_csv(text, strict=True)


PLAIN = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
)


@SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "First Name": PLAIN,
                "Last Name": PLAIN,
                "Company": PLAIN,
                "E-mail Address": st.from_regex(r"([a-z]{1,6}@[a-z]{1,6}\.se)?", fullmatch=True),
                "Mobile Phone": st.from_regex(r"(\+46 [0-9]{2,8})?", fullmatch=True),
                "Notes": st.text(max_size=30),
                "Home City": PLAIN,
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_generated_outlook_rows_round_trip(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    first = parse_csv(out.getvalue())
    texts = [e.text for e in first.entries]
    non_blank = [row for row in rows if any(v.strip() for v in row.values())]
    assert len(texts) + len(first.skipped) == len(non_blank)  # blank rows are ignored
    assert [e.text for e in parse_csv(out.getvalue()).entries] == texts
    assert [e.text for e in parse_csv(to_csv(texts), strict=True).entries] == texts
