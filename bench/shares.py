"""Group shares in the benchmark's dav_cms database (``bench/run.py --group-shares N``).

Each is a map share of another user's address book to a group, stored under
the ``/{user}/NAME/`` placeholder as ``dav-cms share add --group`` stores it.
None of them maps a path of the benchmark's user: they only have to be present,
as in a company's database, for every request's share look-up to meet them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from dav_cms import shares
from dav_cms.db.session import get_engine


def add_group_shares(database_url: str, count: int) -> None:
    """Store ``count`` group shares (owners ``owner-N``, groups ``team-N``)."""
    engine = get_engine(database_url)
    with Session(engine) as session, session.begin():
        for number in range(count):
            shares.add_record(
                session,
                {
                    "ShareType": "map",
                    "PathOrToken": f"/{{user}}/owner-{number}-book/",
                    "PathMapped": f"/owner-{number}/book/",
                    "Conversion": "",
                    "Owner": f"owner-{number}",
                    "User": f":team-{number}",
                    "Permissions": "epur",
                    "EnabledByOwner": True,
                    "EnabledByUser": True,
                    "HiddenByOwner": False,
                    "HiddenByUser": False,
                    "TimestampCreated": 0,
                    "TimestampUpdated": 0,
                    "Properties": {},
                    "Actions": {},
                },
            )
