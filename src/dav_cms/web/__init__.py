"""The WSGI application dav_cms serves: Radicale's, wrapped in dav_cms's layers.

Outermost first: :mod:`~dav_cms.web.crosssite` (cross-site requests from
browsers refused before anything is read; security headers on every response),
:mod:`~dav_cms.web.context` (who and from where, for the audit log and login
throttling), :mod:`~dav_cms.web.outage` (database unreachable or
busy -> 503, full -> 507), :mod:`~dav_cms.web.limits` (hostile or broken requests refused before
Radicale parses them), :mod:`~dav_cms.web.item_reads` (GET and HEAD of a user's
own item answered from its row; ``[server] direct_item_reads``),
:mod:`~dav_cms.web.heavy` (at most a few listings and reports at once, streamed
or not, the rest wait briefly or get 503; ``[server] max_heavy_requests``),
:mod:`~dav_cms.web.listing` (PROPFIND Depth 1, allprop too, and
initial sync-collection listings streamed; ``[server] stream_listings``),
:mod:`~dav_cms.web.reads` (the look-ups of a reading request share one
transaction). Each layer is a plain WSGI middleware in its own module.

Building the application also caps the process's malloc arenas
(:mod:`~dav_cms.web.arenas`), before the server starts its threads.
"""

from __future__ import annotations

from radicale.app import Application
from radicale.config import Configuration

from dav_cms.web import (
    arenas,
    context,
    crosssite,
    heavy,
    item_reads,
    limits,
    listing,
    outage,
    reads,
)
from dav_cms.web.types import WSGIApp

__all__ = ["WSGIApp", "make_application"]


def make_application(configuration: Configuration) -> WSGIApp:
    """Radicale's application for ``configuration`` with every dav_cms layer around it."""
    arenas.limit_arenas()
    radicale = Application(configuration)
    app: WSGIApp = reads.wrap(radicale, configuration)
    app = listing.wrap(app, configuration)
    app = heavy.wrap(app, configuration)
    app = item_reads.wrap(app, radicale, configuration)
    app = limits.wrap(app, configuration)
    app = outage.wrap(app, configuration)
    app = context.wrap(app, configuration)
    return crosssite.wrap(app, configuration)
