"""Deterministic test data: vCards 3.0 and VEVENTs, and loading them into a storage.

Item ``i`` of a kind depends only on (seed, kind, i), so the first 1000 items of
a 10000-item data set are the 1000-item data set and every server gets exactly
the same items.
"""

from __future__ import annotations

import base64
import random
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SEED = 20260101
CONTACTS = "bench/contacts"
CALENDAR = "bench/calendar"
USER = "bench"

# Events are spread over these 48 months; the calendar-query asks for one.
EVENTS_FROM = datetime(2024, 1, 1, tzinfo=UTC)
EVENTS_DAYS = 4 * 365
QUERY_MONTH = ("20260301T000000Z", "20260401T000000Z")
# Radicale's default [server] max_vevent_rrule_occurrence.
MAX_RRULE_OCCURRENCE = 10000

FIRST_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hannah",
    "Ivan",
    "Julia",
    "Karl",
    "Laura",
    "Max",
    "Nina",
    "Oscar",
    "Paula",
    "Quentin",
    "Rosa",
    "Simon",
    "Tina",
    "Ulrich",
    "Vera",
    "William",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Liam",
    "Olivia",
    "Noah",
    "Mia",
    "Lucas",
    "Sofia",
    "Elias",
    "Lea",
    "Jonas",
    "Marie",
    "Paul",
    "Lena",
    "Tom",
    "Sarah",
]
ACCENTED_FIRST = ["José", "Zoë", "Łukasz", "Søren", "Chloé", "Jürgen", "Ana-María", "Dvořák"]
LAST_NAMES = [
    "Smith",
    "Müller",
    "Garcia",
    "Rossi",
    "Dubois",
    "Novak",
    "Jansen",
    "Kowalski",
    "Nielsen",
    "Silva",
    "Brown",
    "Schneider",
    "Martin",
    "Bianchi",
    "Leroy",
    "Horvat",
    "Visser",
    "Nowak",
    "Hansen",
    "Costa",
    "Taylor",
    "Fischer",
    "Lopez",
    "Romano",
    "Moreau",
    "Kovac",
    "Bakker",
    "Wisniewski",
    "Berg",
    "Pereira",
    "Wilson",
    "Weber",
    "Sanchez",
    "Ricci",
    "Laurent",
    "Popescu",
    "Meijer",
    "Lewandowski",
    "Lund",
    "Santos",
]
ACCENTED_LAST = ["Gómez", "Öztürk", "Ærø", "Čapek", "Ñúñez", "Håkansson", "Dvořáková", "Żak"]
# Family name, given name (CJK names are written family-first).
CJK_NAMES = [
    ("山田", "太郎"),
    ("佐藤", "花子"),
    ("王", "伟"),
    ("李", "娜"),
    ("김", "민준"),
    ("鈴木", "一郎"),
    ("张", "敏"),
    ("박", "서연"),
]
COMPANIES = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella GmbH",
    "Stark Industries",
    "Wayne Enterprises",
    "Tyrell Corporation",
    "Cyberdyne Systems",
    "Soylent AG",
    "Hooli",
    "Vandelay Industries",
    "Aperture Science",
    "株式会社サンプル",
    "Société Générale d'Exemple",
]
DEPARTMENTS = ["Sales", "Research", "Engineering", "Support", "Finance", "Legal", "Marketing"]
TITLES = [
    "Engineer",
    "Senior Engineer",
    "Sales Manager",
    "Accountant",
    "CEO",
    "Designer",
    "Product Owner",
    "Consultant",
    "Lawyer",
    "Technician",
]
CITIES = [
    ("Hauptstraße 12", "Berlin", "10115", "Germany"),
    ("5th Avenue 350", "New York", "10118", "USA"),
    ("Rue de Rivoli 99", "Paris", "75001", "France"),
    ("Via Roma 1", "Milano", "20121", "Italy"),
    ("Kärntner Straße 5", "Wien", "1010", "Austria"),
    ("銀座 4-6-16", "東京", "104-0061", "Japan"),
    ("Calle Mayor 3", "Madrid", "28013", "Spain"),
    ("Nowy Świat 15", "Warszawa", "00-029", "Poland"),
]
MAIL_DOMAINS = ["example.org", "mail.example", "example.com", "post.example.net"]
SUMMARIES = [
    "Team meeting",
    "1:1",
    "Lunch",
    "Dentist",
    "Sprint planning",
    "Customer call",
    "Yoga",
    "Réunion budget",
    "Zahnarzt",
    "Code review",
    "Flight to Tokyo",
    "会議",
    "Birthday party",
]
TIMEZONES = {
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\n"
        "DTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\n"
        "DTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "Asia/Tokyo": (
        "BEGIN:VTIMEZONE\r\nTZID:Asia/Tokyo\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nTZNAME:JST\r\n"
        "DTSTART:19700101T000000\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
}
RRULES = [
    "FREQ=WEEKLY;COUNT=10",
    "FREQ=DAILY;COUNT=5",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=12",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL={until}",
    "FREQ=YEARLY",
]


