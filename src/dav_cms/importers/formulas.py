"""CSV cells a spreadsheet would run as formulas, neutralised on export and restored on import.

Excel, LibreOffice Calc and Google Sheets treat a cell that begins with ``=``,
``+``, ``-`` or ``@`` (also after leading blanks), or with a tab or carriage
return, as a formula. A card that anyone with write access can edit must not
become a formula (``=HYPERLINK(...)``, ``=WEBSERVICE(...)``, DDE) when a colleague
opens an export, so :func:`neutralise` puts a single quote ``'`` in front of such a
cell (the OWASP recommendation; spreadsheets show the cell as text).

The one exemption is a phone number in a phone column in strict international
form (``+``, digits, blanks and ``( ) . / -`` only, e.g. ``+49 30 1234567``): it
has no letters, quotes or references, so no function or link can hide in it,
and it stays usable for address books that read the file.

The quote is reversible: a cell that already begins with quotes before such a
character gets one more, and :func:`restore` (applied by the importer to files in
the dav-cms export layout only) takes exactly one away, so an export imports back
byte for byte.
"""

from __future__ import annotations

import re

#: What makes a spreadsheet read a cell as a formula (after any quotes of ours).
_TRIGGER = r"(?:[ \t\r\n]*[=+\-@]|[\t\r])"
_NEEDS_QUOTE = re.compile(rf"'*{_TRIGGER}")
_QUOTED = re.compile(rf"'+{_TRIGGER}")
_PHONE = re.compile(r"\+[0-9 ()./-]*[0-9][0-9 ()./-]*")


def neutralise(value: str, *, phone: bool = False) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula.

    Args:
        value: The cell.
        phone: The cell is a phone number column: a strict ``+49 30 1234`` stays as it is.

    Returns:
        The cell, with a ``'`` in front when it would otherwise be a formula.
    """
    if phone and _PHONE.fullmatch(value):
        return value
    return "'" + value if _NEEDS_QUOTE.match(value) else value


def restore(value: str) -> str:
    """The cell :func:`neutralise` was given (one quote taken off a neutralised cell)."""
    return value[1:] if _QUOTED.match(value) else value
