"""Folds that split a multi-byte UTF-8 character, joined before the file is decoded.

vCard and iCalendar writers fold long lines (a line break followed by a space or
tab) at 75 *octets*; careless ones fold in the middle of a multi-byte UTF-8
character. Such a file is not valid UTF-8 until it is unfolded, so it would be
refused or read in the wrong encoding. :func:`join_split_characters` removes
exactly those folds, at the byte level: a line break and one space or tab
between a byte of 0x80 or above and a UTF-8 continuation byte (0x80-0xBF).
Removing a fold never changes what a vCard or iCalendar file means (unfolding
removes every fold), so the join is safe in any encoding; no other fold is
touched.
"""

from __future__ import annotations

import re

_SPLIT = re.compile(rb"(?<=[\x80-\xff])(?:\r\n|\n|\r)[ \t](?=[\x80-\xbf])")


def join_split_characters(data: bytes) -> bytes:
    """``data`` with the folds inside multi-byte characters removed (see the module docstring)."""
    return _SPLIT.sub(b"", data)
