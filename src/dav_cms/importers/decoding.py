"""The text encoding of a file to import: detected, or named by the user.

Without an explicit encoding, :func:`decode` decides in this order:

1. A byte-order mark: UTF-32 LE/BE (tested first: the UTF-32 LE mark begins with
   the UTF-16 LE one), UTF-8, UTF-16 LE/BE. Google's legacy CSV export is UTF-16 LE
   with a mark.
2. No mark, but zero bytes in the odd (or even) positions only, as in mostly-ASCII
   UTF-16 LE (or BE) text: UTF-16 without a mark. Any other zero byte is refused
   (not a text file, or UTF-32 without a mark).
3. Valid UTF-8.
4. Windows-1252, the code page of Outlook's desktop export and of old phones'
   vCard 2.1 files (ISO-8859-1 text reads the same, except for the C1 control
   characters no such file contains). Refused instead of guessed when a byte is
   one of the five Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D:
   the file is in another code page, such as Windows-1250/1251 or Shift-JIS), or
   when the file also holds well-formed UTF-8 sequences (a mix of two encodings,
   which no single guess reads right).

An explicit encoding (any Python text codec name: ``cp1250``, ``latin-1``,
``utf-16-le`` ...) overrides detection; bytes that do not decode are refused with
their offset and line. A leading byte-order mark is dropped from the text.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

#: Byte-order marks, longest first where one begins another.
BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: What a file that is neither marked nor UTF-8 is read as.
FALLBACK = "cp1252"
_SAMPLE = 4096
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    rb"|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
#: Where a multi-byte UTF-8 sequence may start (a fast first pass for the above).
_UTF8_START = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNICODE = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
    "utf-32": "UTF-32",
    "utf-32-le": "UTF-32LE",
    "utf-32-be": "UTF-32BE",
}
_CHECK = "check the name given with --encoding"
_DAMAGED = "the file is damaged, or in another encoding: give it with --encoding"
_HINT = "give the file's encoding with --encoding (for example cp1250, cp1251 or latin-1)"


@dataclass(frozen=True)
class Decoded:
    """A file's text and how it was read.

    Attributes:
        text: The text, without a byte-order mark.
        encoding: The Python codec that decoded it (``utf-16-le``, ``cp1252`` ...).
        reason: Why that one: ``byte-order mark``, ``not valid UTF-8``, ``as requested`` ...
    """

    text: str
    encoding: str
    reason: str = ""

    @property
    def description(self) -> str:
        """For the summary: ``UTF-16LE (byte-order mark)``, ``UTF-8``."""
        label = encoding_label(self.encoding)
        return f"{label} ({self.reason})" if self.reason else label


def check_encoding(name: str) -> str:
    """The canonical codec name of the text encoding ``name``.

    Raises:
        ValueError: When ``name`` is not a known text encoding (``rot13``, ``zip``
            and other codecs that do not decode bytes to text included).
    """
    try:
        b"\x00\x00\x00\x00".decode(name, errors="replace")  # non-text codecs: LookupError
        return codecs.lookup(name).name
    except (LookupError, UnicodeError):
        msg = f"unknown text encoding {name!r} (for example utf-8, utf-16, cp1252, latin-1)"
        raise ValueError(msg) from None


def encoding_label(codec: str) -> str:
    """How the summary names a codec: ``UTF-16LE``, ``Windows-1252``, ``ISO-8859-1``."""
    name = codecs.lookup(codec).name
    if name in _UNICODE:
        return _UNICODE[name]
    if re.fullmatch(r"cp125\d", name):
        return f"Windows-{name[2:]}"
    if name.startswith("iso8859-"):
        return f"ISO-8859-{name[8:]}"
    return name


def decode(data: bytes, encoding: str | None = None) -> Decoded:
    """The text of ``data``, in ``encoding`` or the detected one (see the module docstring).

    Raises:
        ValueError: When ``encoding`` is unknown, the bytes do not decode in it, or
            no encoding can be told for sure; the message names the byte offset and line.
    """
    if encoding is not None:
        codec = check_encoding(encoding)
        return Decoded(_strict(data, codec, _CHECK), codec, "as requested")
    for mark, codec in BOMS:
        if data.startswith(mark):
            return Decoded(_strict(data, codec, _DAMAGED), codec, "byte-order mark")
    unmarked = _unmarked_utf16(data)
    if unmarked is not None:
        reason = "no byte-order mark; told by its zero bytes"
        return Decoded(_strict(data, unmarked, _DAMAGED), unmarked, reason)
    zero = data.find(b"\x00")
    if zero >= 0:
        msg = (
            f"a zero byte at offset {zero} (line {_line(data, zero, 'latin-1')}): not a text "
            "file, or UTF-16/UTF-32 without a byte-order mark; give the file's encoding "
            "with --encoding (for example utf-16-le)"
        )
        raise ValueError(msg)
    try:
        return Decoded(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start
    sequence = _utf8_sequence(data)
    if sequence >= 0:
        msg = (
            f"mixes UTF-8 (at offset {sequence}, line "
            f"{_line(data, sequence, FALLBACK)}) with bytes that are not UTF-8 "
            f"(at offset {bad}, line {_line(data, bad, FALLBACK)}); convert it to one "
            f"encoding or {_HINT}"
        )
        raise ValueError(msg)
    try:
        return Decoded(data.decode(FALLBACK), FALLBACK, "not valid UTF-8")
    except UnicodeDecodeError as exc:
        msg = (
            f"byte 0x{data[exc.start]:02X} at offset {exc.start} (line "
            f"{_line(data, exc.start, FALLBACK)}) is neither UTF-8 nor Windows-1252; {_HINT}"
        )
        raise ValueError(msg) from None


def _strict(data: bytes, codec: str, hint: str) -> str:
    """``data`` decoded strictly, without a leading byte-order mark."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        label = encoding_label(codec)
        msg = (
            f"not valid {label}: {exc.reason} at byte offset {exc.start} "
            f"(line {_line(data, exc.start, codec)}); {hint}"
        )
        raise ValueError(msg) from None
    return text.removeprefix("\ufeff")


def _utf8_sequence(data: bytes) -> int:
    """The offset of the first well-formed multi-byte UTF-8 sequence in ``data``, or -1."""
    for start in _UTF8_START.finditer(data):
        if _UTF8_SEQUENCE.match(data, start.start()):
            return start.start()
    return -1


def _unmarked_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when the zero bytes of ``data`` say so, else None."""
    sample = data[: _SAMPLE - _SAMPLE % 2]
    if len(sample) < 2 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd * 4 >= half and odd > 3 * even:
        return "utf-16-le"
    if even * 4 >= half and even > 3 * odd:
        return "utf-16-be"
    return None


def _line(data: bytes, offset: int, codec: str) -> int:
    """The 1-based line of byte ``offset`` of ``data`` read as ``codec``."""
    before = data[:offset].decode(codec, errors="replace")
    return len(_LINE_BREAK.findall(before)) + 1
