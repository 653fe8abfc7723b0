"""vCard 2.1 specifics: logical lines, quoted-printable, charsets, bare parameters.

vCard 2.1 (Android, old phones, Outlook) differs from 3.0 in ways vobject only
partly handles; this module reads them exactly:

* A ``QUOTED-PRINTABLE`` value continues on the next physical line after a soft
  line break (a line ending in ``=``); the continuation is taken as written
  (RFC 2045). Ordinary folds (a line starting with a space or tab) lose that one
  character, as in 3.0. A base64 value may continue on lines without leading
  white space, and may be followed by a blank line.
* Quoted-printable bytes are decoded in the property's ``CHARSET`` (ISO-8859-1
  is read as its superset Windows-1252); when that fails, or without a
  ``CHARSET``, as UTF-8, else Windows-1252, else ISO-8859-1 (never fails).
* Compound values (``N``, ``ADR``, ``ORG``, extensions such as
  ``X-ANDROID-CUSTOM``) are split at their ``;`` *before* decoding, as Android
  does: an encoded ``=3B`` is a semicolon inside a component. ``\\;`` is the one
  escape 2.1 defines; every other backslash, and every comma, is literal.
* Parameters without a name (``TEL;WORK;VOICE``) are types, except the
  encodings (``QUOTED-PRINTABLE``, ``BASE64``, ``8BIT``, ``7BIT``) and the value
  locations (``INLINE``, ``URL``, ``CONTENT-ID``).
"""

from __future__ import annotations

import codecs
import re

_HEX = re.compile(r"(?:=[0-9A-Fa-f]{2})+")
_QP_HEAD = re.compile(r"^[^:]*QUOTED-PRINTABLE[^:]*:", re.IGNORECASE)
_B64_HEAD = re.compile(r"^[^:]*;(?:ENCODING=)?(?:BASE64|B)[;:]", re.IGNORECASE)
_B64_LINE = re.compile(r"[A-Za-z0-9+/=]+")
_BEGIN_END = re.compile(r"(?:BEGIN|END):", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Bare parameters that name an encoding, with their 3.0 form ("" = dropped).
BARE_ENCODINGS = {"QUOTED-PRINTABLE": "QUOTED-PRINTABLE", "BASE64": "b", "B": "b"}
BARE_DROPPED = frozenset({"7BIT", "8BIT", "INLINE"})
#: Bare parameters that name where the value is, with their 3.0 ``VALUE``.
BARE_VALUES = {"URL": "uri", "URI": "uri", "CID": "content-id", "CONTENT-ID": "content-id"}
#: Charsets read as Windows-1252, the superset old writers really used.
_LATIN = frozenset({"iso8859-1", "latin-1", "ascii", "cp1252"})


def logical_lines(lines: list[str], *, legacy: bool) -> list[str]:
    """Join physical lines into content lines (see the module docstring).

    Args:
        lines: The physical lines of a card, without ``BEGIN``/``END``.
        legacy: Whether the card is vCard 2.1 (base64 continuations without
            leading white space are then joined too).

    Returns:
        The content lines, blank lines left out.
    """
    out: list[str] = []
    soft_break = base64 = False
    for line in lines:
        if soft_break and not _BEGIN_END.match(line):
            out[-1] = out[-1][:-1] + line
            soft_break = line.endswith("=")
            continue
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and out:
            out[-1] += line[1:]
        elif base64 and ":" not in line and _B64_LINE.fullmatch(line):
            out[-1] += line
        else:
            out.append(line)
        soft_break = out[-1].endswith("=") and bool(_QP_HEAD.match(out[-1]))
        base64 = legacy and bool(_B64_HEAD.match(out[-1]))
    return out


def split_components(value: str) -> list[str]:
    """A 2.1 compound value split at its unescaped ``;`` (``\\;`` kept as ``;``)."""
    parts = re.split(r"(?<!\\);", value)
    return [part.replace("\\;", ";") for part in parts]


def decode_qp(value: str, charset: str) -> str:
    """A quoted-printable value as text (soft line breaks already joined).

    Each run of ``=XX`` escapes is decoded as bytes in ``charset`` (see
    :func:`decode_bytes`); other characters are kept; an ``=`` not followed by
    two hex digits is literal, a trailing one (a soft break at the very end) is
    dropped.
    """
    text = _HEX.sub(
        lambda m: decode_bytes(bytes.fromhex(m.group().replace("=", "")), charset), value
    )
    return text.removesuffix("=")


def decode_bytes(data: bytes, charset: str) -> str:
    """``data`` in ``charset``, falling back to UTF-8, Windows-1252, ISO-8859-1."""
    candidates: list[str] = []
    try:
        declared = codecs.lookup(charset).name if charset else ""
    except LookupError:
        declared = ""
    if declared in _LATIN:
        candidates.append("cp1252")
    elif declared:
        candidates.append(declared)
    candidates += ["utf-8", "cp1252"]
    for codec in candidates:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def clean(text: str) -> str:
    """Decoded text with line breaks as ``\\n`` and control characters dropped.

    Radicale drops control characters other than tab and line breaks from every
    item it reads; dropping them here keeps the stored text stable.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)
