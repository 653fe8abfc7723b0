"""The one rule for logins, group names and collection names.

Each of them becomes one path segment: ``/LOGIN/``, ``/_groups/GROUP/``,
``/LOGIN/NAME/``, and is written into Radicale's sharing records (``User`` =
``LOGIN`` or ``:GROUP1,GROUP2``, ``PathOrToken`` = ``/{user}/...``). A name must
mean exactly one thing there and look like exactly one thing to a person, so:

* Whitespace around the name is removed; inside it, no whitespace of any kind
  (space, tab, no-break space, ideographic space, line separators...).
* No control characters, no invisible formatting characters (zero-width
  space, bidi controls) and no unassigned code points.
* Unicode NFC only: a decomposed ``é`` (``e`` + combining accent) would be a
  second account that looks like the first.
* None of ``: ' " * ? ,`` (Radicale refuses them in logins and groups; ``:``
  and ``,`` mark and separate groups in sharing records), ``{ }`` (Radicale's
  sharing replaces ``{user}`` by the recipient's login), ``/ \\`` (path
  separators to Radicale and to some clients), ``% #`` (percent-escapes and
  fragments: clients and proxies decode or cut URLs there).
* Not starting with ``.`` (Radicale's own ``/.web/``, ``/.sharing/``,
  ``/.token/``; hidden files) or ``@`` (a sharing record whose ``User`` starts
  with ``@`` is a realm share for every login ending with it).
* Not a reserved name, in any case (Radicale may fold logins with
  ``lc_username``/``uc_username``): ``_groups`` (the folder of company
  collections) and ``GROUPS`` (Radicale's folder of group collections):
  an account of that name would own the folder.

Logins may in addition hold one ``@`` inside (``alice@example.org``), see
:func:`dav_cms.accounts.normalise_login`.
"""

from __future__ import annotations

import unicodedata

__all__ = ["ALLOWED", "MAX_NAME_LENGTH", "RESERVED", "check_segment", "is_reserved"]

MAX_NAME_LENGTH = 255
# Characters refused, each set with the reason the message gives.
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("/\\", "they separate folders"),
    (":'\"*?,", "Radicale refuses them; ':' and ',' mark and separate groups in shares"),
    ("{}", "Radicale's sharing writes {user} for the login of a share's recipient"),
    ("%#", "they start an escape or a fragment in a URL"),
)
FORBIDDEN_CHARS = frozenset("".join(chars for chars, _ in FORBIDDEN))
FORBIDDEN_START = (".", "@")
# Company collections live at /_groups/GROUP/NAME/ and belong to the group.
COMPANY_ROOT = "_groups"
# Reserved names (compared case-insensitively) and what they already name.
RESERVED: dict[str, str] = {
    COMPANY_ROOT: f"/{COMPANY_ROOT}/ holds the company collections of every group",
    "groups": "/GROUPS/ is Radicale's folder of group collections",
}
ALLOWED = (
    "a name is one word of up to {max} letters, digits and punctuation, without "
    "whitespace or any of / \\ : ' \" * ? , {{ }} % #, not starting with '.' or '@', "
    "and not _groups or GROUPS"
)


def is_reserved(value: str) -> bool:
    """Whether ``value`` (stripped) is a reserved name, in any case."""
    return value.strip().casefold() in RESERVED


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _length(value: str, what: str, max_length: int) -> str | None:
    if not value:
        return f"the {what} must not be empty"
    if len(value) > max_length:
        return f"the {what} is longer than {max_length} characters"
    return None


def _characters(value: str, what: str) -> str | None:
    for char in value:
        if unicodedata.category(char).startswith("C"):
            return f"the {what} must not contain control characters or invisible ones"
        if char.isspace() or unicodedata.category(char).startswith("Z"):
            return f"the {what} must not contain whitespace ({_describe(char)})"
    composed = unicodedata.normalize("NFC", value)
    if composed != value:
        return (
            f"the {what} must be in Unicode NFC form: it uses combining characters, so it "
            f"looks like {composed!r} but is another name; type it composed"
        )
    for chars, reason in FORBIDDEN:
        bad = [char for char in chars if char in value]
        if bad:
            shown = " ".join(f"'{char}'" if char == "/" else char for char in bad)
            return f"the {what} must not contain {shown} ({reason})"
    return None


def _meaning(value: str, what: str) -> str | None:
    if value.startswith(FORBIDDEN_START):
        return f"the {what} must not start with '{value[0]}'"
    reserved = RESERVED.get(value.casefold())
    if reserved is not None:
        return f"the {what} {value!r} is reserved: {reserved}"
    return None


def _problem(value: str, what: str, max_length: int) -> str | None:
    """Why ``value`` (already stripped) cannot be a name, or None."""
    return _length(value, what, max_length) or _characters(value, what) or _meaning(value, what)


def check_segment(value: str, what: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Strip ``value`` and check it against the rule of this module.

    Args:
        value: The name as typed.
        what: What it names, for the message ("login", "group name"...).
        max_length: The longest name allowed.

    Returns:
        ``value`` without surrounding whitespace.

    Raises:
        ValueError: The name breaks the rule; the message says how and what is allowed.
    """
    value = value.strip()
    problem = _problem(value, what, max_length)
    if problem is not None:
        msg = f"{problem}. Allowed: {ALLOWED.format(max=max_length)}"
        raise ValueError(msg)
    return value
