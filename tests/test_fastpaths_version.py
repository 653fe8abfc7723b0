"""The fast paths turn themselves off, with one warning, on an untested Radicale release."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import radicale
from radicale.app import Application

from dav_cms import radicale_config
from dav_cms.db import migrate
from dav_cms.web import fastpaths, item_reads, listing, make_application
from dav_cms.web.types import Environ, StartResponse, WSGIApp


def _sentinel(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The application the layers would wrap."""
    start_response("204 No Content", [])
    return []


def _wrapped(configuration: Any) -> tuple[WSGIApp, WSGIApp]:
    """What the listing and item-read layers make of :func:`_sentinel` under ``configuration``."""
    application = Application(configuration)
    return (
        listing.wrap(_sentinel, configuration),
        item_reads.wrap(_sentinel, application, configuration),
    )


def _configuration(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'dav_cms.sqlite3'}"
    migrate.upgrade(url)
    configuration, _ = radicale_config.build(
        database_url=url,
        overrides={"server": {"stream_listings": "True", "direct_item_reads": "True"}},
    )
    return configuration


def test_tested_series_only() -> None:
    assert fastpaths.allowed(radicale.VERSION)
    assert fastpaths.allowed("3.9.99")
    assert not fastpaths.allowed("3.10.0")
    assert not fastpaths.allowed("4.0.0")


def test_untested_release_builds_no_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    configuration = _configuration(tmp_path)
    streamed, direct = _wrapped(configuration)
    assert isinstance(streamed, listing.Listing)
    assert isinstance(direct, item_reads.ItemReads)
    monkeypatch.setattr(radicale, "VERSION", "3.10.0")
    fastpaths._warn.cache_clear()
    with caplog.at_level(logging.WARNING, logger="dav_cms.web.fastpaths"):
        assert _wrapped(configuration) == (_sentinel, _sentinel)
        assert _wrapped(configuration) == (_sentinel, _sentinel)
        make_application(configuration)
    warnings = [record for record in caplog.records if "fast paths" in record.getMessage()]
    assert len(warnings) == 1
    assert "Radicale 3.10.0" in warnings[0].getMessage()
