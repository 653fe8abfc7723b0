"""Test data: calendar objects, vCards, users and Radicale configurations."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from radicale import config as radicale_config

from dav_cms import rights as dav_cms_rights
from dav_cms.db.models import Collection
from tests.cli_runner import run_with_url


def event(
    uid: str | None = None,
    start: str = "20260105T100000Z",
    end: str = "20260105T110000Z",
    summary: str = "Meeting",
) -> str:
    """A VCALENDAR with one VEVENT."""
    uid = uid or uuid.uuid4().hex
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dav_cms tests//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def todo(uid: str | None = None, summary: str = "Task") -> str:
    """A VCALENDAR with one VTODO without dates."""
    uid = uid or uuid.uuid4().hex
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//dav_cms tests//EN\r\n"
        f"BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )


def vcard(
    uid: str | None = None, name: str = "Ada Lovelace", email: str = "ada@example.org"
) -> str:
    """A vCard 3.0."""
    uid = uid or uuid.uuid4().hex
    family, _, given = name.partition(" ")[::-1]
    return (
        "BEGIN:VCARD\r\nVERSION:3.0\r\n"
        f"UID:{uid}\r\nFN:{name}\r\nN:{family};{given};;;\r\nEMAIL;TYPE=INTERNET:{email}\r\n"
        "END:VCARD\r\n"
    )


def radicale_configuration(database_url: str, **sections: dict[str, Any]) -> Any:
    """Radicale's configuration with dav_cms's storage on ``database_url``."""
    configuration = radicale_config.load()
    values: dict[str, dict[str, Any]] = {
        "storage": {"type": "dav_cms.storage", "database_url": database_url},
        "auth": {"type": "none"},
        "rights": {"type": "owner_only"},
    }
    for section, options in sections.items():
        values.setdefault(section, {}).update(options)
    if values["rights"]["type"] == "dav_cms.rights":
        # What a Radicale configuration must say to use dav_cms.rights (README).
        for (section, option), wanted in dav_cms_rights.GUARDED.items():
            values.setdefault(section, {}).setdefault(option, str(wanted))
    configuration.update(values, "dav_cms tests", privileged=True)
    return configuration


def add_user(database_url: str, login: str, password: str) -> None:
    """Create an account with the real CLI's entry point (in this process)."""
    result = run_with_url(
        database_url, "user", "add", login, "--password-stdin", stdin=password + "\n"
    )
    result.check_returncode()


def collection_row(path: str, owner: str = "", tag: str = "") -> Any:
    """A ``collections`` row as the storage would make it (for direct database tests)."""
    return Collection(
        path=path,
        parent_path=path.rpartition("/")[0],
        owner=owner,
        tag=tag,
        props="{}",
        instance=secrets.token_hex(16),
        revision=0,
        sync_floor=0,
        modified=int(time.time()),
    )
