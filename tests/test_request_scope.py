"""A reading request's look-ups share one transaction and one pooled connection.

Radicale looks up the principal, asks the sharing database up to three times and
opens another ``acquire_lock`` for the request itself; inside the request scope
of :mod:`dav_cms.web.reads` all of that is one checkout and one statement per
kind of look-up (counted with the engine's own events, on both engines). A
write inside a reading request (Radicale creating a new user's principal) ends
the shared read first and what follows sees it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from dav_cms import radicale_config
from dav_cms.db.session import get_engine
from dav_cms.web import make_application
from tests import factories
from tests.wsgi import make_environ

PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>'
MKCOL = """<?xml version="1.0"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
</D:prop></D:set></D:mkcol>"""


@dataclass
class Counter:
    checkouts: int = 0
    statements: list[str] = field(default_factory=list)
    # Per statement: whether it ran outside a transaction (autocommit).
    autocommit: list[bool] = field(default_factory=list)

    def selects(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("SELECT")]


@dataclass
class App:
    app: Any
    url: str

    def __call__(self, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
        auth = "Basic " + base64.b64encode(b"alice:x").decode()
        environ = make_environ(method, path, body.encode(), auth)
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
        status: list[str] = []
        answer = b"".join(self.app(environ, lambda line, _headers, _exc=None: status.append(line)))
        return int(status[0].split()[0]), answer.decode()


def _app(url: str, tmp_path: Path, extra: str = "") -> App:
    """The application ``dav-cms serve`` runs (every layer, sharing on), anyone may log in."""
    ini = tmp_path / "dav-cms.ini"
    ini.write_text("[auth]\ntype = none\n[rights]\ntype = owner_only\n" + extra)
    configuration, database_url = radicale_config.build(str(ini), url)
    return App(make_application(configuration), database_url)


@pytest.fixture
def app(migrated_db_url: str, tmp_path: Path) -> App:
    """GETs through Radicale (the item-read layer off), everything else as served."""
    return _app(migrated_db_url, tmp_path, "[server]\ndirect_item_reads = False\n")


@contextmanager
def counting(url: str) -> Iterator[Counter]:
    """Checkouts and statements on the engine of ``url`` while the block runs."""
    engine = get_engine(url)
    counted = Counter()

    def on_checkout(*_args: Any) -> None:
        counted.checkouts += 1

    def on_execute(*args: Any) -> None:
        counted.statements.append(str(args[2]))
        dbapi = args[0].connection.dbapi_connection
        if hasattr(dbapi, "in_transaction"):  # sqlite3: BEGIN is explicit, or absent
            counted.autocommit.append(not dbapi.in_transaction)
        else:  # psycopg
            counted.autocommit.append(bool(dbapi.autocommit))

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield counted
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "before_cursor_execute", on_execute)


@pytest.fixture
def counter(app: App) -> Iterator[Counter]:
    with counting(app.url) as counted:
        yield counted


def _book_with_card(app: App) -> None:
    assert app("PROPFIND", "/alice/", PROPFIND, Depth="0")[0] == 207  # creates the principal
    assert app("MKCOL", "/alice/book/", MKCOL)[0] == 201
    card = factories.vcard(uid="card-1", name="Ada Lovelace")
    assert app("PUT", "/alice/book/card-1.vcf", card, CONTENT_TYPE="text/vcard")[0] == 201


def test_get_is_one_checkout_and_three_lookups(app: App, counter: Counter) -> None:
    _book_with_card(app)
    for path, status in (("/alice/book/card-1.vcf", 200), ("/alice/book/missing.vcf", 404)):
        counter.checkouts = 0
        counter.statements.clear()
        assert app("GET", path)[0] == status
        assert counter.checkouts == 1, counter.statements
        # The collections along the path, the share candidates, the item.
        assert len(counter.selects()) == 3, counter.selects()


def test_a_direct_get_is_one_checkout_outside_sqlalchemy(
    migrated_db_url: str, tmp_path: Path
) -> None:
    # The item-read layer (dav_cms.web.item_reads) answers from one statement.
    app = _app(migrated_db_url, tmp_path)
    _book_with_card(app)
    with counting(app.url) as counted:
        status, body = app("GET", "/alice/book/card-1.vcf")
    assert status == 200
    assert "UID:card-1" in body
    assert counted.checkouts == 1
    assert counted.statements == []  # run on the driver's cursor, past SQLAlchemy's events


def test_propfind_of_a_collection_is_one_checkout(app: App, counter: Counter) -> None:
    _book_with_card(app)
    counter.checkouts = 0
    # displayname: answered by Radicale, not streamed (dav_cms.web.listing).
    body = PROPFIND.replace("<D:getetag/>", "<D:getetag/><D:displayname/>")
    status, body = app("PROPFIND", "/alice/book/", body, Depth="1")
    assert status == 207
    assert "/alice/book/card-1.vcf" in body
    assert counter.checkouts == 1


def test_a_write_inside_a_reading_request_is_seen_by_what_follows(
    app: App, counter: Counter
) -> None:
    # The first request of a new user creates the principal (a write) inside
    # the PROPFIND's scope; the PROPFIND then finds it (no stale memo).
    status, body = app("PROPFIND", "/alice/", PROPFIND, Depth="1")
    assert status == 207
    assert re.search(r"<href>/alice/</href>", body), body
    writes = [s for s in counter.statements if s.lstrip().upper().startswith("INSERT")]
    assert writes, "the principal was not written"
    # Created for good: a later request sees it without creating it again.
    counter.statements.clear()
    assert app("PROPFIND", "/alice/", PROPFIND, Depth="0")[0] == 207
    assert not [s for s in counter.statements if s.lstrip().upper().startswith("INSERT")]


def test_writes_are_not_scoped(app: App, counter: Counter) -> None:
    _book_with_card(app)
    card = factories.vcard(uid="card-2", name="Grace Hopper")
    counter.checkouts = 0
    assert app("PUT", "/alice/book/card-2.vcf", card, CONTENT_TYPE="text/vcard")[0] == 201
    status, body = app("PROPFIND", "/alice/book/", PROPFIND, Depth="1")
    assert status == 207
    assert "card-2.vcf" in body


def test_a_write_looks_up_without_a_transaction_and_writes_in_one(
    app: App, counter: Counter
) -> None:
    _book_with_card(app)
    path = "/alice/book/card-1.vcf"
    etag = _etag(app, path)
    edited = factories.vcard(uid="card-1", name="Ada King")
    # PUT: the collections along the path and the share candidates; DELETE
    # also asks for shares of what it deletes (Radicale's own DELETE).
    for method, headers, status, looked_up in (
        ("PUT", {"CONTENT_TYPE": "text/vcard", "If-Match": etag}, 204, 2),
        ("DELETE", {}, 200, 3),
    ):
        counter.checkouts = 0
        counter.statements.clear()
        counter.autocommit.clear()
        assert app(method, path, edited if method == "PUT" else "", **headers)[0] == status
        # The principal and share look-ups on one connection, then the write.
        assert counter.checkouts == 2, counter.statements
        first_write = next(n for n, auto in enumerate(counter.autocommit) if not auto)
        lookups = [s for s in counter.statements[:first_write] if not s.startswith("BEGIN")]
        assert len(lookups) == looked_up, lookups
        assert all(s.lstrip().upper().startswith("SELECT") for s in lookups), lookups
        assert not any(counter.autocommit[first_write:]), counter.statements[first_write:]
        assert any(
            s.lstrip().upper().startswith(("UPDATE", "DELETE")) for s in counter.statements
        ), counter.statements
    assert app("GET", path)[0] == 404


def _etag(app: App, path: str) -> str:
    status, body = app("PROPFIND", path, PROPFIND, Depth="0")
    assert status == 207
    found = re.search(r"<getetag>([^<]+)</getetag>", body)
    assert found, body
    return found.group(1).replace("&quot;", '"')
