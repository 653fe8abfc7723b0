"""Login throttling against real ``dav-cms serve`` processes sharing one database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from dav_cms import accounts
from dav_cms.db.models import AuditEvent, LoginFailure
from dav_cms.db.session import get_engine
from dav_cms.web.context import client_address, parse_networks
from tests.servers import ServerProcess, start_server
from tests.throttle_clock import let_time_pass

PASSWORD = "correct horse"
# Two free failures per login, four per address; blocks of 8 s (doubling, capped at 8 s):
# long enough for the next request to land inside the block on a busy machine.
# Radicale's own failed-login delay is off so the test does not wait for it.
CONFIG = """[auth]
delay = 0
throttle_login_failures = 2
throttle_address_failures = 4
throttle_first_delay = 8
throttle_max_delay = 8
trusted_proxies = 127.0.0.1
"""
WAIT_LIMIT = 30.0


def _server(url: str, tmp_path: Path, config: str = CONFIG) -> ServerProcess:
    path = tmp_path / f"throttle-{time.monotonic_ns()}.ini"
    path.write_text(config)
    return start_server(url, tmp_path, extra_args=["--config", str(path)])


@pytest.fixture
def two_servers(migrated_db_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ...]]:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    first = _server(migrated_db_url, tmp_path)
    try:
        second = _server(migrated_db_url, tmp_path)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def _get(
    server: ServerProcess, login: str, password: str, client: str | None = None
) -> requests.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    with requests.Session() as session:
        return session.request(
            "PROPFIND",
            f"{server.url}/{login}/",
            auth=(login, password),
            headers={"Depth": "0", **headers},
            timeout=30,
        )


def _wait_until_accepted(server: ServerProcess, login: str, client: str | None = None) -> list[int]:
    """Statuses of the correct password, retried until accepted (bounded).

    After each refusal the throttle's clock moves on by the Retry-After it gave.
    """
    statuses: list[int] = []
    deadline = time.monotonic() + WAIT_LIMIT
    for _ in range(200):
        response = _get(server, login, PASSWORD, client)
        statuses.append(response.status_code)
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        let_time_pass(server.database_url, int(response.headers["Retry-After"]))
    return statuses


def test_failures_on_one_process_block_on_the_other(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    assert _get(first, "alice", PASSWORD).status_code == 207
    assert _get(first, "alice", "wrong").status_code == 401
    assert _get(second, "alice", "wrong").status_code == 401
    assert _get(first, "alice", "wrong").status_code == 401  # third: blocks the login

    blocked = _get(second, "alice", PASSWORD)  # the right password, unchecked
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 8
    assert "WWW-Authenticate" not in blocked.headers
    assert "Too many failed logins" in blocked.text

    statuses = _wait_until_accepted(first, "alice")
    assert statuses[-1] == 207, statuses
    # Success forgot the login's failures: one more wrong password is free again.
    assert _get(second, "alice", "wrong").status_code == 401
    assert _get(second, "alice", PASSWORD).status_code == 207

    with Session(get_engine(first.database_url)) as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions.count("login.failure") == 4
    assert "login.throttled" in actions


def test_per_address_block_spares_other_addresses(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    attacker, office = "203.0.113.7", "198.51.100.20"
    for number in range(5):  # five different logins: only the address counts them all
        assert _get(first, f"ghost{number}", "guess", attacker).status_code == 401
    assert _get(second, "alice", PASSWORD, attacker).status_code == 429
    assert _get(second, "alice", PASSWORD, office).status_code == 207

    with Session(get_engine(first.database_url)) as session:
        rows = {(row.scope, row.key): row.failures for row in session.scalars(select(LoginFailure))}
    assert rows[("address", attacker)] == 5
    assert ("address", office) not in rows
    assert rows[("login", "ghost0")] == 1

    statuses = _wait_until_accepted(first, "alice", attacker)
    assert statuses[-1] == 207, statuses


def test_unknown_user_and_wrong_password_look_the_same(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    unknown = _get(first, "nobody", "wrong", "192.0.2.1")
    wrong = _get(first, "alice", "wrong", "192.0.2.2")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content

    def comparable(response: requests.Response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k.lower() != "date"}

    assert comparable(unknown) == comparable(wrong)

    # Both count alike: two more failures each and the next attempt of that login
    # from that address is refused unchecked (the login is blocked at its address only).
    for _ in range(2):
        assert _get(second, "nobody", "wrong", "192.0.2.1").status_code == 401
        assert _get(second, "alice", "wrong", "192.0.2.2").status_code == 401
    blocked_unknown = _get(first, "nobody", "wrong", "192.0.2.1")
    blocked_known = _get(first, "alice", PASSWORD, "192.0.2.2")
    assert blocked_unknown.status_code == blocked_known.status_code == 429
    assert blocked_unknown.headers.keys() == blocked_known.headers.keys()


def test_throttling_can_be_turned_off(migrated_db_url: str, tmp_path: Path) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    server = _server(migrated_db_url, tmp_path, CONFIG + "throttle = False\n")
    try:
        for _ in range(6):
            assert _get(server, "alice", "wrong").status_code == 401
        assert _get(server, "alice", PASSWORD).status_code == 207
    finally:
        server.stop()
    with Session(get_engine(migrated_db_url)) as session:
        assert session.scalars(select(LoginFailure)).first() is None


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    migrated_db_url: str, tmp_path: Path
) -> None:
    accounts.add_user(migrated_db_url, "alice", PASSWORD)
    server = _server(migrated_db_url, tmp_path, "[auth]\ndelay = 0\n")
    try:
        assert _get(server, "alice", "wrong", "203.0.113.9").status_code == 401
    finally:
        server.stop()
    with Session(get_engine(migrated_db_url)) as session:
        keys = {(row.scope, row.key) for row in session.scalars(select(LoginFailure))}
        addresses = set(
            session.scalars(
                select(AuditEvent.address).where(AuditEvent.action.startswith("login."))
            )
        )
    assert keys == {("login", "alice"), ("address", "127.0.0.1"), ("pair", "127.0.0.1 alice")}
    assert addresses == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REMOTE_ADDR": "127.0.0.1"}, "127.0.0.1"),
        ({"REMOTE_ADDR": "192.0.2.50", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, "192.0.2.50"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, "203.0.113.1"),
        (
            {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.1, 10.1.2.3"},
            "203.0.113.1",
        ),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "junk"}, "127.0.0.1"),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "2001:db8::7"}, "2001:db8::7"),
        ({"REMOTE_ADDR": "::ffff:127.0.0.1", "HTTP_X_REAL_IP": "198.51.100.2"}, "198.51.100.2"),
    ],
)
def test_client_address_believes_only_trusted_proxies(
    environ: dict[str, str], expected: str
) -> None:
    proxies = parse_networks("127.0.0.1, 10.0.0.0/8")
    assert client_address(environ, proxies) == expected


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.example\.org' is not an IP address"):
        parse_networks("127.0.0.1 proxy.example.org")
