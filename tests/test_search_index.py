"""The contact search index (card_fields) answers addressbook-query exactly as Radicale does.

The reference for every filter is Radicale's own matcher: ``radicale.app.report.test_filter``
(which calls ``radicale.item.filter.prop_match``/``text_match``) run over every stored
item, each parsed afresh from its stored text. The index side is what a REPORT does:
``collection.get_filtered(filters)``, keeping items yielded with ``filters_matched``
True and running ``test_filter`` only on those yielded with False. Both sides see the
same stored items, so any difference is the index's.
"""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

import pytest
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.app import Application
from radicale.app.report import test_filter as radicale_test_filter
from sqlalchemy import delete, select

from dav_cms import accounts
from dav_cms.db import migrate
from dav_cms.db.models import CardField
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.store import cardindex
from tests import factories
from tests.wsgi import Client

CR = "urn:ietf:params:xml:ns:carddav"
BOOK = "/alice/book/"

GIVEN = ["Zoë", "José", "Jürgen", "Ada", "Émile", "Søren", "Ærin", "太郎", "美咲", "Ольга", "İpek"]
FAMILY = ["Müller", "Straße", "Lovelace", "Núñez", "山田", "佐藤", "ΟΔΥΣΣΕΑΣ", "O'Brien", "Dupont"]
DOMAINS = ["example.org", "Example.COM", "mail.de", "müller.de", "東京.jp"]
CITIES = ["Karlsruhe", "Köln", "東京", "São Paulo", "Zürich"]


def _fold(line: str) -> str:
    """RFC 6350 folding every 60 characters (splits inside escapes and characters alike)."""
    parts = [line[i : i + 60] for i in range(0, len(line), 60)]
    return "\r\n ".join(parts)


def _phone(rng: random.Random) -> str:
    number = f"{rng.randrange(100, 999)}{rng.randrange(1000, 9999)}"
    return rng.choice(
        [
            f"+49 721 {number}",
            f"0721 {number[:3]} {number[3:]}",
            f"+49 (0)721-{number}",
            f"(0721) {number}",
            f"+1-555-{number[:3]}-{number[3:]}",
        ]
    )


def make_card(n: int, rng: random.Random) -> str:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:card-{n}"]
    lines.append(f"FN:{given} {family}")
    if n % 7 != 3:
        lines.append(f"N:{family};{given};;Dr.;")
    if n % 3 == 0:
        lines.append(f"NICKNAME:{given[:3]}{n % 10}")
    for k in range(rng.randrange(0, 4)):
        local = f"{given}.{family}{k}".lower().replace(" ", "")
        kind = rng.choice(["WORK", "HOME", "INTERNET"])
        lines.append(f"item{k}.EMAIL;TYPE={kind}:{local}@{rng.choice(DOMAINS)}")
    for _ in range(rng.randrange(0, 4)):
        lines.append(f"TEL;TYPE={rng.choice(['CELL', 'WORK', 'HOME'])}:{_phone(rng)}")
    if n % 4 == 1:
        lines.append(f"ORG:Müller\\, Söhne & Co.;Abteilung {n % 5}")
    elif n % 4 == 2:
        lines.append(f"ORG:{rng.choice(['ACME', 'Straßenbau GmbH', '株式会社'])}")
    if n % 5 == 0:
        lines.append(f"TITLE:{rng.choice(['Chef', 'Ingénieur', 'CTO; Founder'])}")
    if n % 2 == 0:
        city = rng.choice(CITIES)
        lines.append(f"ADR;TYPE=HOME:;;Hauptstraße {n}\\, Hinterhaus;{city};;7613{n % 10};DE")
    if n % 3 != 1:
        lines.append(f"CATEGORIES:{rng.choice(['Friends', 'Familie', 'VIP', '同僚'])},Work")
    if n % 4 == 0:
        note = (
            f"Met at the conférence {n}\\; likes crème brûlée\\, Straße and 東京. "
            + "Lorem ipsum dolor sit amet, consectetur adipiscing élit. " * (1 + n % 3)
            + "\\nSecond line: MÜLLER."
        )
        lines.append(f"NOTE:{note}")
    if n % 6 == 0:
        lines.append(f"X-SKYPE:{given.lower()}.{n}")
    if n % 5 == 2:
        lines.append(f"X-CUSTOM-FIELD;X-PARAM=yes:Wert {n} Größe\\, groß")
    lines.append("END:VCARD")
    return "".join(_fold(line) + "\r\n" for line in lines)


