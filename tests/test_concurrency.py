"""Several server processes on one database: no lost update, no duplicate UID, no missed change.

Bounded: a fixed number of writers and rounds, each request with a timeout.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import factories
from tests.dav import Dav, etag_of
from tests.servers import ServerProcess, start_server

PASSWORD = "s3cret-pass"
WRITERS_PER_SERVER = 3
ROUNDS = 8


@pytest.fixture
def two_servers(server: ServerProcess, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    factories.add_user(server.database_url, "alice", PASSWORD)
    second = start_server(server.database_url, tmp_path)
    try:
        yield [server, second]
    finally:
        second.stop()


def _run_threads(target, count: int) -> None:  # type: ignore[no-untyped-def]
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()


def test_if_match_writers_never_lose_an_update(two_servers: list[ServerProcess]) -> None:
    clients = [Dav(s.url, "alice", PASSWORD) for s in two_servers]
    assert clients[0].mkaddressbook("/alice/book/").status_code == 201
    first = clients[0].put("/alice/book/card.vcf", factories.vcard("card", name="V 0"))
    assert first.status_code == 201
    successes: list[tuple[str, str, str]] = []  # (If-Match etag, new etag, name written)
    unexpected: list[int] = []
    lock = threading.Lock()
    counter = itertools.count(1)

    def writer(n: int) -> None:
        client = clients[n % len(clients)]
        for _ in range(ROUNDS):
            current = client.request("GET", "/alice/book/card.vcf")
            name = f"V {next(counter)}"
            response = client.put(
                "/alice/book/card.vcf",
                factories.vcard("card", name=name),
                **{"If-Match": current.headers["ETag"]},
            )
            with lock:
                if response.status_code in (200, 201, 204):
                    successes.append((current.headers["ETag"], etag_of(response), name))
                elif response.status_code != 412:
                    unexpected.append(response.status_code)

    _run_threads(writer, WRITERS_PER_SERVER * len(clients))
    assert unexpected == []
    assert successes
    # Every successful write was based on the version before it: the etags form one chain.
    based_on = [old for old, _, _ in successes]
    assert len(set(based_on)) == len(based_on), "two writes succeeded on the same version"
    chain = {old: (new, name) for old, new, name in successes}
    etag, last_name = etag_of(first), "V 0"
    for _ in successes:
        etag, last_name = chain[etag]
    final = clients[1].request("GET", "/alice/book/card.vcf")
    assert final.headers["ETag"] == etag
    assert f"FN:{last_name}" in final.text


def test_same_uid_from_two_processes_is_stored_once(two_servers: list[ServerProcess]) -> None:
    clients = [Dav(s.url, "alice", PASSWORD) for s in two_servers]
    assert clients[0].request("MKCALENDAR", "/alice/cal/").status_code == 201
    statuses: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        response = clients[n % 2].put(f"/alice/cal/copy-{n}.ics", factories.event("one-uid"))
        with lock:
            statuses.append(response.status_code)

    _run_threads(writer, 6)
    assert statuses.count(201) == 1
    assert all(status in (201, 409) for status in statuses), statuses
    _, _, hrefs = clients[0].sync("/alice/cal/")
    assert len(hrefs) == 1


def test_sync_from_any_process_reports_every_change(two_servers: list[ServerProcess]) -> None:
    clients = [Dav(s.url, "alice", PASSWORD) for s in two_servers]
    assert clients[0].request("MKCALENDAR", "/alice/cal/").status_code == 201
    _, token, _ = clients[0].sync("/alice/cal/")

    def writer(n: int) -> None:
        for round_ in range(ROUNDS):
            response = clients[n % 2].put(f"/alice/cal/{n}-{round_}.ics", factories.event())
            assert response.status_code == 201

    _run_threads(writer, 4)
    expected = {f"/alice/cal/{n}-{r}.ics" for n in range(4) for r in range(ROUNDS)}
    for client in clients:
        status, _, changes = client.sync("/alice/cal/", token)
        assert status == 207
        assert set(changes) == expected


ITEMS = 4
RMW_THREADS = 6
RMW_ROUNDS = 6


def test_read_modify_write_on_several_items_from_three_processes(
    two_servers: list[ServerProcess], tmp_path: Path
) -> None:
    third = start_server(two_servers[0].database_url, tmp_path)
    try:
        clients = [Dav(s.url, "alice", PASSWORD) for s in [*two_servers, third]]
        assert clients[0].mkaddressbook("/alice/book/").status_code == 201
        hrefs = [f"/alice/book/item-{i}.vcf" for i in range(ITEMS)]
        first: dict[str, tuple[str, str]] = {}
        for href in hrefs:
            response = clients[0].put(href, factories.vcard(href[-10:-4], name="V 0"))
            assert response.status_code == 201
            first[href] = (etag_of(response), "V 0")
        _, token, _ = clients[1].sync("/alice/book/")
        # Per item: successful writes as (If-Match etag, new etag, name written).
        successes: dict[str, list[tuple[str, str, str]]] = {href: [] for href in hrefs}
        unexpected: list[int] = []
        lock = threading.Lock()
        counter = itertools.count(1)

        def writer(n: int) -> None:
            for round_ in range(RMW_ROUNDS):
                client = clients[(n + round_) % len(clients)]
                href = hrefs[(n * RMW_ROUNDS + round_) % ITEMS]
                current = client.request("GET", href)
                name = f"V {next(counter)}"
                response = client.put(
                    href,
                    factories.vcard(href[-10:-4], name=name),
                    **{"If-Match": current.headers["ETag"]},
                )
                with lock:
                    if response.status_code in (200, 201, 204):
                        successes[href].append((current.headers["ETag"], etag_of(response), name))
                    elif response.status_code != 412:
                        unexpected.append(response.status_code)

        _run_threads(writer, RMW_THREADS)
        assert unexpected == []
        for href in hrefs:
            based_on = [old for old, _, _ in successes[href]]
            assert len(set(based_on)) == len(based_on), f"two writes of {href} on one version"
            chain = {old: (new, name) for old, new, name in successes[href]}
            etag, name = first[href]
            for _ in successes[href]:
                etag, name = chain[etag]
            for client in clients:
                final = client.request("GET", href)
                assert final.headers["ETag"] == etag
                assert f"FN:{name}" in final.text
        changed = {href for href in hrefs if successes[href]}
        assert changed
        for client in clients:
            status, _, changes = client.sync("/alice/book/", token)
            assert status == 207
            assert set(changes) == changed
    finally:
        third.stop()
