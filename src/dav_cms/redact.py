"""Secrets out of the logs: share-link tokens, credentials, passwords.

A share link's token is the whole credential for anonymous access, yet Radicale
logs the path of every request ("GET request for '/.token/v1/...'"), and with
``[logging] request_header_on_debug`` / ``request_content_on_debug`` whole
request headers and bodies. :class:`RedactingFilter`, installed on the log
handlers by :func:`install` (``dav-cms serve``, each gunicorn worker and
gunicorn's own loggers), rewrites every record before it is written:

- ``/.token/v1/<secret>/`` -> ``/.token/v1/[REDACTED]/`` (any version, any
  length, also percent-encoded), and a bare ``v1/<44 characters>`` token;
- the value of an ``Authorization``, ``Proxy-Authorization`` or ``Cookie``
  header, as a header line or in a dumped WSGI environ
  (``'HTTP_AUTHORIZATION': ...``, also when pprint split it over lines);
- ``password=...``, ``"password": "..."`` and the like (``passwd``, ``secret``);
- an app password's secret (:data:`dav_cms.app_passwords.SECRET_RE`);
- the password in a URL's ``user:password@``.

The message is formatted first (so arguments are covered), then redacted; a
record's traceback and stack text are redacted too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from radicale.sharing import TOKEN_PATTERN_V1

from dav_cms.app_passwords import SECRET_RE

__all__ = ["MARK", "RedactingFilter", "install", "redact"]

MARK = "[REDACTED]"

_SLASH = "(?:/|%2[Ff])"
_STRING = r"""(?:b?'(?:[^'\\\n]|\\.)*'|b?"(?:[^"\\\n]|\\.)*")"""
_STRINGS = _STRING + r"(?:\s*" + _STRING + ")*"  # Python's implicit concatenation
_HEADER_NAMES = r"(?:HTTP_)?(?:PROXY[_-]|SET[_-])?(?:AUTHORIZATION|COOKIE)"

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # /.token/<version>/<secret>: whatever the secret's length or form.
    (re.compile(r"(\.token" + _SLASH + r"v\d+" + _SLASH + r")[^/\s'\"?#&%]+"), r"\1" + MARK),
    # A bare token in Radicale's v1 format.
    (
        re.compile(r"(?<![A-Za-z0-9_\-])" + TOKEN_PATTERN_V1.replace("/", _SLASH, 1)),
        "v1/" + MARK,
    ),
    # 'HTTP_AUTHORIZATION': 'Basic ...' in a dumped environ (pprint may split the
    # string: 'Basic '\n 'abc...'), or ('Authorization', '...') in a header list.
    (
        re.compile(
            r"(['\"]" + _HEADER_NAMES + r"['\"]\s*[:,]\s*)"
            r"(?:\(\s*" + _STRINGS + r"\s*\)|" + _STRINGS + ")",
            re.IGNORECASE,
        ),
        r"\1'" + MARK + "'",
    ),
    # Authorization: Basic ... as a header line (to the end of the line).
    (
        re.compile(
            r"(\b(?:proxy-|set-)?(?:authorization|cookie)\s*[:=]\s*)[^\r\n]+", re.IGNORECASE
        ),
        r"\1" + MARK,
    ),
    # password=..., "password": "...", secret: ...
    (
        re.compile(
            r"(\b\w*(?:password|passwd|secret)\w*['\"]?\s*[:=]\s*)(?:" + _STRING + r"|[^\s&,;]+)",
            re.IGNORECASE,
        ),
        r"\1" + MARK,
    ),
    (SECRET_RE, MARK),
    # scheme://user:password@host
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + MARK + "@"),
)


def redact(text: str) -> str:
    """``text`` with every secret the rules recognise replaced by :data:`MARK`."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message, traceback and stack in place."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` (never drops it)."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: keep neither raw
            message = f"{record.msg} [unformattable log arguments dropped]"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


FILTER = RedactingFilter()

# Loggers whose handlers are not the root logger's (they do not propagate).
SEPARATE_LOGGERS = ("gunicorn.error", "gunicorn.access")


def install(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put the filter on ``handlers`` (default: the root logger's and gunicorn's).

    Idempotent: ``addFilter`` ignores a filter that is already there.
    """
    if handlers is None:
        chosen = list(logging.getLogger().handlers)
        for name in SEPARATE_LOGGERS:
            chosen.extend(logging.getLogger(name).handlers)
    else:
        chosen = list(handlers)
    for handler in chosen:
        handler.addFilter(FILTER)
