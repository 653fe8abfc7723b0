"""Checks of a PUT body before Radicale parses it: media type, charset, bytes.

- A declared charset must be one Python knows (else 415) and the body must
  decode in it; without one the body must be in ``[encoding] request``
  (UTF-8): Radicale would otherwise fall back to Latin-1 and store mojibake.
- No NUL character (PostgreSQL cannot store it; no vCard or iCalendar has one).
- The media type must fit the body: ``text/vcard`` for vCards,
  ``text/calendar`` for iCalendar; a generic type (none, ``text/plain``,
  ``application/octet-stream``) leaves the decision to the content; any other
  type is refused with 415.
"""

from __future__ import annotations

from dav_cms.web.limits_base import RefusalError

VCARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
CALENDAR_TYPES = frozenset({"text/calendar", "text/x-vcalendar", "application/ics"})
GENERIC_TYPES = frozenset({"", "text/plain", "application/octet-stream"})


def media_type(content_type: str) -> tuple[str, str | None]:
    """(media type in lower case, charset parameter or None) of a Content-Type value."""
    kind, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
    return kind.strip().lower(), charset


def canonical_content_type(content_type: str) -> str:
    """``content_type`` with its charset checked and unquoted, other parameters kept.

    Radicale finds the charset by a plain search for ``charset=`` (so ``xcharset=``
    counts and quotes stay): only the checked charset parameter is left to find.
    """
    kind, charset = media_type(content_type)
    kept = [part.strip() for part in content_type.split(";")[1:] if "charset=" not in part.lower()]
    if charset is not None:
        check_charset(charset)
        kept.append(f"charset={charset}")
    return "; ".join([kind, *[part for part in kept if part]])


def check_charset(name: str) -> None:
    """RefusalError (415) unless ``name`` is a text encoding Python knows."""
    try:
        "".encode(name)
    except (LookupError, ValueError) as exc:
        raise RefusalError(415, f"unknown charset {name[:40]!r}") from exc


def decode(data: bytes, charset: str | None, default: str) -> str:
    """``data`` as text in ``charset`` (or ``default``); RefusalError when it is not."""
    name = charset or default
    check_charset(name)
    try:
        return data.decode(name)
    except UnicodeDecodeError as exc:
        hint = "" if charset else " (declare the charset in Content-Type)"
        raise RefusalError(400, f"body is not valid {name} at byte {exc.start}{hint}") from exc


def check_put(content_type: str, data: bytes, default_charset: str) -> None:
    """RefusalError when a PUT body cannot be an item in the type it claims."""
    kind, charset = media_type(content_type)
    text = decode(data, charset, default_charset)
    if "\x00" in text:
        raise RefusalError(400, "body contains a NUL character")
    if kind in GENERIC_TYPES:
        return
    head = text.lstrip("\ufeff \t\r\n")[:16].upper()
    if kind in VCARD_TYPES:
        if head.startswith("BEGIN:VCALENDAR"):
            raise RefusalError(415, f"Content-Type {kind} but the body is iCalendar")
        return
    if kind in CALENDAR_TYPES:
        if head.startswith("BEGIN:VCARD"):
            raise RefusalError(415, f"Content-Type {kind} but the body is a vCard")
        return
    raise RefusalError(415, f"Content-Type {kind[:60]!r} is neither text/vcard nor text/calendar")
