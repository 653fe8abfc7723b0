"""The rules a login or a group name follows: one safe path segment Radicale accepts."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 255
# Radicale's minimal user/group validation refuses these; "," and ":" also
# separate and mark groups in sharing records.
FORBIDDEN_CHARS = frozenset(":'\"*?,")


def check_segment(value: str, what: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``value`` stripped, or ValueError saying (about ``what``) why it cannot name a folder."""
    value = value.strip()
    if not value:
        msg = f"the {what} must not be empty"
        raise ValueError(msg)
    if len(value) > max_length:
        msg = f"the {what} is longer than {max_length} characters"
        raise ValueError(msg)
    if any(unicodedata.category(char).startswith("C") for char in value):
        msg = f"the {what} must not contain control characters"
        raise ValueError(msg)
    if "/" in value:
        msg = f"the {what} must not contain '/' (it names a folder)"
        raise ValueError(msg)
    if value.startswith("."):
        msg = f"the {what} must not start with '.'"
        raise ValueError(msg)
    bad = sorted(FORBIDDEN_CHARS.intersection(value))
    if bad:
        msg = f"the {what} must not contain {' '.join(bad)} (refused by Radicale)"
        raise ValueError(msg)
    return value
