"""Types for what dav_cms uses of Radicale's and the WSGI servers' loosely typed objects.

Radicale's configuration returns each option as whatever its schema's parser
made of it, and its schemas are plain dicts; the vobject components of its
items are untyped; a WSGI server hands the application a ``start_response``
whose ``write`` callable and ``exc_info`` no annotation names; waitress's
buffers are untyped. The Protocols and aliases here describe exactly the parts
dav_cms uses, so that mypy checks every use.

This module imports nothing of Radicale: any module of dav_cms may use it. A
module that may import Radicale and hands the object on to Radicale's own
functions uses Radicale's class instead (``radicale.config.Configuration``,
``radicale.app.Application``), which satisfies the Protocol here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

__all__ = [
    "BodyBuffer",
    "ConfigSchema",
    "Configuration",
    "ExcInfo",
    "OptionSchema",
    "OptionText",
    "SectionSchema",
    "StartResponse",
    "VComponent",
    "VContentLine",
    "Write",
]

# -- Radicale's configuration schemas --------------------------------------------------

OptionSchema: TypeAlias = Mapping[str, Any]
"""One option of a schema: ``value`` (its default, as text), ``help``, ``type`` (its parser)."""
SectionSchema: TypeAlias = Mapping[str, OptionSchema]
"""The options of one section of a schema, by name."""
ConfigSchema: TypeAlias = Mapping[str, SectionSchema]
"""A whole schema (``radicale.config.DEFAULT_CONFIG_SCHEMA`` and its extensions), by section."""
OptionText: TypeAlias = str | int | float
"""What an option's parser is given: the text of a file, or a value set in code."""


class Configuration(Protocol):
    """What dav_cms reads of ``radicale.config.Configuration``."""

    def get(self, section: str, option: str) -> Any:  # noqa: ANN401 - typed by the schema's parser
        """The value of ``option`` as its parser made it (KeyError when the schema lacks it)."""

    def options(self, section: str) -> list[str]:
        """The options set in ``section`` (KeyError for a section the schema lacks)."""


# -- Radicale's items (vobject) --------------------------------------------------------


class VContentLine(Protocol):
    """A vobject content line: one property of a card or event."""

    value: object


class VComponent(Protocol):
    """A vobject component, as ``radicale.item.read_components`` gives them.

    vobject is untyped and makes each child an attribute by its lower-case
    name (``card.fn``, ``card.n``); :meth:`__getattr__` stands for those.
    """

    @property
    def name(self) -> str:
        """The component's name (``VCALENDAR``, ``VEVENT``, ``VCARD``...)."""

    @property
    def contents(self) -> dict[str, list[Any]]:
        """The children, by lower-case name, in the order written."""

    def components(self) -> Iterator[VComponent]:
        """The child components (``VEVENT``, ``VTIMEZONE``...), without the properties."""

    def add(self, name: str) -> VContentLine:
        """A new child called ``name``."""

    def remove(self, child: object) -> None:
        """Take ``child`` out of the component."""

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - vobject's children by name
        """The first child called ``name`` (AttributeError when there is none)."""


# -- WSGI ------------------------------------------------------------------------------

ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)
"""The ``exc_info`` an application passes to ``start_response`` (``sys.exc_info()``)."""
Write: TypeAlias = Callable[[bytes], object]
"""The ``write`` callable ``start_response`` returns (PEP 3333's legacy output)."""


class StartResponse(Protocol):
    """A WSGI server's ``start_response`` (PEP 3333), or a layer's stand-in for it."""

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None, /
    ) -> Write:
        """Begin the answer with ``status`` and ``headers``."""


# -- waitress --------------------------------------------------------------------------


class BodyBuffer(Protocol):
    """The buffer waitress decodes a request body into (``waitress.buffers``)."""

    def __len__(self) -> int:
        """The bytes of body buffered so far."""
