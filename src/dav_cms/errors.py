"""Errors dav_cms raises; the storage-facing ones are Radicale's ValueErrors."""

from __future__ import annotations


class DavCmsError(Exception):
    """Base class of dav_cms's own errors."""


class ConfigurationError(DavCmsError):
    """The configuration (database URL, options) is wrong; the message says how."""


class SchemaError(DavCmsError):
    """The database schema is missing or outdated; the message names the command to run."""


class NotFoundError(DavCmsError):
    """A user, collection or other named record does not exist."""


class ConflictError(DavCmsError):
    """A record with that name already exists."""


class ImportStoppedError(DavCmsError):
    """An import stopped part-way; the message says what was committed and how to continue.

    Attributes:
        kind: ``"busy"``, ``"full"`` (see :mod:`dav_cms.db.failures`) or None.
        counts: What the committed batches did (:class:`dav_cms.transfer_batches.Counts`).
    """

    def __init__(self, message: str, *, kind: str | None = None, counts: object = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.counts = counts