def _rng(kind: str, index: int, seed: int) -> random.Random:
    return random.Random(f"{seed}/{kind}/{index}")


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _fold(line: str) -> str:
    """RFC 6350/5545 line folding at 75 octets (ASCII lines only: used for PHOTO)."""
    if len(line) <= 75:
        return line + "\r\n"
    parts = [line[:75]] + [line[i : i + 74] for i in range(75, len(line), 74)]
    return "\r\n ".join(parts) + "\r\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _ascii(text: str) -> str:
    cleaned = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L")).lower()
    return "".join(char for char in cleaned if char.isascii() and char.isalnum()) or "user"


@dataclass(frozen=True)
class Card:
    """One generated vCard."""

    uid: str
    text: str
    family: str
    email: str


def person(index: int, seed: int = SEED) -> tuple[str, str]:
    """(given, family) name of card ``index``."""
    rng = _rng("name", index, seed)
    roll = rng.random()
    if roll < 0.05:
        family, given = rng.choice(CJK_NAMES)
        return given, family
    given = rng.choice(ACCENTED_FIRST if roll < 0.15 else FIRST_NAMES)
    family = rng.choice(ACCENTED_LAST if rng.random() < 0.1 else LAST_NAMES)
    return given, family


def vcard(index: int, seed: int = SEED, note: str = "") -> Card:
    """A realistic vCard 3.0: several emails, phones, addresses, ORG/TITLE/NOTE, some PHOTOs."""
    rng = _rng("card", index, seed)
    uid = _uid(rng)
    given, family = person(index, seed)
    is_cjk = (family, given) in CJK_NAMES
    full_name = f"{family} {given}" if is_cjk else f"{given} {family}"
    local = f"{_ascii(given)}.{_ascii(family)}{index}"
    emails = [f"{local}@{rng.choice(MAIL_DOMAINS)}"]
    emails += [
        f"{_ascii(given)[0]}{_ascii(family)}{rng.randrange(1000)}@{rng.choice(MAIL_DOMAINS)}"
        for _ in range(rng.randrange(3))
    ]
    company = rng.choice(COMPANIES)
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"UID:{uid}",
        f"FN:{_escape(full_name)}",
        f"N:{_escape(family)};{_escape(given)};;;",
    ]
    for n, email in enumerate(emails):
        kind = ("WORK", "HOME", "OTHER")[n]
        pref = ",PREF" if n == 0 else ""
        lines.append(f"EMAIL;TYPE=INTERNET,{kind}{pref}:{email}")
    for kind in rng.sample(["CELL", "WORK,VOICE", "HOME,VOICE", "FAX"], rng.randrange(1, 4)):
        lines.append(
            f"TEL;TYPE={kind}:+{rng.randrange(1, 99)} {rng.randrange(100, 999)} "
            f"{rng.randrange(1000000, 9999999)}"
        )
    for kind in ("WORK", "HOME")[: rng.randrange(1, 3)]:
        street, city, code, country = rng.choice(CITIES)
        lines.append(
            f"ADR;TYPE={kind}:;;{_escape(street)};{_escape(city)};;{code};{_escape(country)}"
        )
    lines += [
        f"ORG:{_escape(company)};{rng.choice(DEPARTMENTS)}",
        f"TITLE:{_escape(rng.choice(TITLES))}",
        "NOTE:"
        + _escape(
            note
            or f"Met at {rng.choice(CITIES)[1]} in {rng.randrange(2005, 2026)}."
            " Prefers e-mail, call only if urgent; speaks Deutsch, Français."
        ),
    ]
    if rng.random() < 0.3:
        lines.append(
            f"BDAY:{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-"
            f"{rng.randrange(1, 29):02d}"
        )
    if rng.random() < 0.05:
        size = rng.randrange(1500, 4000)
        photo = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(size)))
        lines.append(_fold("PHOTO;ENCODING=b;TYPE=JPEG:" + photo.decode()).rstrip("\r\n"))
    lines += [f"REV:20250{rng.randrange(1, 10)}01T120000Z", "END:VCARD"]
    return Card(uid, "\r\n".join(lines) + "\r\n", family, emails[0])


