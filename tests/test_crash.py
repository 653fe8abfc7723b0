"""SIGKILL of the server in the middle of a burst of writes loses nothing acknowledged.

Client threads create, update (If-Match) and delete items, each on hrefs of its
own, so every href's history is known: its last acknowledged state and, for
the one request a thread had in flight when the server died, the state that
request would have made. After the restart every href must hold one of those
two, whole; the search index must agree with the items; a sync token from
before the burst must report exactly the hrefs that differ. Bounded: a fixed
number of operations per thread, deadlines on every wait.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import vobject
from sqlalchemy import create_engine, inspect, select, text

from dav_cms.db.models import CardField, CardSearch, Collection, Item
from dav_cms.db.session import SQLITE_SYNCHRONOUS_ENV, make_engine, normalise_url
from dav_cms.errors import ConfigurationError
from dav_cms.storage import Storage
from dav_cms.store import cardindex, searchtext
from tests import factories
from tests.dav import Dav, etag_of
from tests.servers import ServerProcess, start_server

PASSWORD = "s3cret-pass"
BOOK = "/alice/book/"
THREADS = 4
PRESENT_BEFORE = 16
MAX_OPS_PER_THREAD = 400
ACKS_BEFORE_KILL = 40
BURST_DEADLINE = 90.0

# The state of an href: None when absent, else (etag or "" when unknown, FN of the text).
State = tuple[str, str] | None


@dataclass
class History:
    """Per href: the acknowledged state and the state of a write left without an answer."""

    acked: dict[str, State] = field(default_factory=dict)
    pending: dict[str, State] = field(default_factory=dict)
    unexpected: list[tuple[str, str, int]] = field(default_factory=list)
    acks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Notified under ``lock`` at every acknowledgement and when a burst thread ends.
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


def _card(href: str, name: str) -> str:
    return factories.vcard(f"uid-{href.rsplit('/', 1)[1]}", name=name, email=f"{name}@ex.org")


def _burst(client: Dav, n: int, history: History, own: list[str]) -> None:
    """Create, update and delete this thread's items until the server stops answering."""
    try:
        _operations(client, n, history, own)
    finally:
        with history.changed:
            history.changed.notify_all()


def _operations(client: Dav, n: int, history: History, own: list[str]) -> None:
    for op in range(MAX_OPS_PER_THREAD):
        with history.lock:
            present = [href for href in own if history.acked.get(href) is not None]
        name = f"T{n}x{op}"
        body: str | None = None
        if op % 3 == 0 or not present:
            href, method = f"{BOOK}new-{n}-{op}.vcf", "PUT"
            headers = {"If-None-Match": "*"}
        else:
            href = present[op % len(present)]
            state = history.acked[href]
            assert state is not None
            headers = {"If-Match": state[0]}
            deletable = [h for h in present if h.startswith(f"{BOOK}pre-")]
            method = "DELETE" if op % 6 == 5 and len(deletable) > 1 else "PUT"
            if method == "DELETE":
                href = deletable[0]
                state = history.acked[href]
                assert state is not None
                headers = {"If-Match": state[0]}
        if method == "PUT":
            body = _card(href, name)
            headers["Content-Type"] = "text/vcard"
        try:
            response = client.request(method, href, body, **headers)
        except requests.RequestException:
            with history.lock:
                history.pending[href] = ("", name) if body else None
            return  # the server is gone
        with history.lock:
            if response.status_code not in (200, 201, 204):
                history.unexpected.append((method, href, response.status_code))
                return
            history.acks += 1
            history.changed.notify_all()
            history.acked[href] = (etag_of(response), name) if body else None
            if href not in own:
                own.append(href)


def _observe(client: Dav, href: str) -> State:
    response = client.request("GET", href)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, (href, response.status_code)
    names = [line[3:] for line in response.text.splitlines() if line.startswith("FN:")]
    assert len(names) == 1, response.text
    return (etag_of(response), names[0])


def _same(observed: State, expected: State) -> bool:
    if observed is None or expected is None:
        return observed is expected
    return observed[1] == expected[1] and expected[0] in ("", observed[0])


