"""``dav-cms search``: full-text contact search, on both engines.

Cards are stored through Radicale's storage API (what a PUT leaves behind) or
over HTTP against a real ``dav-cms serve``; queries run through the real
command's entry point (:mod:`tests.cli_runner`), and through
:func:`dav_cms.search.search` where many queries are compared.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dav_cms import accounts, collection_admin, groups, shares
from dav_cms.db import migrate
from dav_cms.db.models import CardSearch
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.search import search
from dav_cms.search.match import Query, condition, like_condition
from tests import factories
from tests.cli_runner import run_with_url
from tests.dav import Dav
from tests.servers import start_server
from tests.test_search_index import CARDS, _get, _item

BOOK = "/alice/book/"
PASSWORD = "search-test-password-1"
FTS = "card_search_fts"


def card(uid: str, fn: str, *lines: str) -> str:
    """A vCard 3.0 with FN and any further property lines."""
    body = "".join(line + "\r\n" for line in lines)
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\n{body}END:VCARD\r\n"


PEOPLE = {
    "hans": card(
        "hans",
        "Hans Müller",
        "N:Müller;Hans;;;",
        "EMAIL;TYPE=WORK:hans.mueller@example.com",
        "TEL;TYPE=CELL:+49 721 5550100",
        "ORG:Straßenbau GmbH",
    ),
    "jose": card("jose", "José Núñez", "EMAIL:jn@example.org", "NOTE:works with MÜLLER"),
    "taro": card("taro", "山田太郎", "TEL:03-1234-5678"),
    "hansi": card("hansi", "Hansi Schmidt", "TITLE:Chef", "EMAIL:hs@example.net"),
    "injection": card("injection", "Quentin Query", 'NOTE:a" or b* and foo & !bar near x y'),
}


def _event(text_: str) -> radicale_item.Item:
    vobject_items = radicale_item.read_components(text_)
    radicale_item.check_and_sanitize_items(vobject_items, 100, tag="VCALENDAR")
    item = radicale_item.Item(collection_path="alice/cal", vobject_item=vobject_items[0])
    item.prepare()
    return item


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_with_url(url, "search", *args)


def cli_hits(url: str, query: str, user: str = "alice", *args: str) -> list[dict[str, Any]]:
    result = run_cli(url, query, "--user", user, "--json", *args)
    assert result.returncode == 0, result.stderr
    hits: list[dict[str, Any]] = json.loads(result.stdout)
    return hits


def found(url: str, query: str, user: str = "alice", limit: int = 100) -> list[str]:
    """Hrefs of the hits, best first (in process)."""
    return [hit.href for hit in search(url, user, query, limit)]


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    return radicale_storage.load(factories.radicale_configuration(migrated_db_url))


def _fill(storage: Any, path: str, cards: dict[str, str]) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(path, props={"tag": "VADDRESSBOOK"})
    with storage.acquire_lock("w"):
        collection = _get(storage, path)
        for name, text_ in cards.items():
            collection.upload(f"{name}.vcf", _item(text_))


@pytest.fixture
def people(storage: Any, migrated_db_url: str) -> str:
    _fill(storage, BOOK, PEOPLE)
    return migrated_db_url


# -- what a query finds -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("muller", "hans"),
        ("MÜLLER", "hans"),
        ("Mül", "hans"),
        ("jose", "jose"),
        ("JOSÉ núñez", "jose"),
        ("田", "taro"),
        ("山田太郎", "taro"),
        ("太", "taro"),
        ("0721 555 0100", "hans"),
        ("+49 (721) 555-0100", "hans"),
        ("5550100", "hans"),
        ("hans.mueller@ex", "hans"),
        ("strassenbau", "hans"),
        ("1234 5678", "taro"),
    ],
)
def test_folding_cjk_phone_and_email_queries(people: str, query: str, expected: str) -> None:
    hrefs = found(people, query)
    assert hrefs, query
    assert hrefs[0] == f"{expected}.vcf"


def test_cli_finds_accents_cjk_phones_and_email_fragments(people: str) -> None:
    for query, expected in [
        ("muller", {"hans.vcf", "jose.vcf"}),
        ("jose", {"jose.vcf"}),
        ("田", {"taro.vcf"}),
        ("0721 555 0100", {"hans.vcf"}),
        ("hans.mueller@ex", {"hans.vcf"}),
    ]:
        assert {hit["href"] for hit in cli_hits(people, query)} == expected, query


def test_every_word_must_match(people: str) -> None:
    assert set(found(people, "hans")) == {"hans.vcf", "hansi.vcf"}
    assert found(people, "hans mül") == ["hans.vcf"]
    assert found(people, "mül hans") == ["hans.vcf"]
    assert found(people, "hans schmidt") == ["hansi.vcf"]
    assert found(people, "hans zebra") == []
    assert found(people, "hansx") == []


def test_ranking_and_limit(people: str) -> None:
    # FN beats NOTE (José's note mentions Müller).
    assert found(people, "muller") == ["hans.vcf", "jose.vcf"]
    # Whole word beats prefix: "hans" is a whole word of Hans Müller, a prefix of Hansi.
    assert found(people, "hans") == ["hans.vcf", "hansi.vcf"]
    assert found(people, "hans", limit=1) == ["hans.vcf"]
    hits = cli_hits(people, "hans", "alice", "--limit", "1")
    assert [hit["href"] for hit in hits] == ["hans.vcf"]


def test_tiers_order_name_contact_work_other(storage: Any, migrated_db_url: str) -> None:
    _fill(
        storage,
        BOOK,
        {
            "other": card("other", "Zed One", "NOTE:kiwi"),
            "work": card("work", "Zed Two", "ORG:Kiwi Ltd"),
            "contact": card("contact", "Zed Three", "EMAIL:kiwi@example.org"),
            "name": card("name", "Kiwi Zed"),
            "prefix": card("prefix", "Kiwis Zed"),
        },
    )
    assert found(migrated_db_url, "kiwi") == [
        "name.vcf",
        "prefix.vcf",
        "contact.vcf",
        "work.vcf",
        "other.vcf",
    ]
    # Ties keep the order of the names.
    assert found(migrated_db_url, "zed") == [
        "name.vcf",
        "prefix.vcf",
        "other.vcf",
        "contact.vcf",
        "work.vcf",
    ]


@pytest.mark.parametrize(
    "query", ['a" OR b*', "foo & !bar", "'", "\\", "NEAR(a b)", "a:*", "*", "(", "x' | 'y", '"']
)
def test_query_syntax_is_searched_as_text(people: str, query: str) -> None:
    expected = {"injection.vcf"} if any(c.isalnum() for c in query) else set()
    if expected:
        assert set(found(people, query)) == expected
    else:
        with pytest.raises(ValueError, match="nothing to search for"):
            search(people, "alice", query)


def test_injection_looking_queries_through_the_command(people: str) -> None:
    for query in ('a" OR b*', "foo & !bar"):
        assert [hit["href"] for hit in cli_hits(people, query)] == ["injection.vcf"]
    assert cli_hits(people, "b* OR zebra") == []


def test_full_text_agrees_with_like(storage: Any, migrated_db_url: str) -> None:
    """The engine's index and a plain LIKE over the same bodies find the same cards."""
    with storage.acquire_lock("w"):
        storage.create_collection(
            BOOK, items=[_item(t) for t in CARDS], props={"tag": "VADDRESSBOOK"}
        )
    queries = [
        "müller", "jos", "straße", "太", "山田", "o'brien", "example com", "karlsruhe",
        "0721", "721 5", "+49 721", "crème brûlée", "lorem", "x", "ΟΔΥ", "dr", "wert 2",
        "abteilung", "i", "zoë mül",
    ]  # fmt: skip
    with Session(get_engine(migrated_db_url)) as session:
        for query in queries:
            parsed = Query.parse(query)
            by_index = set(
                session.scalars(select(CardSearch.item_id).where(condition(session, parsed)))
            )
            by_like = set(session.scalars(select(CardSearch.item_id).where(like_condition(parsed))))
            assert by_index == by_like, query
            assert by_index or query == "x", query


