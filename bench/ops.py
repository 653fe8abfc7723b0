"""The measured operations: raw HTTP requests a CardDAV/CalDAV client sends.

Each operation does its preparation (fetching an etag, creating the item it
will delete, ...) with untimed requests and times exactly one request, from
sending it to having read the whole answer. Requests use a new loopback
connection each, as many clients do, with a timeout.
"""

from __future__ import annotations

import base64
import http.client
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from bench import data
from bench.servers import HOST, Server

AUTH = "Basic " + base64.b64encode(f"{data.USER}:bench".encode()).decode()
CONTACTS_URL = f"/{data.CONTACTS}/"
CALENDAR_URL = f"/{data.CALENDAR}/"
XML = "application/xml; charset=utf-8"

PROPFIND_ETAGS = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"""

SYNC_COLLECTION = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token>{token}</D:sync-token>
  <D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>"""

ADDRESSBOOK_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><C:address-data/></D:prop>
  <C:filter test="anyof">
    <C:prop-filter name="{prop}">
      <C:text-match collation="i;unicode-casemap" match-type="contains">{text}</C:text-match>
    </C:prop-filter>
  </C:filter>
</C:addressbook-query>"""

ADDRESSBOOK_MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><C:address-data/></D:prop>
  {hrefs}
</C:addressbook-multiget>"""

CALENDAR_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""

_RESPONSE_RE = re.compile(rb"<(?:[\w-]+:)?response>")
_TOKEN_RE = re.compile(rb"sync-token>([^<]*)</")
# Items created by the benchmark get indexes far above any data set size.
NEW_ITEM_BASE = 10_000_000


@dataclass
class Response:
    """One answer, and how long it took (request sent to body read), in seconds."""

    status: int
    body: bytes
    etag: str
    seconds: float

    @property
    def responses(self) -> int:
        """Number of ``<response>`` elements of a multistatus body."""
        return len(_RESPONSE_RE.findall(self.body))

    @property
    def sync_token(self) -> str:
        match = _TOKEN_RE.search(self.body)
        return match.group(1).decode() if match else ""


class Client:
    """Raw HTTP/1.1 requests to one server on the loopback interface."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
    ) -> Response:
        payload = body.encode("utf-8")
        all_headers = {
            "Authorization": AUTH,
            "Content-Length": str(len(payload)),
            **(headers or {}),
        }
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            started = time.perf_counter()
            connection.request(method, path, payload or None, all_headers)
            answer = connection.getresponse()
            content = answer.read()
            seconds = time.perf_counter() - started
        finally:
            connection.close()
        return Response(answer.status, content, answer.getheader("ETag") or "", seconds)

    def put(self, path: str, text: str, **headers: str) -> Response:
        kind = "text/vcard" if "BEGIN:VCARD" in text else "text/calendar"
        return self.request(
            "PUT", path, text, {"Content-Type": f"{kind}; charset=utf-8", **headers}
        )

    def report(self, path: str, body: str, depth: str = "1") -> Response:
        return self.request("REPORT", path, body, {"Content-Type": XML, "Depth": depth})


@dataclass
class Context:
    """What the operations of one server and size share."""

    client: Client
    server: Server
    size: int
    rng: random.Random
    sync_token: str = ""
    created: int = 0
    cards: list[data.Prepared] = field(default_factory=list)
    indexes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.indexes = {card.href: n for n, card in enumerate(self.cards)}

    def new_index(self) -> int:
        self.created += 1
        return NEW_ITEM_BASE + self.created

    def random_card(self) -> data.Prepared:
        return self.cards[self.rng.randrange(self.size)]


Run = Callable[[Context], Response]


@dataclass(frozen=True)
class Operation:
    """One row of the results: a request to measure."""

    name: str
    run: Run
    expect: frozenset[int]
    # "point": independent of the collection size in principle; "scan": reads
    # the collection; "restart": measured on a freshly started server.
    kind: str = "point"
    check_hits: bool = False  # the number of <response>s must agree between servers


# -- the requests -----------------------------------------------------------------


def get_card(ctx: Context) -> Response:
    return ctx.client.request("GET", CONTACTS_URL + ctx.random_card().href)


def put_new_card(ctx: Context) -> Response:
    card = data.vcard(ctx.new_index())
    return ctx.client.put(f"{CONTACTS_URL}{card.uid}.vcf", card.text, **{"If-None-Match": "*"})


def put_new_event(ctx: Context) -> Response:
    uid, text = data.event(ctx.new_index())
    return ctx.client.put(f"{CALENDAR_URL}{uid}.ics", text, **{"If-None-Match": "*"})


def _edited(ctx: Context, card: data.Prepared) -> str:
    """The same card (same UID) with another NOTE."""
    return data.vcard(ctx.indexes[card.href], note=f"Edited {ctx.rng.randrange(10**9)}").text


def put_if_match(ctx: Context) -> Response:
    card = ctx.random_card()
    path = CONTACTS_URL + card.href
    current = ctx.client.request("GET", path)
    if current.status != 200 or not current.etag:
        return current
    return ctx.client.put(path, _edited(ctx, card), **{"If-Match": current.etag})


def delete_card(ctx: Context) -> Response:
    card = data.vcard(ctx.new_index())
    path = f"{CONTACTS_URL}{card.uid}.vcf"
    created = ctx.client.put(path, card.text)
    if created.status >= 300:
        return created
    return ctx.client.request("DELETE", path)


def sync_initial(ctx: Context) -> Response:
    return ctx.client.report(CONTACTS_URL, SYNC_COLLECTION.format(token=""))


def sync_incremental(ctx: Context) -> Response:
    if not ctx.sync_token:
        ctx.sync_token = sync_initial(ctx).sync_token
    card = ctx.random_card()
    changed = ctx.client.put(CONTACTS_URL + card.href, _edited(ctx, card))
    if changed.status >= 300:
        return changed
    answer = ctx.client.report(CONTACTS_URL, SYNC_COLLECTION.format(token=ctx.sync_token))
    ctx.sync_token = answer.sync_token or ctx.sync_token
    return answer


def propfind_contacts(ctx: Context) -> Response:
    return ctx.client.request(
        "PROPFIND", CONTACTS_URL, PROPFIND_ETAGS, {"Content-Type": XML, "Depth": "1"}
    )


def email_term() -> str:
    """Local part of one card's address: matches that card and a few similar ones."""
    return data.vcard(7).email.split("@")[0]


