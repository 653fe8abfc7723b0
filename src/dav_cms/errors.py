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
