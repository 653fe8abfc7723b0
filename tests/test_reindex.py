"""``dav-cms reindex`` rebuilds the derived rows; ``dav-cms verify`` finds rows that disagree.

The CLI runs in-process through its ``main(argv)`` (one smoke test runs the
real command), on rows damaged the way an older version or a bug would leave
them. A client's write between a batch's read and its write is simulated by
calling the batch's two halves around a real upload.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from radicale import storage as radicale_storage
from sqlalchemy import delete, insert, select, update

from dav_cms import accounts
from dav_cms.cli import main
from dav_cms.db.batches import Limits
from dav_cms.db.models import CardField, CardSearch, Occurrence, OccurrenceHorizon
from dav_cms.db.models import Collection as CollectionRow
from dav_cms.db.models import Item as ItemRow
from dav_cms.db.session import get_engine
from dav_cms.store import derived, index_versions, reindex, verify
from tests import factories
from tests import test_occurrences as occ
from tests.servers import dav_cms_command
from tests.test_search_index import CARDS, _get
from tests.test_search_index import _item as card_item

BOOK = "/alice/book/"
CAL = "/alice/cal/"
BOB = "/bob/book/"
PASSWORD = "reindex-password-1"
ALL = frozenset(index_versions.KINDS)


@pytest.fixture
def storage(migrated_db_url: str) -> Any:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    accounts.add_user(migrated_db_url, "bob", PASSWORD)
    loaded = radicale_storage.load(factories.radicale_configuration(migrated_db_url))
    with loaded.acquire_lock("w"):
        loaded.create_collection(
            BOOK, items=[card_item(t) for t in CARDS[:30]], props={"tag": "VADDRESSBOOK"}
        )
        loaded.create_collection(
            CAL, items=[occ._item(t) for t in occ.ITEMS[:30]], props={"tag": "VCALENDAR"}
        )
        loaded.create_collection(
            BOB,
            items=[card_item(t, "bob/book") for t in CARDS[30:40]],
            props={"tag": "VADDRESSBOOK"},
        )
    return loaded


def _ids(url: str, path: str) -> list[int]:
    stmt = (
        select(ItemRow.id)
        .join(CollectionRow, CollectionRow.id == ItemRow.collection_id)
        .where(CollectionRow.path == path.strip("/"))
        .order_by(ItemRow.id)
    )
    with get_engine(url).connect() as connection:
        return list(connection.execute(stmt).scalars())


def _href(url: str, item_id: int) -> str:
    stmt = select(CollectionRow.path, ItemRow.href).join(CollectionRow).where(ItemRow.id == item_id)
    with get_engine(url).connect() as connection:
        path, href = connection.execute(stmt).one()
    return f"/{path}/{href}"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _damage(url: str) -> dict[str, list[int]]:
    """Stale rows (reindex finds them by version) and wrong current ones (only --all fixes)."""
    cards, events = _ids(url, BOOK), _ids(url, CAL)
    walked = [i for i in events if _has_mark(url, i)]
    with get_engine(url).begin() as connection:
        connection.execute(delete(CardField).where(CardField.item_id == cards[0]))
        connection.execute(update(CardField).where(CardField.item_id == cards[1]).values(version=0))
        connection.execute(delete(OccurrenceHorizon).where(OccurrenceHorizon.item_id == walked[0]))
        connection.execute(
            update(CardField)
            .where(CardField.item_id == cards[2], CardField.name == "FN")
            .values(value_folded="someone else")
        )
        connection.execute(delete(CardSearch).where(CardSearch.item_id == cards[3]))
        connection.execute(
            insert(Occurrence).values(
                item_id=walked[1],
                collection_id=_collection_id(url, CAL),
                component="VEVENT",
                start_ts=1,
                end_ts=2,
            )
        )
    return {"stale": [cards[0], cards[1], walked[0]], "wrong": [cards[2], cards[3], walked[1]]}


def _has_mark(url: str, item_id: int) -> bool:
    stmt = select(OccurrenceHorizon.item_id).where(OccurrenceHorizon.item_id == item_id)
    with get_engine(url).connect() as connection:
        return connection.execute(stmt).first() is not None


def _collection_id(url: str, path: str) -> int:
    stmt = select(CollectionRow.id).where(CollectionRow.path == path.strip("/"))
    with get_engine(url).connect() as connection:
        return int(connection.execute(stmt).scalar_one())


def _listed(out: str) -> set[str]:
    return {line.split(": ", 1)[0] for line in out.splitlines() if line.startswith("/")}


def test_verify_lists_what_differs_and_reindex_repairs_it(
    storage: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    assert _run(capsys, "verify", "--database-url", url)[0] == 0
    damaged = _damage(url)
    status, out, _ = _run(capsys, "verify", "--database-url", url)
    assert status == 1
    every = {_href(url, i) for ids in damaged.values() for i in ids}
    assert _listed(out) == every
    assert f"verified 70 items: {len(every)} with problems" in out
    assert "cards index: the rows differ from the text" in out
    assert "cards index: the search text differs from the text" in out
    assert "occurrences index: the rows differ from the text" in out
    # By default: the items whose rows are missing or of another version.
    status, out, _ = _run(capsys, "reindex", "--database-url", url)
    assert status == 0
    assert out.strip() == (
        "reindexed 3 of 3 items, skipped 0 changed meanwhile, 0 unreadable (in 1 batch; "
        f"last item id {max(damaged['stale'])})"
    )
    assert _listed(_run(capsys, "verify", "--database-url", url)[1]) == {
        _href(url, i) for i in damaged["wrong"]
    }
    assert "reindexed 0 of 0 items" in _run(capsys, "reindex", "--database-url", url)[1]
    # --all: everything, the rows that only a comparison finds included.
    status, out, _ = _run(capsys, "reindex", "--all", "--database-url", url)
    assert "reindexed 70 of 70 items" in out
    assert _run(capsys, "verify", "--database-url", url)[:2] == (
        0,
        "verified 70 items: 0 with problems\n",
    )


def test_kind_and_scope_limit_the_work(
    storage: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    with get_engine(url).begin() as connection:
        connection.execute(update(CardField).values(version=0))
        connection.execute(update(OccurrenceHorizon).values(version=0))
    out = _run(capsys, "reindex", "--kind", "occurrences", "--database-url", url)[1]
    walked = len([i for i in _ids(url, CAL) if _has_mark(url, i)])
    assert f"reindexed {walked} of {walked} items" in out
    out = _run(
        capsys, "reindex", "--collection", "bob/book", "--kind", "cards", "--database-url", url
    )[1]
    assert "reindexed 10 of 10 items" in out
    out = _run(capsys, "reindex", "--user", "alice", "--kind", "cards", "--database-url", url)[1]
    assert "reindexed 30 of 30 items" in out
    problems = _listed(_run(capsys, "verify", "--database-url", url)[1])
    assert problems == {_href(url, i) for i in _ids(url, CAL)}  # calendar text still old
    assert _run(capsys, "reindex", "--user", "carol", "--database-url", url)[0] == 0
    out = _run(capsys, "reindex", "--kind", "calendar", "--database-url", url)[1]
    assert "reindexed 30 of 30 items" in out
    assert _run(capsys, "verify", "--user", "alice", "--database-url", url)[0] == 0


def test_mutually_exclusive_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["reindex", "--user", "alice", "--collection", "alice/book"])
    assert exited.value.code == 2


def test_an_interrupted_run_continues_where_it_stopped(
    storage: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    vcards = select(ItemRow.id).where(ItemRow.name == "VCARD")
    with get_engine(url).begin() as connection:
        connection.execute(update(CardField).where(CardField.item_id.in_(vcards)).values(version=0))
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt

    transactions = storage.transactions
    with pytest.raises(KeyboardInterrupt) as stopped:
        reindex.reindex(transactions, kinds=["cards"], limits=Limits(7), progress=progress)
    counts = stopped.value.counts  # type: ignore[attr-defined]
    assert seen == [(7, 40), (14, 40)]
    assert (counts.done, counts.rebuilt, counts.batches) == (14, 14, 2)
    cards = sorted(_ids(url, BOOK) + _ids(url, BOB))
    assert counts.last_id == cards[13]
    # Run again: only what is left, in batches, with progress.
    status, out, err = _run(
        capsys, "reindex", "--kind", "cards", "--batch-size", "7", "--database-url", url
    )
    assert status == 0
    assert "reindexed 26 of 26 items" in out
    assert err.splitlines() == [
        f"batch {n} committed: {min(7 * n, 26)} of 26 entries" for n in range(1, 5)
    ]
    # --all continues after the id an interrupted run reported.
    out = _run(
        capsys,
        "reindex",
        "--all",
        "--kind",
        "cards",
        "--after",
        str(cards[13]),
        "--database-url",
        url,
    )[1]
    assert "reindexed 26 of 26 items" in out
    assert list(verify.problems(transactions, 10000)) == []


def test_an_item_changed_meanwhile_is_left_to_its_write(storage: Any, migrated_db_url: str) -> None:
    url = migrated_db_url
    transactions = storage.transactions
    first, second, third = _ids(url, BOOK)[:3]
    with transactions.session() as session:
        rows = session.execute(derived.select_sources(ItemRow.id.in_([first, second, third]), 0, 9))
        sources = [derived.source_of(row) for row in rows]
    batch = [derived.derive(source, ALL, storage.now()) for source in sources]
    # A client replaces the first item and deletes the second before the batch is written.
    collection = _get(storage, BOOK)
    hrefs = {item.href: item for item in collection.get_all()}
    by_id = {source.id: source for source in sources}
    changed = next(href for href in hrefs if _href(url, first).endswith("/" + href))
    deleted = next(href for href in hrefs if _href(url, second).endswith("/" + href))
    new_text = by_id[first].text.replace("FN:", "FN:Renamed ")
    with storage.acquire_lock("w"):
        collection.upload(changed, card_item(new_text))
        collection.delete(deleted)
    assert reindex.write_batch(transactions, batch) == 1  # only the third one
    assert list(verify.problems(transactions, 10000)) == []
    with get_engine(url).connect() as connection:
        names = connection.execute(
            select(CardField.value_folded).where(CardField.item_id == first, CardField.name == "FN")
        ).scalars()
        assert [str(name).startswith("renamed ") for name in names] == [True]


def test_unreadable_items_are_counted_and_left_alone(
    storage: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_db_url
    broken = _ids(url, BOOK)[0]
    with get_engine(url).begin() as connection:
        connection.execute(update(ItemRow).where(ItemRow.id == broken).values(text="BEGIN:VCARD"))
    out = _run(capsys, "reindex", "--all", "--kind", "cards", "--database-url", url)[1]
    assert "reindexed 39 of 40 items, skipped 0 changed meanwhile, 1 unreadable" in out
    status, out, _ = _run(capsys, "verify", "--database-url", url)
    assert status == 1
    assert _listed(out) == {_href(url, broken)}


def test_the_commands_run_as_programs(storage: Any, migrated_db_url: str) -> None:
    with get_engine(migrated_db_url).begin() as connection:
        connection.execute(update(OccurrenceHorizon).values(version=0))
    for args, expected in (
        (["reindex"], "reindexed "),
        (["verify"], "verified 70 items: 0 with problems"),
    ):
        done = subprocess.run(
            [*dav_cms_command(), *args, "--database-url", migrated_db_url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