CARDS = [make_card(n, random.Random(n)) for n in range(300)]


def _item(text: str, collection_path: str = "alice/book") -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text)
    radicale_item.check_and_sanitize_items(vobject_items, 10000, tag="VADDRESSBOOK")
    item = radicale_item.Item(collection_path=collection_path, vobject_item=vobject_items[0])
    item.prepare()
    return item


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    return radicale_storage.load(factories.radicale_configuration(migrated_db_url))


def _get(storage: Any, path: str) -> Any:
    with storage.acquire_lock("r"):
        return next(iter(storage.discover(path)), None)


def _book(storage: Any, path: str = BOOK, cards: list[str] | None = None) -> Any:
    """An address book made by create_collection with items (the import path)."""
    items = [_item(text) for text in (CARDS if cards is None else cards)]
    with storage.acquire_lock("w"):
        storage.create_collection(path, items=items, props={"tag": "VADDRESSBOOK"})
    return _get(storage, path)


# -- filters -------------------------------------------------------------------


def text_match(text: str, match_type: str | None, negate: bool, collation: str | None) -> str:
    attrs = ""
    if match_type is not None:
        attrs += f' match-type="{match_type}"'
    if negate:
        attrs += ' negate-condition="yes"'
    if collation is not None:
        attrs += f' collation="{collation}"'
    return f"<C:text-match{attrs}>{text}</C:text-match>"


def prop_filter(name: str, *children: str, test: str | None = None) -> str:
    attr = f' test="{test}"' if test else ""
    return f'<C:prop-filter name="{name}"{attr}>{"".join(children)}</C:prop-filter>'


def make_filter(*props: str, test: str | None = None) -> ET.Element:
    attr = f' test="{test}"' if test else ""
    xml = f'<C:filter xmlns:C="{CR}"{attr}>{"".join(props)}</C:filter>'
    return ET.fromstring(xml)


TEXTS = {
    "FN": ["müller", "JOSÉ", "straße", "太郎", "ΟΔΥΣΣΕΑΣ", "i̇", "zoë müller", "", "%", "_"],
    "N": ["müller;", "lovelace", ";dr.;", "ada"],
    "EMAIL": ["@example.com", "jürgen", "EXAMPLE", ".de", "ada.lovelace0@example.org"],
    "TEL": ["+49", "0721", "721 5", "-", "(0)"],
    "ORG": ["müller, söhne & co.", "abteilung 1", "株式会社", "straßenbau gmbh"],
    "ADR": ["hauptstraße", "karlsruhe", "köln", ", hinterhaus"],
    "CATEGORIES": ["work", "vip", "同僚", "friends"],
    "NOTE": ["crème", "brûlée", "\nsecond", "lorem ipsum", "müller."],
    "NICKNAME": ["zoë", "jos", "3"],
    "TITLE": ["cto; founder", "ingénieur"],
    "X-SKYPE": ["ada", ".0"],
    "X-CUSTOM-FIELD": ["größe, groß", "wert 2"],
}
MATCH_TYPES = (None, "equals", "contains", "starts-with", "ends-with")
COLLATIONS = (None, "i;unicode-casemap", "i;ascii-casemap")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "&#10;")


def single_filters() -> list[ET.Element]:
    result = []
    for name, texts in TEXTS.items():
        for text, match_type, negate, collation in itertools.product(
            texts, MATCH_TYPES, (False, True), COLLATIONS
        ):
            match = text_match(_escape(text), match_type, negate, collation)
            result.append(make_filter(prop_filter(name, match)))
    return result


