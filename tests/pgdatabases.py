"""PostgreSQL databases for tests: created on demand, dropped behind the tests in batches.

``CREATE DATABASE`` (a copy of a template) takes a few hundredths of a second;
``DROP DATABASE`` waits for a checkpoint of the whole server, often a second or
more while tests write. Drops asked for at about the same time share one
checkpoint, so the databases tests are done with are dropped (``WITH (FORCE)``)
several at once, by a background thread, while the next tests run. Every test
still gets a new database that nothing else has used.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, text

DROP_BATCH = 8  # databases dropped together (one checkpoint for all)


class Databases:
    """Creates and drops the databases of one test process on one PostgreSQL server."""

    def __init__(self, admin: Engine) -> None:
        self._admin = admin
        self._waiting: list[str] = []
        self._changed = threading.Condition()
        self._closing = False
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._drop_batches, daemon=True)
        self._thread.start()

    def create(self, template: str | None = None) -> str:
        """The name of a new database, a copy of ``template`` (else of ``template1``)."""
        name = f"dav_cms_test_{uuid.uuid4().hex[:12]}"
        copy_of = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
        return name

    def drop(self, name: str) -> None:
        """Drop ``name`` now (its connections, if any, are ended)."""
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_later(self, name: str) -> None:
        """Drop ``name`` in the background, with the next batch."""
        with self._changed:
            self._waiting.append(name)
            self._changed.notify_all()

    def _drop_batches(self) -> None:
        with ThreadPoolExecutor(DROP_BATCH, thread_name_prefix="drop-database") as pool:
            while True:
                with self._changed:
                    self._changed.wait_for(
                        lambda: len(self._waiting) >= DROP_BATCH or self._closing
                    )
                    batch, self._waiting = self._waiting, []
                    closing = self._closing
                for future in [pool.submit(self.drop, name) for name in batch]:
                    error = future.exception()
                    if error is not None:
                        self.errors.append(error)
                if closing:
                    return

    def close(self) -> None:
        """Drop every database still waiting, then stop."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        self._admin.dispose()
