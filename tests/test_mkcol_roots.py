"""Extended MKCOL bodies: RFC 5689's ``mkcol`` root, and ``create``, which Radicale reads the same.

Radicale's own tests (and the clients they stand for) create address books with
a ``{DAV:}create`` root; dav_cms's limits layer takes it as Radicale does and
refuses any other root with 400 before Radicale parses the body.
"""

from __future__ import annotations

import base64

import pytest

from dav_cms.web import WSGIApp, make_application
from tests import factories
from tests.dav import MKCOL_ADDRESSBOOK
from tests.test_fuzz_requests import call

ALICE = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:pw").decode()}
PROPFIND = (
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
    b"</D:prop></D:propfind>"
)


@pytest.fixture
def app(migrated_db_url: str) -> WSGIApp:
    return make_application(factories.radicale_configuration(migrated_db_url, auth={"delay": "0"}))


def _body(root: str) -> bytes:
    return MKCOL_ADDRESSBOOK.format(name="n").replace("D:mkcol", f"D:{root}").encode()


@pytest.mark.parametrize("root", ["mkcol", "create"])
def test_mkcol_and_create_roots_make_an_address_book(app: WSGIApp, root: str) -> None:
    assert call(app, "MKCOL", f"/alice/{root}/", _body(root), ALICE)[0] == 201
    status, answer = call(
        app, "PROPFIND", f"/alice/{root}/", PROPFIND, {**ALICE, "HTTP_DEPTH": "0"}
    )
    assert status == 207
    assert b"addressbook" in answer


def test_another_root_is_refused_before_radicale(app: WSGIApp) -> None:
    status, answer = call(app, "MKCOL", "/alice/other/", _body("propertyupdate"), ALICE)
    assert status == 400
    assert b"{DAV:}create or {DAV:}mkcol" in answer
    assert call(app, "PROPFIND", "/alice/other/", PROPFIND, {**ALICE, "HTTP_DEPTH": "0"})[0] == 404