def combined_filters() -> list[list[ET.Element]]:
    em = text_match("example", "contains", False, None)
    tel = text_match("+49", "starts-with", False, None)
    mue = text_match("müller", "contains", False, "i;unicode-casemap")
    note = text_match("crème", "contains", True, None)
    combos = []
    for test in (None, "anyof", "allof"):
        for ptest in (None, "anyof", "allof", "other"):
            combos.append([make_filter(prop_filter("EMAIL", em, mue, test=ptest), test=test)])
            combos.append(
                [make_filter(prop_filter("EMAIL", em), prop_filter("TEL", tel), test=test)]
            )
            combos.append(
                [
                    make_filter(
                        prop_filter("FN", mue, note, test=ptest),
                        prop_filter("NOTE", note),
                        prop_filter("ORG", "<C:is-not-defined/>"),
                        test=test,
                    )
                ]
            )
        combos.append([make_filter(test=test)])  # no prop-filter at all
        for name in ("NOTE", "ORG", "N", "X-SKYPE", "X-NOWHERE", "TEL"):
            combos.append([make_filter(prop_filter(name), test=test)])
            combos.append([make_filter(prop_filter(name, "<C:is-not-defined/>"), test=test)])
    # Several filters in one query are all required (Radicale ANDs them).
    combos.append([make_filter(prop_filter("EMAIL", em)), make_filter(prop_filter("TEL", tel))])
    combos.append([make_filter(prop_filter("email", em.replace("example", "EXAMPLE")))])
    return combos


FALLBACKS = [
    # param-filter, i;octet, unknown collation, unknown match-type, unindexed properties
    make_filter(
        prop_filter(
            "EMAIL",
            '<C:param-filter name="TYPE"><C:text-match>work</C:text-match></C:param-filter>',
        )
    ),
    make_filter(prop_filter("FN", text_match("Müller", "contains", False, "i;octet"))),
    make_filter(prop_filter("FN", text_match("müller", "contains", False, "i;foo"))),
    make_filter(prop_filter("UID", text_match("card-1", "starts-with", False, None))),
    make_filter(prop_filter("BDAY")),
    make_filter(
        prop_filter("EMAIL", text_match("ada", "contains", False, None)),
        prop_filter("FN", text_match("Müller", "equals", False, "i;octet")),
    ),
]


# -- the comparison ---------------------------------------------------------------


def _reference(items: list[Any], filters: list[ET.Element]) -> list[str]:
    return [
        item.href
        for item in items
        if all(radicale_test_filter("VADDRESSBOOK", item, f) for f in filters)
    ]


def _via_index(
    collection: Any, filters: list[ET.Element], tag: str = "VADDRESSBOOK"
) -> tuple[list[str], set[bool]]:
    """The hrefs a REPORT would answer, and the ``matched`` flags get_filtered gave."""
    hrefs, flags = [], set()
    # As Radicale's REPORT: everything listed first, then filtered.
    for item, matched in list(collection.get_filtered(filters)):
        flags.add(matched)
        if matched or all(radicale_test_filter(tag, item, f) for f in filters):
            hrefs.append(item.href)
    return hrefs, flags


def _stored_items(collection: Any) -> list[Any]:
    """Every stored item, parsed from its stored text (what Radicale's filter sees)."""
    items = list(collection.get_all())
    for item in items:
        assert item.vobject_item is not None
    return items


def test_every_text_match_variant_equals_radicale(storage: Any) -> None:
    collection = _book(storage)
    items = _stored_items(collection)
    cases = [[f] for f in single_filters()] + combined_filters()
    assert len(cases) > 1500
    nonempty = 0
    for filters in cases:
        expected = _reference(items, filters)
        got, flags = _via_index(collection, filters)
        label = [ET.tostring(f, encoding="unicode") for f in filters]
        assert sorted(got) == sorted(expected), label
        assert flags <= {True}, label
        nonempty += 0 < len(expected) < len(items)
    assert nonempty > len(cases) // 3  # the filters discriminate


def _rowset(vobject_item: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in cardindex.field_rows(vobject_item))