def event(index: int, seed: int = SEED, summary: str = "") -> tuple[str, str]:
    """(uid, VCALENDAR text) with one VEVENT; some recur, some have alarms or a TZID."""
    rng = _rng("event", index, seed)
    uid = _uid(rng)
    day = EVENTS_FROM + timedelta(days=rng.randrange(EVENTS_DAYS))
    start = day.replace(hour=rng.randrange(7, 19), minute=rng.choice((0, 15, 30, 45)))
    end = start + timedelta(minutes=rng.choice((30, 60, 60, 90, 120)))
    roll = rng.random()
    timezone = ""
    if roll < 0.15:  # all-day
        end_day = day + timedelta(days=rng.choice((1, 1, 2, 3)))
        dates = [f"DTSTART;VALUE=DATE:{day:%Y%m%d}", f"DTEND;VALUE=DATE:{end_day:%Y%m%d}"]
    elif roll < 0.5:  # local time in a named time zone
        timezone = rng.choice(list(TIMEZONES))
        dates = [
            f"DTSTART;TZID={timezone}:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID={timezone}:{end:%Y%m%dT%H%M%S}",
        ]
    else:
        dates = [f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{end:%Y%m%dT%H%M%SZ}"]
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//dav_cms bench//EN",
        *(TIMEZONES[timezone].rstrip("\r\n").split("\r\n") if timezone else []),
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20250101T000000Z",
        *dates,
        f"SUMMARY:{_escape(summary or rng.choice(SUMMARIES))}",
        f"LOCATION:{_escape(rng.choice(CITIES)[1])}",
        "DESCRIPTION:" + _escape("Agenda:\n1. Status\n2. Next steps, risks; AOB"),
    ]
    if rng.random() < 0.1:
        until = f"{day + timedelta(days=365):%Y%m%d}T235959Z"
        lines.append("RRULE:" + rng.choice(RRULES).format(until=until))
    if rng.random() < 0.3:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:Reminder",
            f"TRIGGER:-PT{rng.choice((5, 10, 15, 30))}M",
            "END:VALARM",
        ]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return uid, "\r\n".join(lines) + "\r\n"


# -- what a client PUT would store --------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """An item as Radicale stores it after a client's PUT (normalised text and metadata)."""

    href: str
    text: str
    etag: str
    uid: str
    name: str
    component_name: str
    time_range: tuple[int, int]


def prepare(text: str, collection_path: str, tag: str, suffix: str) -> Prepared:
    """Run ``text`` through what Radicale's PUT of one item does (parse, check, normalise)."""
    from radicale import item as radicale_item  # noqa: PLC0415 - heavy import, only here

    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(
        vobject_items, max_vevent_rrule_occurrence=MAX_RRULE_OCCURRENCE, tag=tag
    )
    (vobject_item,) = vobject_items
    item = radicale_item.Item(collection_path=collection_path, vobject_item=vobject_item)
    item.prepare()
    return Prepared(
        href=item.uid + suffix,
        text=item.serialize(),
        etag=item.etag,
        uid=item.uid,
        name=item.name,
        component_name=item.component_name,
        time_range=item.time_range,
    )


def _prepare_card(index: int) -> Prepared:
    return prepare(vcard(index).text, CONTACTS, "VADDRESSBOOK", ".vcf")


def _prepare_event(index: int) -> Prepared:
    return prepare(event(index)[1], CALENDAR, "VCALENDAR", ".ics")


class DataSet:
    """Prepared items 0..n-1 of each kind, prepared once (in parallel) and sliced per size."""

    def __init__(self, processes: int = 2) -> None:
        self._processes = processes
        self.cards: list[Prepared] = []
        self.events: list[Prepared] = []

    def ensure(self, size: int) -> None:
        """Prepare items up to ``size`` of each kind."""
        if len(self.cards) >= size:
            return
        from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

        with ProcessPoolExecutor(self._processes) as pool:
            chunk = 200
            self.cards += pool.map(_prepare_card, range(len(self.cards), size), chunksize=chunk)
            self.events += pool.map(_prepare_event, range(len(self.events), size), chunksize=chunk)


def radicale_items(prepared: Iterable[Prepared], collection_path: str) -> Iterator[Any]:
    """Radicale Items (already prepared: nothing is parsed again) for ``create_collection``."""
    from radicale import item as radicale_item  # noqa: PLC0415

    for entry in prepared:
        yield radicale_item.Item(
            collection_path=collection_path,
            text=entry.text,
            etag=entry.etag,
            uid=entry.uid,
            name=entry.name,
            component_name=entry.component_name,
            time_range=entry.time_range,
        )


def load_storage(configuration: Any, cards: list[Prepared], events: list[Prepared]) -> None:
    """Create the user's principal, address book and calendar through Radicale's storage API.

    This is what a client's MKCOL/MKCALENDAR plus one PUT per item leaves behind
    (items named ``UID.vcf``/``UID.ics``, as Radicale names items of an uploaded
    collection), written in one go by the storage's own ``create_collection``.
    """
    from radicale import storage as radicale_storage  # noqa: PLC0415

    storage = radicale_storage.load(configuration)
    with storage.acquire_lock("w", USER):
        storage.create_collection(f"/{USER}/")
        storage.create_collection(
            f"/{CONTACTS}/",
            items=radicale_items(cards, CONTACTS),
            props={"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
        )
        storage.create_collection(
            f"/{CALENDAR}/",
            items=radicale_items(events, CALENDAR),
            props={
                "tag": "VCALENDAR",
                "D:displayname": "Calendar",
                "C:supported-calendar-component-set": "VEVENT,VTODO",
            },
        )
    engine = getattr(getattr(storage, "transactions", None), "engine", None)
    if engine is not None:  # dav_cms: release the connections before the server starts
        engine.dispose()
