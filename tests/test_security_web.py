"""Security of the web surface: cross-site requests, security headers, secrets in logs, versions.

Each test talks HTTP to a real ``dav-cms serve`` (on SQLite and PostgreSQL).
A refused request must leave the database exactly as it was; the log tests
read the server's log after it stopped.
"""

from __future__ import annotations

import base64
import json
import logging
import platform
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gunicorn
import pytest
import radicale
import requests
from sqlalchemy import create_engine, text

from dav_cms import accounts, app_passwords, audit_log, redact, shares
from tests import factories, rawhttp
from tests.dav import MKCOL_ADDRESSBOOK, Dav
from tests.servers import ServerProcess, start_server

PASSWORD = "correct horse"
BOOK = "/alice/book/"
CARD = BOOK + "ada.vcf"
SAFE = ("GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT")
TABLES = ("collections", "items", "shares", "audit_log")
PROPPATCH = (
    '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
    "<D:displayname>Evil</D:displayname></D:prop></D:set></D:propertyupdate>"
)
# Everything Radicale can log about a request, and passwords unmasked by Radicale.
LOUD = """[logging]
request_header_on_debug = True
request_content_on_debug = True
response_header_on_debug = True
response_content_on_debug = True
mask_passwords = False
"""


@dataclass
class Site:
    server: ServerProcess
    alice: Dav
    token: str  # a link to BOOK: /.token/v1/<44>/

    @property
    def url(self) -> str:
        return self.server.database_url

    def post_sharing(self, action: str, body: object, **headers: str) -> requests.Response:
        return requests.post(
            f"{self.server.url}/.sharing/v1/token/{action}",
            data=(body if isinstance(body, str) else json.dumps(body)).encode(),
            auth=("alice", PASSWORD),
            headers={"Accept": "application/json", **headers},
            timeout=30,
        )


def snapshot(url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the tables a request could change."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: sorted(
                    tuple(map(str, row))
                    for row in connection.execute(text(f"SELECT * FROM {table}"))
                )
                for table in TABLES
            }
    finally:
        engine.dispose()


@contextmanager
def running(url: str, tmp_path: Path, extra_args: list[str] | None = None) -> Iterator[Site]:
    """A server with alice's address book (one card), shared with bob and by a link."""
    for login in ("alice", "bob"):
        accounts.add_user(url, login, PASSWORD)
    server = start_server(url, tmp_path, extra_args=extra_args)
    try:
        alice = Dav(server.url, "alice", PASSWORD)
        assert alice.mkaddressbook(BOOK).status_code == 201
        assert alice.put(CARD, factories.vcard(uid="ada")).status_code == 201
        shares.add_map_share(url, BOOK, user="bob", permissions="r")
        yield Site(server, alice, shares.add_token_share(url, BOOK))
    finally:
        server.stop()


def loud(url: str, tmp_path: Path) -> list[str]:
    """Arguments for a server that logs all it can (--debug and :data:`LOUD`)."""
    config = tmp_path / "loud.ini"
    config.write_text(LOUD)
    return ["--debug", "--config", str(config)]


@pytest.fixture
def site(migrated_db_url: str, tmp_path: Path) -> Iterator[Site]:
    with running(migrated_db_url, tmp_path) as started:
        yield started