FN_TERM = "kowalski"  # a common family name: about 2% of the cards


def query_email(ctx: Context) -> Response:
    body = ADDRESSBOOK_QUERY.format(prop="EMAIL", text=escape(email_term()))
    return ctx.client.report(CONTACTS_URL, body)


def query_fn(ctx: Context) -> Response:
    return ctx.client.report(CONTACTS_URL, ADDRESSBOOK_QUERY.format(prop="FN", text=FN_TERM))


def query_email_after_restart(ctx: Context) -> Response:
    ctx.server.restart()
    ctx.client.port = ctx.server.port
    return query_email(ctx)


def calendar_query_month(ctx: Context) -> Response:
    start, end = data.QUERY_MONTH
    return ctx.client.report(CALENDAR_URL, CALENDAR_QUERY.format(start=start, end=end))


def multiget_100(ctx: Context) -> Response:
    chosen = ctx.rng.sample(range(ctx.size), min(100, ctx.size))
    hrefs = "\n  ".join(
        f"<D:href>{escape(CONTACTS_URL + ctx.cards[n].href)}</D:href>" for n in chosen
    )
    return ctx.client.report(CONTACTS_URL, ADDRESSBOOK_MULTIGET.format(hrefs=hrefs))


OK = frozenset({200})
CREATED = frozenset({201})
CHANGED = frozenset({200, 201, 204})
MULTI = frozenset({207})

# In the order they run: reads before writes (so listings see exactly the
# loaded items), restarts last.
OPERATIONS: list[Operation] = [
    Operation("GET one card", get_card, OK),
    Operation("addressbook-multiget 100 cards", multiget_100, MULTI, check_hits=True),
    Operation(
        "PROPFIND Depth 1 getetag (contacts)", propfind_contacts, MULTI, "scan", check_hits=True
    ),
    Operation("sync-collection initial (contacts)", sync_initial, MULTI, "scan", check_hits=True),
    Operation("addressbook-query EMAIL contains", query_email, MULTI, "scan", check_hits=True),
    Operation("addressbook-query FN contains", query_fn, MULTI, "scan", check_hits=True),
    Operation(
        "calendar-query 1 month (getetag)", calendar_query_month, MULTI, "scan", check_hits=True
    ),
    Operation("PUT new card (If-None-Match)", put_new_card, CREATED),
    Operation("PUT new event (If-None-Match)", put_new_event, CREATED),
    Operation("PUT existing card (If-Match)", put_if_match, CHANGED),
    Operation("DELETE card", delete_card, CHANGED),
    Operation("sync-collection incremental (1 change)", sync_incremental, MULTI, check_hits=True),
    Operation(
        "addressbook-query EMAIL, 1st after restart",
        query_email_after_restart,
        MULTI,
        "restart",
        check_hits=True,
    ),
]


def repetitions(kind: str, size: int, base: int) -> tuple[int, int]:
    """(warm-up runs, measured runs) of an operation of ``kind`` at ``size`` items."""
    if kind == "restart":
        return 0, 3 if size <= 10_000 else 2
    if kind == "scan":
        return 1, max(5, min(base, base * 5000 // max(size, 1)))
    return 3, base if size <= 10_000 else max(5, base // 2)
