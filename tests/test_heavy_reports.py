"""Parallel listings and reports of a big address book: bounded memory, fast single reads.

A real ``dav-cms serve`` with its default ``[server]`` options and an address
book of :data:`CARDS` cards. Eight clients at once send allprop PROPFINDs
(streamed by dav_cms) and addressbook-multiget REPORTs of every card (built by
Radicale, so capped by :mod:`dav_cms.web.heavy`), while another client GETs
single cards. Every listing must be complete or refused with 503 and
``Retry-After``; the server's peak memory may grow by no more than the
listings allowed to run at once cost; every GET must answer within a second.

The gate's own rules (first come first served, a bounded queue, a bounded
wait, light requests never waiting, threads left free) are checked on
:class:`dav_cms.web.heavy.Gate` directly with a WSGI application that blocks
until the test lets it go.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from radicale import item as radicale_item
from radicale import storage as radicale_storage

from dav_cms import accounts
from dav_cms.db.session import dispose_engines
from dav_cms.errors import ConfigurationError
from dav_cms.radicale_config import build
from dav_cms.web import heavy, listing_options
from tests import factories
from tests.servers import ServerProcess, start_server

PASSWORD = "correct horse"
CARDS = 2000
PARALLEL = 8
BOOK = "/alice/book/"
XML = {"Content-Type": "application/xml; charset=utf-8"}
ALLPROP = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
MULTIGET = (
    '<?xml version="1.0"?><C:addressbook-multiget xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/></D:prop>'
    "{hrefs}</C:addressbook-multiget>"
)
# Issue 13: a single-item GET while listings run answers within a second.
GET_BOUND_SECONDS = 1.0
GET_EVERY_SECONDS = 0.05
MAX_GETS = 2000
# Peak memory growth of the parallel round may be that of one listing per
# running slot, plus one for fragmentation, plus this much for noise.
SLACK_KIB = 8 * 1024
NOTE = "Met at the conference; " * 20


def reset_peak(server: ServerProcess) -> int:
    """Start the server's peak memory (VmHWM) afresh from now; its resident memory, in KiB."""
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")
    return vm_kib(server, "VmRSS")