def test_uploaded_cards_are_indexed_like_created_ones(storage: Any) -> None:
    """The upload path (PUT) indexes the uploaded vobject; same answers as a re-parse."""
    with storage.acquire_lock("w"):
        storage.create_collection(BOOK, props={"tag": "VADDRESSBOOK"})
    for n, text in enumerate(CARDS[:120]):
        with storage.acquire_lock("w"):
            _get(storage, BOOK).upload(f"c{n}.vcf", _item(text))
        uploaded = _item(text)
        stored = radicale_item.Item(collection_path="alice/book", text=uploaded.serialize())
        assert _rowset(uploaded.vobject_item) == _rowset(stored.vobject_item)
    collection = _get(storage, BOOK)
    items = _stored_items(collection)
    for filters in [[f] for f in single_filters()[::7]] + combined_filters()[::3]:
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(_reference(items, filters))
        assert flags <= {True}


@pytest.mark.parametrize("index", range(len(FALLBACKS)))
def test_what_the_index_cannot_answer_falls_back(storage: Any, index: int) -> None:
    collection = _book(storage, cards=CARDS[:60])
    filters = [FALLBACKS[index]]
    got, flags = _via_index(collection, filters)
    assert flags == {False}
    assert sorted(got) == sorted(_reference(_stored_items(collection), filters))


def test_unindexed_items_are_left_to_radicale(storage: Any, migrated_db_url: str) -> None:
    """Cards stored without index rows (e.g. before the index) are still found."""
    collection = _book(storage, cards=CARDS[:40])
    with get_engine(migrated_db_url).begin() as connection:
        ids = connection.scalars(select(ItemRow.id).order_by(ItemRow.id).limit(10)).all()
        connection.execute(delete(CardField).where(CardField.item_id.in_(ids)))
    collection = _get(storage, BOOK)
    items = _stored_items(collection)
    for filters in [[f] for f in single_filters()[::11]]:
        got, flags = _via_index(collection, filters)
        assert sorted(got) == sorted(_reference(items, filters))
        assert False in flags


# -- maintenance ----------------------------------------------------------------------


def _fields(url: str, href: str | None = None) -> list[tuple[Any, ...]]:
    stmt = (
        select(
            ItemRow.href,
            CardField.collection_id,
            CardField.name,
            CardField.value_folded,
            CardField.value_digits,
        )
        .join(ItemRow, ItemRow.id == CardField.item_id)
        .order_by(CardField.id)
    )
    if href is not None:
        stmt = stmt.where(ItemRow.href == href)
    with get_engine(url).connect() as connection:
        return [tuple(row) for row in connection.execute(stmt)]


def _card(uid: str, email: str, tel: str = "+49 721 5550100") -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Jürgen Groß\r\n"
        f"EMAIL:{email}\r\nTEL:{tel}\r\nCATEGORIES:A,B\r\nEND:VCARD\r\n"
    )


def test_rows_follow_upload_replace_delete_and_move(storage: Any, migrated_db_url: str) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(BOOK, props={"tag": "VADDRESSBOOK"})
        storage.create_collection("/alice/other/", props={"tag": "VADDRESSBOOK"})
    with storage.acquire_lock("w"):
        _get(storage, BOOK).upload("a.vcf", _item(_card("a", "Old@Example.org")))
    rows = _fields(migrated_db_url, "a.vcf")
    book_id = _get(storage, BOOK).id
    assert {(r[2], r[3], r[4]) for r in rows} == {
        ("", None, None),
        ("FN", "jürgen groß", None),
        ("EMAIL", "old@example.org", None),
        ("TEL", "+49 721 5550100", "497215550100"),
        ("CATEGORIES", "a", None),
        ("CATEGORIES", "b", None),
    }
    assert {r[1] for r in rows} == {book_id}

    with storage.acquire_lock("w"):
        _get(storage, BOOK).upload("a.vcf", _item(_card("a", "new@example.org", "0721 555 0100")))
    values = {(r[2], r[3], r[4]) for r in _fields(migrated_db_url, "a.vcf")}
    assert ("EMAIL", "new@example.org", None) in values
    assert ("TEL", "0721 555 0100", "07215550100") in values
    assert not any(v[1] == "old@example.org" for v in values)
    assert len(_fields(migrated_db_url)) == 6

    with storage.acquire_lock("w"):
        _get(storage, BOOK).upload("b.vcf", _item(_card("b", "b@example.org")))
    with storage.acquire_lock("w"):
        item = _get(storage, BOOK + "a.vcf")
        storage.move(item, _get(storage, "/alice/other/"), "moved.vcf")
    other_id = _get(storage, "/alice/other/").id
    assert {r[1] for r in _fields(migrated_db_url, "moved.vcf")} == {other_id}
    search = [make_filter(prop_filter("EMAIL", text_match("new@", "starts-with", False, None)))]
    assert [i.href for i, m in _get(storage, "/alice/other/").get_filtered(search) if m] == [
        "moved.vcf"
    ]
    assert list(_get(storage, BOOK).get_filtered(search)) == []

    with storage.acquire_lock("w"):
        _get(storage, BOOK).delete("b.vcf")
    assert _fields(migrated_db_url, "b.vcf") == []
    with storage.acquire_lock("w"):
        _get(storage, "/alice/other/").delete()
    assert _fields(migrated_db_url) == []


