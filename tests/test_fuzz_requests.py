"""Property test of the request path: random requests never get a 5xx, and never touch
another user's data.

Methods, paths, headers and bodies (XML, vCard and iCalendar, valid ones cut and
spliced, random bytes) are generated and sent as Mallory to dav_cms's WSGI
application in-process. Alice's card, made before, must stay exactly as stored.
"""

from __future__ import annotations

import base64
import io
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dav_cms.web import WSGIApp, make_application
from tests import factories
from tests.dav import CALENDAR_QUERY, MKCOL_ADDRESSBOOK, SYNC_COLLECTION
from tests.wsgi import make_environ

KNOWN_PATH = "/alice/contacts/known.vcf"
KNOWN = factories.vcard("fuzz-known", name="Known Person")
MALLORY = "Basic " + base64.b64encode(b"mallory:pw").decode()

METHODS = st.sampled_from(
    [
        "GET",
        "HEAD",
        "OPTIONS",
        "PUT",
        "DELETE",
        "PROPFIND",
        "PROPPATCH",
        "REPORT",
        "MKCOL",
        "MKCALENDAR",
        "MOVE",
        "POST",
        "COPY",
        "LOCK",
        "TRACE",
        "FOO",
    ]
) | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=12)

SEGMENTS = st.sampled_from(
    [
        "mallory",
        "alice",
        "contacts",
        "cal",
        "known.vcf",
        "x.ics",
        "new.vcf",
        "..",
        ".",
        "",
        "%2F",
        "%2e%2e",
        "%00",
        "%0A",
        "%0D",
        "%FF",
        "%C0%AF",
        "%",
        ".well-known",
        "_groups",
        "a" * 300,
        ".token",
    ]
) | st.text(max_size=12)


@st.composite
def paths(draw: st.DrawFn) -> str:
    """A PATH_INFO as the server hands it over (percent-escapes decoded)."""
    segments = draw(st.lists(SEGMENTS, max_size=5))
    raw = "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))
    return unquote(raw, errors="replace")


XML_BODIES = [
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>',
    '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>x</D:displayname>'
    "</D:prop></D:set></D:propertyupdate>",
    SYNC_COLLECTION.format(token=""),
    SYNC_COLLECTION.format(token="http://radicale.org/ns/sync/bogus"),
    CALENDAR_QUERY.format(start="20260101T000000Z", end="20270101T000000Z"),
    MKCOL_ADDRESSBOOK.format(name="x"),
    '<C:mkcalendar xmlns:C="urn:ietf:params:xml:ns:caldav"/>',
    '<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
    f"<D:prop><CR:address-data/></D:prop><D:href>{KNOWN_PATH}</D:href></CR:addressbook-multiget>",
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><D:propfind xmlns:D="DAV:"/>',
]
ITEM_BODIES = [
    factories.vcard("fuzz-card"),
    factories.vcard("fuzz-known", name="Overwriter"),
    factories.event("fuzz-event"),
    factories.todo("fuzz-todo"),
    factories.event("fuzz-rrule").replace("SUMMARY:", "RRULE:FREQ=SECONDLY\r\nSUMMARY:"),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid body, cut at a random place with random text spliced in."""
    text = draw(st.sampled_from(XML_BODIES + ITEM_BODIES))
    start = draw(st.integers(0, len(text)))
    cut = draw(st.integers(0, 40))
    insert = draw(st.text(max_size=20))
    return (text[:start] + insert + text[start + cut :]).encode("utf-8", "surrogatepass")


BODIES = (
    st.just(b"")
    | st.sampled_from(XML_BODIES + ITEM_BODIES).map(str.encode)
    | mutated()
    | st.binary(max_size=200)
)

HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "HTTP_DEPTH": st.sampled_from(["0", "1", "infinity", "2", "-1", ""]) | st.text(max_size=8),
        "CONTENT_TYPE": st.sampled_from(
            [
                "text/vcard",
                "text/calendar",
                "application/xml",
                "text/xml; charset=utf-8",
                "application/json",
                "text/vcard; charset=nope",
                "text/calendar; charset=base64",
            ]
        )
        | st.text(max_size=30),
        "HTTP_DESTINATION": st.sampled_from(
            [
                "/mallory/x/",
                "http://localhost:5232/alice/contacts/x.vcf",
                "/alice/contacts/",
                "",
                "::::",
                "/mallory/a%0Ab",
                "/mallory/%ZZ",
                "http://elsewhere/x",
            ]
        )
        | st.text(max_size=40),
        "HTTP_AUTHORIZATION": st.sampled_from(
            ["Basic", "Basic !!", "Bearer x", "Basic bWFsbG9yeQ=="]
        )
        | st.text(max_size=40),
        "HTTP_IF_MATCH": st.sampled_from(['"x"', "*", ""]) | st.text(max_size=20),
        "HTTP_OVERWRITE": st.sampled_from(["T", "F", "x"]),
        "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "gzip", ""]),
    },
)


def call(
    app: WSGIApp, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """One request through the WSGI application, as Radicale's own server would make it."""
    environ = {
        **make_environ(method, path, body, MALLORY),
        "HTTP_HOST": "localhost:5232",
        **headers,
    }
    if environ.get("HTTP_TRANSFER_ENCODING") == "chunked":
        environ["CONTENT_LENGTH"] = ""
        environ["wsgi.input"] = io.BytesIO(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    status: list[str] = []

    def start_response(
        line: str, _headers: list[tuple[str, str]], _exc_info: object = None
    ) -> None:
        status.append(line)

    answer = b"".join(app(environ, start_response))
    return int(status[0].split()[0]), answer


def is_alice(authorization: str) -> bool:
    """Whether a generated Authorization value would log in as Alice (not Mallory's to use)."""
    try:
        return base64.b64decode(authorization[6:], validate=False).startswith(b"alice")
    except ValueError:
        return False


@pytest.fixture
def app(migrated_db_url: str) -> WSGIApp:
    """dav_cms's application with Alice's address book and card (no delays on 401/403)."""
    configuration = factories.radicale_configuration(migrated_db_url, auth={"delay": "0"})
    application = make_application(configuration)
    alice = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:pw").decode()}
    mkcol = MKCOL_ADDRESSBOOK.format(name="c").encode()
    assert call(application, "MKCOL", "/alice/contacts/", mkcol, alice)[0] == 201
    card = {**alice, "CONTENT_TYPE": "text/vcard"}
    assert call(application, "PUT", KNOWN_PATH, KNOWN.encode(), card)[0] == 201
    return application


def known_card(application: WSGIApp) -> bytes:
    alice = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice:pw").decode()}
    status, body = call(application, "GET", KNOWN_PATH, b"", alice)
    assert status == 200
    return body


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=METHODS, path=paths(), body=BODIES, headers=HEADERS)
def test_random_requests_never_get_5xx(
    app: WSGIApp, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    if is_alice(headers.get("HTTP_AUTHORIZATION", MALLORY)):
        return
    before = known_card(app)
    status, answer = call(app, method, path, body, headers)
    assert status < 500, (status, answer[:300])
    assert known_card(app) == before
    assert b"Known Person" not in answer or KNOWN_PATH not in path
