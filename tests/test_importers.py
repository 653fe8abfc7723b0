"""The parsing layer of ``dav-cms import``: vCard and iCalendar files, exports."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from radicale import item as radicale_item

from dav_cms.importers import ParseResult
from dav_cms.importers.csv import parse_csv
from dav_cms.importers.export import to_csv, to_ics, to_vcf
from dav_cms.importers.ics import parse_ics
from dav_cms.importers.vcf import parse_vcf

DATA = Path(__file__).parent / "data" / "importers"


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def accepted_by_radicale(text: str, tag: str) -> bool:
    components = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(components, 10000, is_collection=False, tag=tag)
    item = radicale_item.Item(collection_path="c", vobject_item=components[0])
    item.prepare()
    return item.serialize() == text


def props(text: str) -> list[str]:
    return text.split("\r\n")


# -- vCard ---------------------------------------------------------------------------


def test_vcf_cards_positions_and_broken_card():
    result = parse_vcf(read("contacts.vcf"))
    assert [e.position for e in result.entries] == [1, 2, 4, 5]
    assert [e.line for e in result.entries] == [1, 16, 35, 44]
    assert {e.kind for e in result.entries} == {"VCARD"}
    (skipped,) = result.skipped
    assert (skipped.position, skipped.line) == (3, 29)
    assert "THIS LINE HAS NO COLON" in skipped.reason
    for entry in result.entries:
        assert accepted_by_radicale(entry.text, "VADDRESSBOOK")
        assert f"\r\nUID:{entry.uid}\r\n" in entry.text


def test_vcf_21_converted_to_30_keeping_every_property():
    text = parse_vcf(read("contacts.vcf")).entries[0].text
    lines = props(text)
    assert "VERSION:3.0" in lines
    assert "N:Müller;Jürgen;;Dr.;" in lines  # ISO-8859-1 quoted-printable
    assert "FN:Dr. Jürgen Müller" in lines  # UTF-8 quoted-printable
    assert "TEL;TYPE=WORK,VOICE:+49 30 123456" in lines  # bare 2.1 parameters
    assert "TEL;TYPE=CELL:+49 170 1234567" in lines
    assert "EMAIL;TYPE=INTERNET,PREF:juergen.mueller@example.de" in lines
    assert "ADR;TYPE=HOME:;;Hauptstraße 1\\nHinterhaus;Berlin;;10115;Deutschland" in lines
    assert "NOTE:Erste Zeile\\nZweite Zeile" in lines
    assert "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ==" in lines
    assert "REV:20240101T120000Z" in lines
    assert "CHARSET" not in text
    assert "QUOTED-PRINTABLE" not in text


def test_vcf_30_and_40_cards_keep_uid_groups_and_version():
    entries = parse_vcf(read("contacts.vcf")).entries
    anna, wang = entries[1], entries[2]
    assert anna.uid == "anna-3@example.org"
    assert "item1.EMAIL;TYPE=INTERNET,WORK:anna@example.org" in props(anna.text)
    assert "item1.X-ABLABEL:Büro" in props(anna.text)
    assert wang.uid == "urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    assert "VERSION:4.0" in props(wang.text)
    assert "FN:王小明" in props(wang.text)


def test_vcf_stable_uids():
    first, second = parse_vcf(read("contacts.vcf")), parse_vcf(read("contacts.vcf"))
    assert first.uids == second.uids
    assert first.entries == second.entries
    # A changed REV (volatile) keeps the UID; a changed name does not.
    zoe = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë\r\nN:;Zoë;;;\r\nREV:{}\r\nEND:VCARD\r\n"
    uid1 = parse_vcf(zoe.format("20240101T000000Z")).uids
    uid2 = parse_vcf(zoe.format("20250505T000000Z")).uids
    assert uid1 == uid2
    assert parse_vcf(zoe.replace("Zoë", "Zoe")).uids != uid1


def test_vcf_same_content_in_21_and_30_gets_the_same_uid():
    v21 = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;Jo\r\n"
        "FN:Jo M=C3=BCller\r\nTEL;CELL:1\r\nEND:VCARD\r\n"
    )
    v30 = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Müller;Jo;;;\r\nFN:Jo M=C3=BCller\r\n"
        "TEL;TYPE=CELL:1\r\nEND:VCARD\r\n"
    )
    assert parse_vcf(v21).uids == parse_vcf(v30).uids


def test_vcf_missing_fn_is_derived_or_card_skipped():
    result = parse_vcf(
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;John\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nothing else\r\nEND:VCARD\r\n"
    )
    assert "FN:John Doe" in props(result.entries[0].text)
    assert [(s.position, s.line) for s in result.skipped] == [(2, 5)]


def test_vcf_stray_text_unterminated_and_foreign_blocks():
    result = parse_vcf(
        "hello\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\n"
    )
    assert result.entries == []
    assert [(s.position, s.line) for s in result.skipped] == [(0, 1), (1, 2), (2, 4)]
    assert "missing END:VCARD" in result.skipped[-1].reason


def test_vcf_duplicate_uid_skipped():
    card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:x\r\nFN:{}\r\nEND:VCARD\r\n"
    result = parse_vcf(card.format("A") + card.format("B"))
    assert result.uids == ["x"]
    assert "duplicate UID 'x' (first in card 1)" in result.skipped[0].reason


def test_vcf_strict_raises_with_position():
    with pytest.raises(ValueError, match=r"card 3 \(line 29\)"):
        parse_vcf(read("contacts.vcf"), strict=True)


def test_vcf_round_trip():
    result = parse_vcf(read("contacts.vcf"))
    texts = [e.text for e in result.entries]
    again = parse_vcf(to_vcf(texts))
    assert [e.text for e in again.entries] == texts
    assert again.skipped == []
    via_csv = parse_csv_texts(to_csv(texts))
    assert via_csv == texts


def parse_csv_texts(text: str) -> list[str]:
    result = parse_csv(text, strict=True)
    return [e.text for e in result.entries]


# -- iCalendar -----------------------------------------------------------------------


def calendar() -> ParseResult:
    return parse_ics(read("calendar.ics"))


def test_ics_one_item_per_uid_with_overrides_and_timezones():
    result = calendar()
    assert [e.position for e in result.entries] == [1, 2, 4, 6]
    standup, todo, call, holiday = result.entries
    assert standup.uid == "standup-2024@example.org"
    assert standup.text.count("BEGIN:VEVENT") == 2
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20240112T093000" in props(standup.text)
    assert standup.text.count("BEGIN:VTIMEZONE") == 1
    assert "X-LIC-LOCATION:Europe/Berlin" in props(standup.text)  # the original VTIMEZONE
    assert "America/New_York" not in standup.text
    assert "BEGIN:VALARM" in standup.text
    assert "LOCATION:Raum Müller / 会議室" in props(standup.text)
    assert "TZID:America/New_York" in props(call.text)
    assert "Europe/Berlin" not in call.text
    assert "BEGIN:VTODO" in todo.text
    assert "VTIMEZONE" not in todo.text
    assert f"UID:{todo.uid}" in props(todo.text)
    assert f"UID:{holiday.uid}" in props(holiday.text)
    for entry in result.entries:
        assert entry.kind == "VCALENDAR"
        assert accepted_by_radicale(entry.text, "VCALENDAR")
        assert entry.text.count("PRODID:") == 1


def test_ics_skips_broken_component_and_reads_calendar_properties():
    result = calendar()
    (skipped,) = result.skipped
    assert (skipped.position, skipped.line) == (5, 80)
    assert "2024-99-99" in skipped.reason
    assert result.properties == {
        "D:displayname": "Team Kalender",
        "C:calendar-description": "Meetings, deadlines and to-dos",
    }


def test_ics_stable_uids_and_strict():
    assert calendar().uids == calendar().uids
    with pytest.raises(ValueError, match=r"component 5 \(line 80\)"):
        parse_ics(read("calendar.ics"), strict=True)


def test_ics_mixed_types_under_one_uid_are_skipped():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:same\r\nDTSTAMP:20240101T000000Z\r\n"
        "DTSTART:20240101T100000Z\r\nEND:VEVENT\r\nBEGIN:VTODO\r\nUID:same\r\n"
        "DTSTAMP:20240101T000000Z\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    result = parse_ics(text)
    assert result.entries == []
    assert result.skipped[0].position == 1
    assert "Multiple component types" in result.skipped[0].reason


def test_ics_rrule_limit():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:many\r\nDTSTAMP:20240101T000000Z\r\n"
        "DTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=50\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert parse_ics(text).uids == ["many"]
    assert "Too many" in parse_ics(text, max_rrule_occurrence=10).skipped[0].reason


def test_ics_round_trip_with_unique_timezones():
    texts = [e.text for e in calendar().entries]
    merged = to_ics(texts, name="Team")
    assert merged.count("BEGIN:VTIMEZONE") == 2
    assert merged.count("BEGIN:VCALENDAR") == 1
    again = parse_ics(merged)
    assert [e.text for e in again.entries] == texts
    assert again.properties == {"D:displayname": "Team"}
    # The same recurring event twice: two masters under one UID, rejected as Radicale does.
    (skipped,) = parse_ics(to_ics(texts[:1] + texts[:1])).skipped
    assert "Multiple main components" in skipped.reason
    assert len(skipped.reason) <= 250


def test_export_rejects_wrong_kinds():
    with pytest.raises(ValueError, match="calendar"):
        to_ics(["BEGIN:VCARD\r\nEND:VCARD\r\n"])
    with pytest.raises(ValueError, match="vCard"):
        to_csv([calendar().entries[0].text])


# -- properties ----------------------------------------------------------------------

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VCARD_LIKE = st.lists(
    st.sampled_from(
        [
            "BEGIN:VCARD",
            "END:VCARD",
            "VERSION:2.1",
            "VERSION:3.0",
            "VERSION:4.0",
            "FN:x",
            "N:a;b",
            "TEL;CELL:1",
            "EMAIL;ENCODING=QUOTED-PRINTABLE:=C3=",
            " folded",
            "PHOTO;ENCODING=BASE64:%%%",
            "BDAY:1",
            "UID:",
            "item1.X-Y:z",
            "",
            "BEGIN:VCALENDAR",
            "END:VCALENDAR",
            "BEGIN:VEVENT",
            "END:VEVENT",
            "DTSTART:2024",
            "DTSTART;TZID=X:20240101T000000",
            "RRULE:FREQ=DAILY;COUNT=x",
        ]
    )
    | st.text(max_size=30),
    max_size=25,
)


@SETTINGS
@given(VCARD_LIKE, st.sampled_from(["\r\n", "\n", "\r"]))
def test_parsers_never_raise_except_value_error_in_strict(lines, newline):
    text = newline.join(lines)
    for parse in (parse_vcf, parse_ics):
        result = parse(text)
        for entry in result.entries:
            assert f"UID:{entry.uid}" in entry.text
        with contextlib.suppress(ValueError):
            parse(text, strict=True)


NAME = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=12
).filter(lambda s: s.strip() == s)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            NAME,
            NAME,
            st.lists(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.de", fullmatch=True), max_size=3),
            st.text(max_size=20),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_generated_contacts_round_trip(contacts):
    cards = []
    for given_name, family, emails, note in contacts:
        lines = [
            "BEGIN:VCARD",
            "VERSION:3.0",
            f"FN:{esc(given_name + ' ' + family) or 'x'}",
            f"N:{esc(family)};{esc(given_name)};;;",
        ]
        lines += [f"EMAIL;TYPE=work:{email}" for email in emails]
        if note.strip():
            lines.append(f"NOTE:{esc(note)}")
        cards.append("\r\n".join([*lines, "END:VCARD", ""]))
    result = parse_vcf("".join(cards))
    texts = [e.text for e in result.entries]
    assert len(texts) + len(result.skipped) == len(cards)
    assert [e.text for e in parse_vcf(to_vcf(texts)).entries] == texts
    assert parse_csv_texts(to_csv(texts)) == texts


def esc(value: str) -> str:
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