@pytest.fixture(scope="module")
def shared_site(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site per engine for the tests whose requests are refused or only read."""
    with running(module_db_url, tmp_path_factory.mktemp("site")) as started:
        yield started


def own_origin(site: Site) -> str:
    return f"http://127.0.0.1:{site.server.port}"


def assert_refused(response: requests.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text.startswith("Forbidden: ")
    assert reason in response.text


def writes(site: Site, **headers: str) -> list[requests.Response]:
    """One request of each state-changing kind, each of which would change something."""
    alice = site.alice
    xml = {"Content-Type": "application/xml"}
    json_type = {"Content-Type": "application/json"}
    return [
        alice.put(BOOK + "new.vcf", factories.vcard(name="Eve Evil"), **headers),
        alice.request(
            "MOVE", BOOK + "new.vcf", Destination=site.server.url + BOOK + "moved.vcf", **headers
        ),
        alice.request("DELETE", CARD, **headers),
        alice.request("PROPPATCH", BOOK, PROPPATCH, **xml, **headers),
        alice.request(
            "MKCOL", "/alice/other/", MKCOL_ADDRESSBOOK.format(name="x"), **xml, **headers
        ),
        alice.request("MKCALENDAR", "/alice/cal/", **headers),
        alice.request("DELETE", "/alice/other/", **headers),
        site.post_sharing("delete", {"PathOrToken": site.token}, **json_type, **headers),
    ]


def test_sharing_api_refuses_form_content_type(site: Site) -> None:
    before = snapshot(site.url)
    form = f"PathOrToken={site.token}"
    response = site.post_sharing(
        "delete", form, **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_refused(response, "application/json")
    assert snapshot(site.url) == before
    # The same request as JSON goes through (and would have deleted the link).
    json_type = {"Content-Type": "application/json"}
    deleted = site.post_sharing("delete", {"PathOrToken": site.token}, **json_type)
    assert deleted.status_code == 200, deleted.text
    assert not [r for r in shares.list_shares(site.url) if r["ShareType"] == "token"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain; application/json",
        "text/plain",
        "multipart/form-data; boundary=application/json",
        "application/json-patch+json",
        "application/jsonx",
        "application/json; charset=latin-1",
        "application/json; charset=utf-8; x=y",
        "application/json, text/plain",
        "",
    ],
)
def test_sharing_api_refuses_json_lookalike_content_type(
    shared_site: Site, content_type: str
) -> None:
    before = snapshot(shared_site.url)
    body = json.dumps({"PathOrToken": shared_site.token})
    response = shared_site.post_sharing("delete", body, **{"Content-Type": content_type})
    assert_refused(response, "the sharing API takes only application/json")
    assert snapshot(shared_site.url) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_sharing_api_accepts_json(shared_site: Site, content_type: str) -> None:
    response = shared_site.post_sharing("list", {}, **{"Content-Type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://127.0.0.1",  # another port
        "https://127.0.0.1:{port}",  # another scheme
        "http://localhost:{port}",  # another host
        "http://127.0.0.1:{port}.evil.example",
        "not an origin",
    ],
)
def test_cross_site_origin_refused(site: Site, origin: str) -> None:
    before = snapshot(site.url)
    responses = writes(site, Origin=origin.format(port=site.server.port))
    for response in responses:
        assert_refused(response, "cross-site request (Origin: ")
    assert snapshot(site.url) == before
    site.server.stop()
    log = site.server.log()
    # One line for each refusal, and Radicale never saw the requests.
    assert log.count("cross-site request (Origin: ") == len(responses)
    seen = re.findall(r"(?<!Refused )\b([A-Z]+) request for '([^']*)'", log)
    assert [entry for entry in seen if entry[0] not in SAFE] == [("MKCOL", BOOK), ("PUT", CARD)]


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site", "Cross-Site", "bogus"])
def test_sec_fetch_site_cross_site_refused(shared_site: Site, fetch_site: str) -> None:
    before = snapshot(shared_site.url)
    for response in writes(shared_site, **{"Sec-Fetch-Site": fetch_site}):
        assert_refused(response, "cross-site request (Sec-Fetch-Site: ")
    # An Origin that looks right does not outweigh the browser's own verdict.
    for response in writes(
        shared_site, **{"Sec-Fetch-Site": fetch_site, "Origin": own_origin(shared_site)}
    ):
        assert_refused(response, "Sec-Fetch-Site")
    assert snapshot(shared_site.url) == before


def test_dav_client_without_origin_still_works(site: Site) -> None:
    alice = site.alice
    statuses = [response.status_code for response in writes(site)]
    assert statuses == [201, 201, 200, 207, 201, 201, 200, 200]
    assert alice.request("GET", BOOK + "moved.vcf").status_code == 200
    # Reading is never refused, whatever the headers say.
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert alice.request("PROPFIND", "/alice/", Depth="1", **evil).status_code == 207
    assert alice.request("OPTIONS", "/", **evil).status_code == 200
    assert alice.request("GET", BOOK + "moved.vcf", **evil).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "{own}"},
        {"Origin": "{own}", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_same_origin_browser_requests_work(site: Site, headers: dict[str, str]) -> None:
    marks = {name: value.format(own=own_origin(site)) for name, value in headers.items()}
    alice = site.alice
    assert alice.put(BOOK + "b.vcf", factories.vcard(name="Bea"), **marks).status_code == 201
    assert alice.request("DELETE", BOOK + "b.vcf", **marks).status_code == 200
    deleted = site.post_sharing(
        "delete", {"PathOrToken": site.token}, **{"Content-Type": "application/json"}, **marks
    )
    assert deleted.status_code == 200, deleted.text


def test_html_has_anti_framing_and_nosniff(shared_site: Site) -> None:
    page = requests.get(shared_site.server.url + "/.web/", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    others = [
        shared_site.alice.request("PROPFIND", "/alice/", Depth="1"),
        shared_site.alice.request("GET", CARD),
        requests.get(shared_site.server.url + CARD, timeout=30),  # 401
        shared_site.alice.request("GET", BOOK + "missing.vcf"),
        shared_site.alice.request("PROPFIND", "/alice/", Depth="bogus"),  # 400 of the limits layer
        shared_site.alice.request("DELETE", CARD, Origin="https://evil.example"),  # 403 of this one
        requests.get(shared_site.server.url + "/.web/css/main.css", timeout=30),
    ]
    assert [r.status_code for r in others] == [207, 200, 401, 404, 400, 403, 200]
    for response in others:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("mode", ["default", "debug", "workers"])
def test_token_never_logged(migrated_db_url: str, tmp_path: Path, mode: str) -> None:
    args = {
        "default": [],
        "debug": loud(migrated_db_url, tmp_path),
        "workers": [*loud(migrated_db_url, tmp_path), "--workers", "2"],
    }[mode]
    with running(migrated_db_url, tmp_path, args) as site:
        secret = site.token.removeprefix("/.token/v1/").strip("/")
        link = site.server.url + site.token
        writable = shares.add_token_share(site.url, BOOK, "rw")
        card = factories.vcard(name="Via Link")
        put = requests.put(
            site.server.url + writable + "via-link.vcf",
            data=card.encode(),
            headers={"Content-Type": "text/vcard"},
            timeout=30,
        )
        assert put.status_code == 201, put.text
        assert requests.get(link, timeout=30).status_code == 200
        assert requests.get(link + "ada.vcf", timeout=30).status_code == 200
        requests.request("PROPFIND", link, headers={"Depth": "1"}, timeout=30)
        requests.get(f"{site.server.url}/.web/?link={link}", headers={"Referer": link}, timeout=30)
        # Refused by the HTTP server itself, before the application: logged with the path too.
        refused = rawhttp.exchange(
            site.server.port,
            rawhttp.head("PUT", site.token + "x.vcf", {"Content-Length": "many"}),
        )
        assert refused[0] == 400, refused
        json_type = {"Content-Type": "application/json"}
        site.post_sharing("update", {"PathOrToken": site.token, "Permissions": "r"}, **json_type)
        site.post_sharing("disable", {"PathOrToken": site.token}, **json_type)
        deleted = site.post_sharing("delete", {"PathOrToken": site.token}, **json_type)
        assert deleted.status_code == 200, deleted.text
        site.server.stop()
        log = site.server.log()
        assert "/.token/v1/[REDACTED]/" in log  # the requests were logged...
        assert secret not in log  # ...without the token
        assert "Refused PUT request for '/.token/v1/[REDACTED]/x.vcf'" in log
        events = audit_log.events(site.url)
        assert {"share.add", "share.revoke", "item.create"} <= {event.action for event in events}
        for hidden in (secret, writable.removeprefix("/.token/v1/").strip("/")):
            assert hidden not in log
            assert hidden not in repr(events)


def test_authorization_never_logged_with_debug(migrated_db_url: str, tmp_path: Path) -> None:
    with running(migrated_db_url, tmp_path, loud(migrated_db_url, tmp_path)) as site:
        _, app_secret = app_passwords.add(site.url, "alice", "phone")
        phone = Dav(site.server.url, "alice", app_secret)
        assert phone.request("PROPFIND", "/alice/", Depth="1").status_code == 207
        assert site.alice.put(BOOK + "b.vcf", factories.vcard(name="Bea")).status_code == 201
        wrong = Dav(site.server.url, "alice", "wrong horse")
        assert wrong.request("PROPFIND", "/alice/", Depth="0").status_code == 401
        bearer = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"
        requests.get(
            site.server.url + "/", headers={"Authorization": "Bearer " + bearer}, timeout=30
        )
        site.server.stop()
        log = site.server.log()
    assert "HTTP_AUTHORIZATION" in log  # the headers were dumped...
    assert "[REDACTED]" in log  # ...with the credentials taken out
    encoded = [
        base64.b64encode(f"alice:{password}".encode()).decode()
        for password in (PASSWORD, "wrong horse", app_secret)
    ]
    for secret in [*encoded, PASSWORD, "wrong horse", app_secret, bearer]:
        assert secret not in log


def raw_answer(port: int, data: bytes) -> bytes:
    """Whatever the server sends back to ``data`` (it may not even be HTTP/1.x)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        while piece := sock.recv(65536):
            answer += piece
    return answer


def _exposed(headers: Mapping[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


VERSIONS = (
    platform.python_version(),
    radicale.VERSION,
    gunicorn.__version__,
    "Python",
    "WSGIServer",
    "gunicorn",
)


@pytest.mark.parametrize("mode", ["single", "workers"])
def test_server_header_has_no_version(migrated_db_url: str, tmp_path: Path, mode: str) -> None:
    args = ["--workers", "2"] if mode == "workers" else None
    with running(migrated_db_url, tmp_path, args) as site:
        url = site.server.url
        answers = [
            requests.options(url + "/", timeout=30),
            requests.get(url + "/.web/", timeout=30),
            site.alice.request("PROPFIND", "/alice/", Depth="1"),
            requests.get(url + CARD, timeout=30),  # 401
            site.alice.request("GET", BOOK + "missing.vcf"),
            site.alice.request("DELETE", CARD, Origin="https://evil.example"),
            site.alice.request("PROPFIND", "/alice/", Depth="bogus"),
        ]
        raw = [
            raw_answer(site.server.port, b"BOGUS\r\n\r\n"),
            raw_answer(site.server.port, b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n"),
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 207, 401, 404, 403, 400]
    for answer in answers:
        assert answer.headers["Server"] == "dav_cms", _exposed(answer.headers)
    exposed = [_exposed(answer.headers) for answer in answers]
    exposed += [answer.text for answer in answers if answer.status_code >= 400]
    exposed += [answer.decode("latin-1") for answer in raw]
    for text_shown in exposed:
        for word in VERSIONS:
            assert word not in text_shown, text_shown[:500]
    for answer in raw:
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        assert [line for line in head if line.lower().startswith("server:")] in (
            [],
            ["Server: dav_cms"],
        ), head


PROXY = """[auth]
trusted_proxies = 127.0.0.1

[headers]
Access-Control-Allow-Origin = https://client.example
"""


@pytest.mark.parametrize("trusted", [True, False])
def test_origin_behind_proxy_and_cors_origin(
    migrated_db_url: str, tmp_path: Path, trusted: bool
) -> None:
    config = tmp_path / "proxy.ini"
    config.write_text(PROXY if trusted else PROXY.replace("127.0.0.1", "192.0.2.1"))
    with running(migrated_db_url, tmp_path, ["--config", str(config)]) as site:
        before = snapshot(site.url)
        public = {
            "Origin": "https://dav.example.org",
            "X-Forwarded-Host": "dav.example.org",
            "X-Forwarded-Proto": "https",
        }
        put = site.alice.put(BOOK + "p.vcf", factories.vcard(name="Pia"), **public)
        if trusted:  # the public origin is the server's own
            assert put.status_code == 201, put.text
        else:  # forwarded headers from anyone but a trusted proxy mean nothing
            assert_refused(put, "cross-site request (Origin: https://dav.example.org)")
            assert snapshot(site.url) == before
        # Forwarded headers never make a foreign origin the server's own.
        forged = {**public, "Origin": "https://evil.example"}
        assert_refused(site.alice.request("DELETE", CARD, **forged), "Origin")
        # An origin the administrator opened with CORS may write, even cross-site.
        cors = {"Origin": "https://client.example", "Sec-Fetch-Site": "cross-site"}
        assert site.alice.put(BOOK + "c.vcf", factories.vcard(name="Cy"), **cors).status_code == 201


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("GET /.token/v1/" + "a" * 43 + "Z/x.ics", "GET /.token/v1/[REDACTED]/x.ics"),
        ("'/.token/v2/short/'", "'/.token/v2/[REDACTED]/'"),
        ("%2F.token%2Fv1%2F" + "b" * 44, "%2F.token%2Fv1%2F[REDACTED]"),
        ("token v1/" + "c" * 44 + " revoked", "token v1/[REDACTED] revoked"),
        (
            "{'HTTP_AUTHORIZATION': 'Basic '\n   'YWxpY2U6c2VjcmV0',",
            "{'HTTP_AUTHORIZATION': '[REDACTED]',",
        ),
        (
            "[('Authorization', 'Bearer x.y.z'), ('A', 'b')]",
            "[('Authorization', '[REDACTED]'), ('A', 'b')]",
        ),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Proxy-Authorization: [REDACTED]"),
        ("'HTTP_COOKIE': 'session=abc'", "'HTTP_COOKIE': '[REDACTED]'"),
        ("password=hunter2&user=a", "password=[REDACTED]&user=a"),
        ('{"new_password": "hunter 2"}', '{"new_password": [REDACTED]}'),
        ("secret: s3cr3t", "secret: [REDACTED]"),
        ("login with abcd-efgh-ijkm-npqr-stuv-wxyz", "login with [REDACTED]"),
        ("postgresql://dav:pw@db/dav", "postgresql://dav:[REDACTED]@db/dav"),
        ("malformed Basic Authorization header", "malformed Basic Authorization header"),
        (
            "Failed login attempt: 'alice' (password wrong)",
            "Failed login attempt: 'alice' (password wrong)",
        ),
    ],
)
def test_redaction_rules(logged: str, shown: str) -> None:
    assert redact.redact(logged) == shown


def test_redacting_filter_covers_arguments_and_tracebacks() -> None:
    token = "/.token/v1/" + "d" * 44 + "/"
    try:
        raise ValueError(f"no such share {token}")
    except ValueError:
        record = logging.LogRecord(
            "radicale", logging.ERROR, __file__, 1, "GET %s: %s", (token, "x"), sys.exc_info()
        )
    assert redact.FILTER.filter(record)
    text = logging.Formatter().format(record)
    assert "d" * 44 not in text
    assert text.count("/.token/v1/[REDACTED]/") == 2