def test_create_collection_replaces_the_rows(storage: Any, migrated_db_url: str) -> None:
    _book(storage, cards=[_card("a", "a@example.org"), _card("b", "b@example.org")])
    assert {r[3] for r in _fields(migrated_db_url) if r[2] == "EMAIL"} == {
        "a@example.org",
        "b@example.org",
    }
    _book(storage, cards=[_card("c", "c@example.org")])
    book_id = _get(storage, BOOK).id
    rows = _fields(migrated_db_url)
    assert {r[3] for r in rows if r[2] == "EMAIL"} == {"c@example.org"}
    assert {r[1] for r in rows} == {book_id}


def test_migration_backfills_cards_stored_before_the_index(
    storage: Any, migrated_db_url: str
) -> None:
    _book(storage, cards=CARDS[:50])
    before = sorted(r[1:] for r in _fields(migrated_db_url))
    migrate.downgrade(migrated_db_url, "0002")
    migrate.upgrade(migrated_db_url)
    assert sorted(r[1:] for r in _fields(migrated_db_url)) == before
    assert len(before) > 100


# -- over HTTP ----------------------------------------------------------------------------

PASSWORD = "search-password-1"
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/></D:prop>{filter}
</C:addressbook-query>"""


def _call(app: Application, method: str, path: str, body: str = "", **headers: str) -> Any:
    status, _, answer = Client(app, "alice", PASSWORD)(method, path, body, **headers)
    return status, answer


def test_addressbook_query_over_http(migrated_db_url: str) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    configuration = factories.radicale_configuration(migrated_db_url, auth={"type": "dav_cms.auth"})
    app = Application(configuration)
    mkcol = (
        '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        "<D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>"
        "</D:prop></D:set></D:mkcol>"
    )
    assert _call(app, "MKCOL", BOOK, mkcol)[0] == 201
    for n, text in enumerate(CARDS[:80]):
        status, _ = _call(app, "PUT", f"{BOOK}{n}.vcf", text, CONTENT_TYPE="text/vcard")
        assert status == 201
    storage = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    items = _stored_items(_get(storage, BOOK))
    for filters in (
        [make_filter(prop_filter("EMAIL", text_match("EXAMPLE.com", "ends-with", False, None)))],
        [
            make_filter(
                prop_filter("TEL", text_match("+49 721", "starts-with", False, None)),
                prop_filter("FN", text_match("müller", "contains", False, None)),
                test="allof",
            )
        ],
        [make_filter(prop_filter("NOTE", "<C:is-not-defined/>"))],
        [FALLBACKS[0]],
    ):
        body = QUERY.format(filter="".join(ET.tostring(f, encoding="unicode") for f in filters))
        status, answer = _call(app, "REPORT", BOOK, body, Depth="1")
        assert status == 207
        hrefs = sorted(unquote(h) for h in re.findall(r"<(?:\w+:)?href>([^<]+)</", answer))
        expected = sorted(BOOK + href for href in _reference(items, filters))
        assert expected
        assert hrefs == expected
