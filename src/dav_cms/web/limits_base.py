"""What the limits layer needs everywhere: its options and the refusal its checks raise.

The body size limit is Radicale's own ``[server] max_content_length``; dav_cms
adds ``[server] max_xml_depth`` to Radicale's schema (see :func:`schema`), so
both live in the ``[server]`` section of the configuration file.
"""

from __future__ import annotations

from dataclasses import dataclass

from radicale import config as radicale_config

from dav_cms.radicale_types import ConfigSchema, Configuration, OptionSchema, SectionSchema

DEFAULT_MAX_XML_DEPTH = 64

SERVER_OPTIONS: dict[str, OptionSchema] = {
    "max_xml_depth": {
        "value": str(DEFAULT_MAX_XML_DEPTH),
        "help": "deepest element nesting accepted in an XML request body (0: no limit)",
        "type": radicale_config.positive_int,
    },
}


def schema() -> ConfigSchema:
    """Radicale's configuration schema with dav_cms's ``[server]`` options added."""
    base = radicale_config.DEFAULT_CONFIG_SCHEMA
    extended: dict[str, SectionSchema] = dict(base)
    extended["server"] = {**base["server"], **SERVER_OPTIONS}
    return extended


class RefusalError(Exception):
    """A request the layer answers itself: ``status`` and why (logged and sent as text)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Settings:
    """The limits in force (0 means no limit, as in Radicale)."""

    max_content_length: int
    max_xml_depth: int
    encoding: str

    @classmethod
    def of(cls, configuration: Configuration) -> Settings:
        """The settings of ``configuration``; defaults where its schema lacks dav_cms's options."""
        try:
            depth = int(configuration.get("server", "max_xml_depth"))
        except KeyError:
            depth = DEFAULT_MAX_XML_DEPTH
        return cls(
            max_content_length=int(configuration.get("server", "max_content_length")),
            max_xml_depth=depth,
            encoding=str(configuration.get("encoding", "request")),
        )
