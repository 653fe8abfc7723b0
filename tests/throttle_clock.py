"""Let time pass for login throttling without waiting: its clock is in the database.

Every decision of :mod:`dav_cms.throttle` compares the stored epoch times of
failures and blocks with the present. Moving all of them back by N seconds is,
for every server process reading them, exactly what N seconds of waiting
would have been; the servers keep their real clocks.
"""

from __future__ import annotations

from sqlalchemy import case, update

from dav_cms.db.models import LoginFailure
from dav_cms.db.session import get_engine


def let_time_pass(database_url: str, seconds: int) -> None:
    """Age every stored failure and block by ``seconds`` (0 stays 0: no block)."""
    shift = seconds * 1000
    with get_engine(database_url).begin() as connection:
        connection.execute(
            update(LoginFailure).values(
                last_failure_at=LoginFailure.last_failure_at - shift,
                blocked_until=case(
                    (LoginFailure.blocked_until > 0, LoginFailure.blocked_until - shift), else_=0
                ),
            )
        )