def test_the_index_is_used(people: str) -> None:
    """The planner can answer the match from the full-text index (EXPLAIN)."""
    with Session(get_engine(people)) as session:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(text("SET LOCAL enable_seqscan = off"))
        statement = select(CardSearch.item_id).where(condition(session, Query.parse("hans mül")))
        sql = str(statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        plan = " ".join(
            str(row[-1]) for row in session.connection().exec_driver_sql(prefix + sql).all()
        )
    if dialect == "postgresql":
        assert "ix_card_search_body_tsvector" in plan
    else:
        assert "card_search_fts VIRTUAL TABLE" in plan


# -- the index follows every change --------------------------------------------------


def _bodies(url: str) -> dict[int, tuple[int, str]]:
    with Session(get_engine(url)) as session:
        rows = session.execute(
            select(CardSearch.item_id, CardSearch.collection_id, CardSearch.body)
        )
        return {item_id: (collection_id, body) for item_id, collection_id, body in rows}


def _check_consistent(url: str) -> None:
    """One row per stored vCard; on SQLite the FTS5 index matches its content table."""
    with Session(get_engine(url)) as session:
        cards = session.scalar(
            select(func.count()).select_from(ItemRow).where(ItemRow.name == "VCARD")
        )
        assert session.scalar(select(func.count()).select_from(CardSearch)) == cards
        if session.get_bind().dialect.name == "sqlite":
            # rank = 1: also compare the index with the content table (the triggers' work).
            session.execute(text(f"INSERT INTO {FTS}({FTS}, rank) VALUES ('integrity-check', 1)"))


def test_updates_moves_and_deletes(people: str, storage: Any) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection("/alice/other/", props={"tag": "VADDRESSBOOK"})
        storage.create_collection("/alice/cal/", props={"tag": "VCALENDAR"})
    with storage.acquire_lock("w"):
        _get(storage, "/alice/cal/").upload("e.ics", _event(factories.event(summary="Müller")))
    _check_consistent(people)
    assert set(found(people, "muller")) == {"hans.vcf", "jose.vcf"}

    with storage.acquire_lock("w"):
        _get(storage, BOOK).upload(
            "hans.vcf", _item(card("hans", "Hans Meier", "TEL:0721 999 1234"))
        )
    assert found(people, "muller") == ["jose.vcf"]
    assert found(people, "meier") == ["hans.vcf"]
    assert found(people, "07219991234") == ["hans.vcf"]
    assert found(people, "0721 555 0100") == []
    _check_consistent(people)

    with storage.acquire_lock("w"):
        storage.move(_get(storage, BOOK + "hans.vcf"), _get(storage, "/alice/other/"), "moved.vcf")
    (hit,) = search(people, "alice", "meier")
    assert (hit.collection, hit.href) == ("/alice/other/", "moved.vcf")
    _check_consistent(people)

    with storage.acquire_lock("w"):
        _get(storage, "/alice/other/").delete("moved.vcf")
    assert found(people, "meier") == []
    _check_consistent(people)

    with storage.acquire_lock("w"):
        _get(storage, BOOK).delete()
    assert found(people, "jose") == []
    assert _bodies(people) == {}
    _check_consistent(people)


def test_create_collection_writes_search_rows(storage: Any, migrated_db_url: str) -> None:
    """An uploaded collection (the import path) is searchable at once."""
    with storage.acquire_lock("w"):
        storage.create_collection(
            BOOK, items=[_item(t) for t in PEOPLE.values()], props={"tag": "VADDRESSBOOK"}
        )
    assert found(migrated_db_url, "muller") == [f"{uid}.vcf" for uid in ("hans", "jose")]
    _check_consistent(migrated_db_url)
    with storage.acquire_lock("w"):
        storage.create_collection(
            BOOK, items=[_item(PEOPLE["taro"])], props={"tag": "VADDRESSBOOK"}
        )
    assert found(migrated_db_url, "muller") == []
    assert len(found(migrated_db_url, "田")) == 1
    _check_consistent(migrated_db_url)


def test_upgrade_from_0003_backfills(storage: Any, migrated_db_url: str) -> None:
    with storage.acquire_lock("w"):
        storage.create_collection(
            BOOK, items=[_item(t) for t in CARDS[:60]], props={"tag": "VADDRESSBOOK"}
        )
    _fill(storage, "/alice/people/", PEOPLE)
    before = _bodies(migrated_db_url)
    assert len(before) == 60 + len(PEOPLE)
    migrate.downgrade(migrated_db_url, "0003")
    with Session(get_engine(migrated_db_url)) as session:
        tables = {
            name
            for (name,) in session.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if session.get_bind().dialect.name == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        }
    assert "card_search" not in tables
    assert "card_fields" in tables
    migrate.upgrade(migrated_db_url)
    assert _bodies(migrated_db_url) == before
    _check_consistent(migrated_db_url)
    assert [hit["href"] for hit in cli_hits(migrated_db_url, "0721 555 0100")] == ["hans.vcf"]


# -- whose address books ---------------------------------------------------------------------


def test_readable_address_books_only(migrated_db_url: str, tmp_path: Path) -> None:
    url = migrated_db_url
    for login in ("alice", "bob", "carol", "dave"):
        accounts.add_user(url, login, PASSWORD)
    accounts.set_admin(url, "dave", True)
    groups.add_group(url, "sales")
    groups.add_member(url, "sales", "alice")
    collection_admin.create_collection(url, "crm", "addressbook", group="sales", permissions="r")
    server = start_server(url, tmp_path)
    try:
        books = {
            "alice": ["/alice/book/"],
            "bob": ["/bob/book/"],
            "carol": ["/carol/friends/", "/carol/team/", "/carol/private/"],
        }
        for login, paths in books.items():
            client = Dav(server.url, login, PASSWORD)
            for path in paths:
                assert client.mkaddressbook(path).status_code == 201
                name = path.strip("/").replace("/", "-")
                response = client.put(f"{path}{name}.vcf", card(name, f"Zebra {name}"))
                assert response.status_code == 201, response.text
        admin = Dav(server.url, "dave", PASSWORD)
        crm = "/_groups/sales/crm/"
        assert admin.put(f"{crm}crm.vcf", card("crm", "Zebra CRM")).status_code == 201
        shares.add_map_share(url, "/carol/friends/", user="alice", permissions="r")
        shares.add_map_share(url, "/carol/team/", group="sales", permissions="rw")

        seen = {hit["collection"]: hit["href"] for hit in cli_hits(url, "zebra", "alice")}
        assert seen == {
            "/alice/book/": "alice-book.vcf",
            "/alice/carol-friends/": "carol-friends.vcf",
            "/alice/carol-team/": "carol-team.vcf",
            crm: "crm.vcf",
        }
        alice = Dav(server.url, "alice", PASSWORD)
        for collection, href in seen.items():
            assert alice.request("GET", collection + href).status_code == 200
        for denied in ("/bob/book/bob-book.vcf", "/carol/private/carol-private.vcf"):
            assert alice.request("GET", denied).status_code in (403, 404)

        assert {hit["collection"] for hit in cli_hits(url, "zebra", "bob")} == {"/bob/book/"}
        everything = {hit["collection"] for hit in cli_hits(url, "zebra", "dave")}
        assert everything == {path for paths in books.values() for path in paths} | {crm}

        shares.revoke_map_share(url, "/carol/friends/", user="alice")
        groups.remove_member(url, "sales", "alice")
        assert {hit["collection"] for hit in cli_hits(url, "zebra", "alice")} == {"/alice/book/"}
    finally:
        server.stop()


# -- the command ----------------------------------------------------------------------------


def test_json_and_table_output(people: str) -> None:
    (hit,) = cli_hits(people, "hans.mueller@ex")
    assert set(hit) == {"score", "fn", "collection", "href", "matches", "emails", "phones"}
    assert hit["fn"] == "Hans Müller"
    assert hit["collection"] == BOOK
    assert hit["href"] == "hans.vcf"
    assert hit["emails"] == ["hans.mueller@example.com"]
    assert hit["phones"] == ["+49 721 5550100"]
    assert {"property": "EMAIL", "value": "hans.mueller@example.com"} in hit["matches"]
    assert isinstance(hit["score"], int)
    assert hit["score"] > 0

    table = run_cli(people, "muller", "--user", "alice")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["RANK", "NAME", "MATCHED", "COLLECTION", "HREF"]
    assert lines[1].startswith("1 ")
    assert "Hans Müller" in lines[1]
    assert "FN:Hans Müller" in lines[1]
    assert lines[1].split()[-2:] == [BOOK, "hans.vcf"]
    assert lines[2].split()[-1] == "jose.vcf"
    assert "NOTE:works with MÜLLER" in lines[2]

    none = run_cli(people, "zebra", "--user", "alice")
    assert none.returncode == 0
    assert "no card matches" in none.stdout


def test_command_errors(people: str) -> None:
    unknown = run_cli(people, "hans", "--user", "nobody")
    assert unknown.returncode == 1
    assert "no user 'nobody'" in unknown.stderr
    assert "dav-cms user list" in unknown.stderr
    for query in ("", "   "):
        empty = run_cli(people, query, "--user", "alice")
        assert empty.returncode == 2
        assert "query is empty" in empty.stderr
    nothing = run_cli(people, "&& !!", "--user", "alice")
    assert nothing.returncode == 2
    assert "nothing to search for" in nothing.stderr
    limit = run_cli(people, "hans", "--user", "alice", "--limit", "0")
    assert limit.returncode == 2
    assert "--limit" in limit.stderr


def test_sqlite_without_fts5_falls_back_to_like(people: str, storage: Any) -> None:
    """A SQLite database made without FTS5 (revision 0004 then skips the table) still searches."""
    if not people.startswith("sqlite"):
        pytest.skip("FTS5 is SQLite's; PostgreSQL always has its full-text search")
    expected = {query: found(people, query) for query in ("muller", "hans mül", "0721 555 0100")}
    with Session(get_engine(people)) as session, session.begin():
        for trigger in ("card_search_ai", "card_search_ad", "card_search_au"):
            session.execute(text(f"DROP TRIGGER {trigger}"))
        session.execute(text(f"DROP TABLE {FTS}"))
    assert {query: found(people, query) for query in expected} == expected
    with storage.acquire_lock("w"):
        _get(storage, BOOK).upload("new.vcf", _item(card("new", "Neue Müllerin")))
    assert found(people, "mullerin") == ["new.vcf"]
