"""A small company for the security tests: owners, a share, a group grant, an admin.

* alice owns ``/alice/contacts/`` (two cards) and ``/alice/cal/`` (one event);
  ``/alice/contacts/`` is shared read-write with bob (``/bob/alice-contacts/``).
* carol owns ``/carol/book/`` and shares it read-only with alice.
* group sales (members carol and alice) has a read-write grant on the company
  address book ``/_groups/sales/crm/`` (one card).
* dan is an administrator; eve has nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, select

from dav_cms import accounts, collection_admin, groups, shares
from dav_cms.db.models import Collection, CollectionGrant, Item, Share
from tests import factories
from tests.dav import Dav
from tests.servers import ServerProcess

PASSWORD = "correct horse"
LOGINS = ("alice", "bob", "carol", "dan", "eve")
SHARED = "/alice/contacts/"
MAPPED = "/bob/alice-contacts/"
COMPANY = "/_groups/sales/crm/"


@dataclass
class Company:
    """The running server and a client per person."""

    server: ServerProcess
    clients: dict[str, Dav]
    link: str  # a read-write token link to /alice/cal/

    @property
    def url(self) -> str:
        return self.server.database_url

    def __getitem__(self, login: str) -> Dav:
        return self.clients[login]


def add_people(url: str) -> None:
    """The accounts, the group and the company collection (before the server starts)."""
    for login in LOGINS:
        accounts.add_user(url, login, PASSWORD)
    accounts.set_admin(url, "dan", True)
    groups.add_group(url, "sales")
    for login in ("carol", "alice"):
        groups.add_member(url, "sales", login)
    collection_admin.create_collection(url, "crm", "addressbook", group="sales", permissions="rw")


def fill(server: ServerProcess) -> Company:
    """Collections, items and shares made through the server and the CLI's functions."""
    url = server.database_url
    clients = {login: Dav(server.url, login, PASSWORD) for login in LOGINS}
    alice, carol, dan = clients["alice"], clients["carol"], clients["dan"]
    for login, client in clients.items():  # Radicale makes each home on first login
        assert client.request("PROPFIND", f"/{login}/", Depth="0").status_code == 207
    assert alice.mkaddressbook(SHARED).status_code == 201
    for number in range(2):
        card = factories.vcard(name=f"Ada {number}")
        assert alice.put(f"{SHARED}{number}.vcf", card).status_code == 201
    assert alice.request("MKCALENDAR", "/alice/cal/").status_code == 201
    assert alice.put("/alice/cal/e.ics", factories.event()).status_code == 201
    assert carol.mkaddressbook("/carol/book/").status_code == 201
    assert carol.put("/carol/book/c.vcf", factories.vcard(name="Carl")).status_code == 201
    assert dan.put(f"{COMPANY}crm.vcf", factories.vcard(name="Client")).status_code == 201
    shares.add_map_share(url, SHARED, user="bob", permissions="rw")
    shares.add_map_share(url, "/carol/book/", user="alice", permissions="r")
    link = shares.add_token_share(url, "/alice/cal/", "rw")
    return Company(server, clients, link)


def snapshot(url: str) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            collections = {
                row.path: (row.tag, json.loads(row.props), row.id)
                for row in connection.execute(select(Collection))
            }
            items = sorted(
                (row.collection_id, row.href, row.etag, row.text)
                for row in connection.execute(select(Item))
            )
            share_rows = sorted(
                tuple(str(value) for value in row)
                for row in connection.execute(select(*Share.__table__.columns))
            )
            grants = sorted(
                (row.collection_id, row.group_id, row.permissions)
                for row in connection.execute(select(CollectionGrant))
            )
    finally:
        engine.dispose()
    return {"collections": collections, "items": items, "shares": share_rows, "grants": grants}