def vm_kib(server: ServerProcess, name: str) -> int:
    """``VmRSS``/``VmHWM`` of the server process, in KiB."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    msg = f"no {name} for the server process"
    raise AssertionError(msg)


def load_book(url: str, count: int) -> list[str]:
    """``/alice/book/`` with ``count`` cards, written through the storage in one go."""
    configuration = factories.radicale_configuration(url)
    storage = radicale_storage.load(configuration)
    items = []
    for number in range(count):
        text = factories.vcard(
            uid=f"card-{number}", name=f"Ada Number{number}", email=f"ada{number}@example.org"
        ).replace("END:VCARD", f"NOTE:{NOTE}{number}\r\nEND:VCARD")
        (component,) = radicale_item.read_components(text)
        item = radicale_item.Item(collection_path="alice/book", vobject_item=component)
        item.prepare()
        items.append(item)
    with storage.acquire_lock("w", "alice"):
        storage.create_collection("/alice/")
        storage.create_collection(BOOK, items=items, props={"tag": "VADDRESSBOOK"})
    dispose_engines()
    return [f"{BOOK}card-{number}.vcf" for number in range(count)]


@pytest.fixture
def big_book(migrated_db_url: str) -> tuple[str, list[str]]:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    return migrated_db_url, load_book(migrated_db_url, CARDS)


# -- requests ------------------------------------------------------------------------


@dataclass
class Listing:
    method: str
    body: str
    depth: str | None
    responses: int  # <response> elements of a complete answer


def listings(hrefs: list[str]) -> list[Listing]:
    refs = "".join(f"<D:href>{href}</D:href>" for href in hrefs)
    allprop = Listing("PROPFIND", ALLPROP, "1", len(hrefs) + 1)
    multiget = Listing("REPORT", MULTIGET.format(hrefs=refs), None, len(hrefs))
    return [allprop, multiget]


def send(server: ServerProcess, listing: Listing) -> requests.Response:
    headers = {**XML, **({"Depth": listing.depth} if listing.depth else {})}
    with requests.Session() as session:
        return session.request(
            listing.method,
            server.url + BOOK,
            data=listing.body.encode(),
            auth=("alice", PASSWORD),
            headers=headers,
            timeout=120,
        )


def verdict(response: requests.Response, listing: Listing) -> str:
    """ "complete", "refused", or what was wrong with the answer."""
    if response.status_code == 207:
        found = response.content.count(b"<response>")
        return "complete" if found == listing.responses else f"207 with {found} responses"
    if response.status_code == 503:
        retry = response.headers.get("Retry-After", "")
        return "refused" if retry.isdigit() and int(retry) >= 1 else "503 without Retry-After"
    return f"HTTP {response.status_code}"


@dataclass
class Round:
    verdicts: list[str] = field(default_factory=list)
    retry_after: list[str] = field(default_factory=list)
    get_seconds: list[float] = field(default_factory=list)
    get_statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def parallel_round(server: ServerProcess, kinds: list[Listing], hrefs: list[str]) -> Round:
    """``PARALLEL`` listings at once (kinds in turn) and single GETs until they are done."""
    seen = Round()
    done = threading.Event()

    def lister(listing: Listing) -> None:
        retry = None
        try:
            response = send(server, listing)
            answer = verdict(response, listing)
            retry = response.headers.get("Retry-After")
        except (requests.RequestException, http.client.HTTPException) as exc:
            answer = f"error: {type(exc).__name__}"
        with seen.lock:
            seen.verdicts.append(answer)
            if retry is not None:
                seen.retry_after.append(retry)

    def getter() -> None:
        with requests.Session() as session:
            for number in range(MAX_GETS):
                started = time.monotonic()
                response = session.get(
                    server.url + hrefs[number % len(hrefs)],
                    auth=("alice", PASSWORD),
                    timeout=30,
                )
                seen.get_seconds.append(time.monotonic() - started)
                seen.get_statuses.append(response.status_code)
                if done.wait(GET_EVERY_SECONDS):
                    return

    workers = [
        threading.Thread(target=lister, args=(kinds[number % len(kinds)],))
        for number in range(PARALLEL)
    ]
    for worker in workers:
        worker.start()
    reader = threading.Thread(target=getter)
    reader.start()
    for worker in workers:
        worker.join(300)
    done.set()
    reader.join(60)
    return seen


# -- on a real server ------------------------------------------------------------------


def warm_up(server: ServerProcess, hrefs: list[str]) -> None:
    """One GET and one listing: the login checked (and remembered), every code path loaded."""
    assert requests.get(server.url + hrefs[0], auth=("alice", PASSWORD), timeout=30).ok
    refs = "".join(f"<D:href>{href}</D:href>" for href in hrefs[:10])
    for small in (
        Listing("PROPFIND", ALLPROP, "0", 1),
        Listing("REPORT", MULTIGET.format(hrefs=refs), None, 10),
    ):
        assert verdict(send(server, small), small) == "complete"


def test_parallel_listings_bounded_memory_and_fast_get(
    big_book: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, hrefs = big_book
    server = start_server(url, tmp_path)
    try:
        kinds = listings(hrefs)
        warm_up(server, hrefs)
        single = 0
        for listing in kinds:  # each alone: what a single listing costs at most
            before = reset_peak(server)
            assert verdict(send(server, listing), listing) == "complete"
            single = max(single, vm_kib(server, "VmHWM") - before)
        before = reset_peak(server)
        seen = parallel_round(server, kinds, hrefs)
        growth = vm_kib(server, "VmHWM") - before
    finally:
        server.stop()

    # (a) every listing complete, or refused with Retry-After: never an error.
    assert len(seen.verdicts) == PARALLEL
    assert set(seen.verdicts) <= {"complete", "refused"}, seen.verdicts
    # The first ones to arrive always get a slot.
    assert seen.verdicts.count("complete") >= listing_options.DEFAULT_MAX_HEAVY_REQUESTS
    # (b) at most as much more memory as the listings allowed to run at once take.
    running = listing_options.DEFAULT_MAX_HEAVY_REQUESTS
    bound = single * (running + 1) + SLACK_KIB
    assert growth <= bound, f"peak grew {growth} KiB; one listing {single} KiB; bound {bound}"
    # (c) single GETs during the listings: all fine, each within the bound.
    assert seen.get_seconds
    assert set(seen.get_statuses) == {200}
    assert max(seen.get_seconds) < GET_BOUND_SECONDS, seen.get_seconds


def test_waiting_listings_get_503_with_retry_after(
    big_book: tuple[str, list[str]], tmp_path: Path
) -> None:
    """With one slot and no queue, parallel REPORTs beyond the first are refused at once."""
    url, hrefs = big_book
    config = tmp_path / "one-slot.ini"
    config.write_text("[server]\nmax_heavy_requests = 1\nheavy_queue = 0\nheavy_wait = 7\n")
    server = start_server(url, tmp_path, extra_args=["--config", str(config)])
    try:
        warm_up(server, hrefs)
        seen = parallel_round(server, [listings(hrefs)[1]], hrefs)
    finally:
        server.stop()
    assert set(seen.verdicts) <= {"complete", "refused"}, seen.verdicts
    assert seen.verdicts.count("complete") >= 1
    # Eight at once, one at a time and nobody waiting: the others are refused.
    assert seen.verdicts.count("refused") >= 1
    assert set(seen.retry_after) == {"7"}
    assert set(seen.get_statuses) == {200}
    assert max(seen.get_seconds) < GET_BOUND_SECONDS


def test_heavy_options_are_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    for text in ("max_heavy_requests = -1", "heavy_queue = many", "heavy_wait = -2"):
        config = tmp_path / "bad.ini"
        config.write_text(f"[server]\n{text}\n")
        with pytest.raises(ConfigurationError):
            build(str(config), database_url=url)
    config = tmp_path / "good.ini"
    config.write_text("[server]\nmax_heavy_requests = 3\nheavy_queue = 1\nheavy_wait = 2.5\n")
    configuration, _url = build(str(config), database_url=url)
    assert heavy.Limits.of(configuration) == heavy.Limits(3, 1, 2.5)


# -- the gate itself ---------------------------------------------------------------------


class Blocking:
    """A WSGI application whose heavy requests wait until the test releases them."""

    def __init__(self) -> None:
        self.inside = threading.Semaphore(0)
        self.release = threading.Event()
        self.served: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        name = str(environ["PATH_INFO"])
        if heavy.heavy(environ):
            self.inside.release()
            assert self.release.wait(30)
        with self.lock:
            self.served.append(name)
        start_response("207 Multi-Status", [("Content-Length", "0")])
        return []


def call(app: Any, method: str, path: str, depth: str | None = None, body: bytes = b"x") -> str:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    if depth is not None:
        environ["HTTP_DEPTH"] = depth
    statuses: list[str] = []
    headers: list[list[tuple[str, str]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        statuses.append(status)
        headers.append(response_headers)

    body_parts = app(environ, start_response)
    close = getattr(body_parts, "close", None)
    b"".join(body_parts)
    if close is not None:
        close()
    retry = dict(headers[0]).get("Retry-After")
    return statuses[0].split(" ", 1)[0] + (f" retry {retry}" if retry else "")


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[str]]:
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.append(target(*args)))
    thread.start()
    return thread, out


def test_gate_queue_order_refusal_and_light_requests() -> None:
    blocking = Blocking()
    gate = heavy.Gate(blocking, heavy.Limits(running=1, queue=2, wait=30))
    first, first_out = in_thread(call, gate, "REPORT", "/first")
    assert blocking.inside.acquire(timeout=30)  # the first runs
    second, second_out = in_thread(call, gate, "PROPFIND", "/second", "1")
    assert gate.wait_for(running=1, waiting=1, timeout=30)
    third, third_out = in_thread(call, gate, "PROPFIND", "/third", "infinity")
    assert gate.wait_for(running=1, waiting=2, timeout=30)
    # The queue is full: a fourth is refused at once; light requests pass.
    assert call(gate, "REPORT", "/fourth") == "503 retry 30"
    assert call(gate, "PROPFIND", "/light", "0", b"<prop><getetag/></prop>") == "207"
    assert call(gate, "GET", "/item.vcf") == "207"
    blocking.release.set()
    for thread in (first, second, third):
        thread.join(30)
    assert first_out == second_out == third_out == ["207"]
    served = [name for name in blocking.served if name not in ("/light", "/item.vcf")]
    assert served == ["/first", "/second", "/third"]  # first come, first served
    assert gate.counts() == (0, 0)


def test_gate_wait_runs_out() -> None:
    blocking = Blocking()
    gate = heavy.Gate(blocking, heavy.Limits(running=1, queue=1, wait=0.2))
    first, first_out = in_thread(call, gate, "REPORT", "/first")
    assert blocking.inside.acquire(timeout=30)
    started = time.monotonic()
    assert call(gate, "REPORT", "/second") == "503 retry 1"
    assert time.monotonic() - started >= 0.2
    # Depth-0 PROPFINDs that make Radicale write out a whole collection are heavy too.
    for body in (b"", b"<propfind><allprop/></propfind>", b"<prop><getcontentlength/></prop>"):
        assert call(gate, "PROPFIND", "/book/", "0", body) == "503 retry 1"
    blocking.release.set()
    first.join(30)
    assert first_out == ["207"]
    assert gate.counts() == (0, 0)


def test_limits_leave_a_thread_free() -> None:
    assert heavy.Limits.within(2, 4, 10, threads=8) == heavy.Limits(2, 4, 10)
    assert heavy.Limits.within(2, 4, 10, threads=4) == heavy.Limits(2, 1, 10)
    assert heavy.Limits.within(6, 4, 10, threads=4) == heavy.Limits(3, 0, 10)
    assert heavy.Limits.within(2, 4, 10, threads=1) == heavy.Limits(1, 0, 10)
