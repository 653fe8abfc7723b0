"""``dav-cms import`` / ``export`` through the storage, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dav_cms import accounts, transfer
from dav_cms.errors import NotFoundError
from tests.dav import Dav
from tests.servers import ServerProcess
from tests.servers import run_cli as _cli

DATA = Path(__file__).parent / "data" / "importers"
PASSWORD = "import-export-pw"


@pytest.fixture
def alice(migrated_db_url: str) -> str:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    return migrated_db_url


def _texts(url: str, name: str) -> dict[str, str]:
    storage = transfer.open_storage(url)  # the same storage the command uses
    with storage.acquire_lock("r"):
        collection = next(iter(storage.discover(f"/alice/{name}/")))
        return {item.uid: item.serialize() for item in collection.get_all()}


def test_vcf_import_reimport_update_and_roundtrip(alice: str, tmp_path: Path) -> None:
    source = DATA / "contacts.vcf"
    first = _cli(
        alice, "import", str(source), "--user", "alice", "--collection", "contacts", "--create"
    )
    assert first.returncode == 0, first.stderr
    created = int(first.stdout.split("created ")[1].split(",")[0])
    assert created > 0
    assert "skipped entry" in first.stdout  # the sample has a broken card, reported by number
    stored = _texts(alice, "contacts")
    assert len(stored) == created
    again = _cli(alice, "import", str(source), "--user", "alice", "--collection", "contacts")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"created 0, updated 0, unchanged {created},")
    assert _texts(alice, "contacts") == stored

    out = tmp_path / "export.vcf"
    exported = _cli(alice, "export", "--user", "alice", "--collection", "contacts", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    back = _cli(alice, "import", str(out), "--user", "alice", "--collection", "copy", "--create")
    assert back.returncode == 0, back.stderr
    assert _texts(alice, "copy") == stored

    uid, text = next(iter(stored.items()))
    changed = tmp_path / "changed.vcf"
    changed.write_text(text.replace("END:VCARD", "NOTE:changed\r\nEND:VCARD"), encoding="utf-8")
    update = _cli(alice, "import", str(changed), "--user", "alice", "--collection", "contacts")
    assert update.stdout.startswith("created 0, updated 1, unchanged 0,"), update.stdout
    assert "NOTE:changed" in _texts(alice, "contacts")[uid]


def test_ics_and_csv_import_and_export(alice: str, tmp_path: Path) -> None:
    ics = _cli(
        alice,
        "import",
        str(DATA / "calendar.ics"),
        "--user",
        "alice",
        "--collection",
        "cal",
        "--create",
    )
    assert ics.returncode == 0, ics.stderr
    events = _texts(alice, "cal")
    assert events
    out = tmp_path / "cal.ics"
    assert (
        _cli(alice, "export", "--user", "alice", "--collection", "cal", "-o", str(out)).returncode
        == 0
    )
    assert (
        _cli(
            alice, "import", str(out), "--user", "alice", "--collection", "cal2", "--create"
        ).returncode
        == 0
    )
    assert _texts(alice, "cal2") == events

    google = _cli(
        alice,
        "import",
        str(DATA / "google.csv"),
        "--user",
        "alice",
        "--collection",
        "google",
        "--create",
    )
    assert google.returncode == 0, google.stderr
    cards = _texts(alice, "google")
    assert cards
    assert all("BEGIN:VCARD" in text and "FN:" in text for text in cards.values())


def test_strict_import_writes_nothing(alice: str) -> None:
    result = _cli(
        alice,
        "import",
        str(DATA / "contacts.vcf"),
        "--user",
        "alice",
        "--collection",
        "contacts",
        "--create",
        "--strict",
    )
    assert result.returncode == 1
    assert "dav-cms: error:" in result.stderr
    with pytest.raises(StopIteration):
        _texts(alice, "contacts")


def test_bad_import_input_is_a_clear_error(alice: str, tmp_path: Path) -> None:
    source = str(DATA / "contacts.vcf")
    cases = [
        (["import", source, "--user", "nobody", "--collection", "c", "--create"], "no user"),
        (["import", source, "--user", "alice", "--collection", "missing"], "--create"),
        (["import", str(tmp_path / "x.txt"), "--user", "alice", "--collection", "c"], "format"),
        (
            ["import", str(DATA / "calendar.ics"), "--user", "alice", "--collection", "contacts"],
            "needs a VCALENDAR",
        ),
    ]
    assert (
        _cli(
            alice, "import", source, "--user", "alice", "--collection", "contacts", "--create"
        ).returncode
        == 0
    )
    for args, message in cases:
        result = _cli(alice, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_imported_contacts_sync_to_clients(alice: str, server: ServerProcess) -> None:
    assert (
        _cli(
            server.database_url,
            "import",
            str(DATA / "contacts.vcf"),
            "--user",
            "alice",
            "--collection",
            "contacts",
            "--create",
        ).returncode
        == 0
    )
    client = Dav(server.url, "alice", PASSWORD)
    status, _, hrefs = client.sync("/alice/contacts/")
    assert status == 207
    assert len(hrefs) == len(_texts(server.database_url, "contacts"))


def test_export_unknown_collection(alice: str) -> None:
    with pytest.raises(NotFoundError):
        transfer.export_collection(alice, "alice", "nothing", "vcf")


ENDLESS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//dav_cms tests//EN
BEGIN:VEVENT
UID:every-second
DTSTAMP:20260101T000000Z
DTSTART:20260101T000000Z
DURATION:PT1S
SUMMARY:Too dense
RRULE:FREQ=SECONDLY
END:VEVENT
BEGIN:VEVENT
UID:weekly
DTSTAMP:20260101T000000Z
DTSTART:20260105T090000Z
DURATION:PT1H
SUMMARY:Team meeting
RRULE:FREQ=WEEKLY
END:VEVENT
END:VCALENDAR
"""


def test_an_entry_the_storage_refuses_is_skipped_not_fatal(alice: str, tmp_path: Path) -> None:
    source = tmp_path / "dense.ics"
    source.write_text(ENDLESS)
    args = ["import", str(source), "--user", "alice", "--collection", "cal", "--create"]
    strict = _cli(alice, *args, "--strict")
    assert strict.returncode == 1
    assert "entry 1" in strict.stderr
    assert "max_vevent_rrule_occurrence" in strict.stderr

    result = _cli(alice, *args)
    assert result.returncode == 0, result.stderr
    assert "every-second" not in _texts(alice, "cal")
    assert set(_texts(alice, "cal")) == {"weekly"}
    assert "max_vevent_rrule_occurrence" in result.stdout + result.stderr