def _check_index(database_url: str) -> None:
    """card_fields (and card_search, where kept) hold exactly what each stored card says."""
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            book = connection.execute(
                select(Collection.id).where(Collection.path == BOOK.strip("/"))
            ).scalar_one()
            items = connection.execute(
                select(Item.id, Item.text).where(Item.collection_id == book)
            ).all()
            fields = connection.execute(
                select(
                    CardField.item_id,
                    CardField.name,
                    CardField.value_folded,
                    CardField.value_digits,
                    CardField.collection_id,
                )
            ).all()
            searches = {
                row.item_id: row.body
                for row in connection.execute(select(CardSearch.item_id, CardSearch.body))
            }
            if "card_search_fts" in inspect(connection).get_table_names():
                connection.execute(
                    text("INSERT INTO card_search_fts(card_search_fts) VALUES('integrity-check')")
                )
    finally:
        engine.dispose()
    item_ids = {item.id for item in items}
    assert {row.item_id for row in fields} <= item_ids, "index rows of a missing item"
    assert set(searches) <= item_ids, "search rows of a missing item"
    for item in items:
        expected = cardindex.field_rows(vobject.readOne(item.text))
        stored = [row for row in fields if row.item_id == item.id]
        assert all(row.collection_id == book for row in stored)
        as_tuples = sorted(
            (r["name"], r["value_folded"] or "", r["value_digits"] or "") for r in expected
        )
        assert (
            sorted((r.name, r.value_folded or "", r.value_digits or "") for r in stored)
            == as_tuples
        ), item.text
        if searches:
            assert searches.get(item.id) == searchtext.body(expected), item.text


def test_sigkill_mid_burst_loses_nothing_acknowledged(
    server: ServerProcess, tmp_path: Path
) -> None:
    factories.add_user(server.database_url, "alice", PASSWORD)
    client = Dav(server.url, "alice", PASSWORD)
    assert client.mkaddressbook(BOOK).status_code == 201
    history = History()
    for i in range(PRESENT_BEFORE):
        href = f"{BOOK}pre-{i}.vcf"
        response = client.put(href, _card(href, f"Pre{i}"))
        assert response.status_code == 201
        history.acked[href] = (etag_of(response), f"Pre{i}")
    before = dict(history.acked)
    status, token, _ = client.sync(BOOK)
    assert status == 207 and token

    owned = [
        [h for h in before if int(h.rsplit("-", 1)[1][:-4]) % THREADS == n] for n in range(THREADS)
    ]
    threads = [
        threading.Thread(
            target=_burst, args=(Dav(server.url, "alice", PASSWORD), n, history, owned[n])
        )
        for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    with history.changed:
        progressed = history.changed.wait_for(
            lambda: (
                history.acks >= ACKS_BEFORE_KILL or not any(thread.is_alive() for thread in threads)
            ),
            timeout=BURST_DEADLINE,
        )
    assert progressed, "the burst made no progress"
    assert history.acks >= ACKS_BEFORE_KILL, history.unexpected
    assert all(thread.is_alive() for thread in threads), "killed after the burst, not during it"
    server.kill()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert history.unexpected == []

    restarted = start_server(server.database_url, tmp_path)
    try:
        client = Dav(restarted.url, "alice", PASSWORD)
        final: dict[str, State] = {}
        for href in sorted(set(history.acked) | set(history.pending)):
            observed = final[href] = _observe(client, href)
            acked = history.acked.get(href)
            options = [acked, history.pending[href]] if href in history.pending else [acked]
            assert any(_same(observed, option) for option in options), (href, observed, options)

        _, _, listed = client.sync(BOOK)
        assert set(listed) == {href for href, state in final.items() if state is not None}
        _check_index(server.database_url)
        assert Storage(factories.radicale_configuration(server.database_url)).verify()

        differ = {href for href, state in final.items() if not _same(state, before.get(href))}
        status, new_token, changes = client.sync(BOOK, token)
        assert status == 207
        assert set(changes) == differ
        for href, code in changes.items():
            assert code == (404 if final[href] is None else 200), (href, code)

        later = f"{BOOK}after-restart.vcf"
        assert client.put(later, _card(later, "After")).status_code == 201
        status, _, changes = client.sync(BOOK, new_token)
        assert status == 207
        assert set(changes) == {later}
    finally:
        restarted.stop()


def test_sqlite_durability_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'durability.sqlite3'}"
    levels = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}
    for name, level in [(None, 1), *levels.items()]:
        if name is None:
            monkeypatch.delenv(SQLITE_SYNCHRONOUS_ENV, raising=False)
        else:
            monkeypatch.setenv(SQLITE_SYNCHRONOUS_ENV, name.lower())
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == level
        finally:
            engine.dispose()
    monkeypatch.setenv(SQLITE_SYNCHRONOUS_ENV, "OFF")
    with pytest.raises(ConfigurationError, match=SQLITE_SYNCHRONOUS_ENV):
        make_engine(url)
