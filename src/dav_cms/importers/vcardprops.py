"""The properties of an imported vCard: decoded, then written in canonical 3.0/4.0 form.

vobject (which Radicale uses) reads every property it has no special rule for as
one text value and keeps only the part before the first unescaped comma, and it
escapes ``,`` and ``;`` in values that are not text (URIs, ``data:`` photos,
``TEL;VALUE=uri:tel:...;ext=``, ``GEO``, ``X-ANDROID-CUSTOM``, ``CLIENTPIDMAP``).
So before vobject sees a card, each property is brought into a form that means
the same and that vobject reads and writes back unchanged:

* text properties (``FN``, ``NOTE``, ``TITLE``, ``EMAIL`` ...): unescaped and
  escaped again, so a comma the writer left unescaped becomes ``\\,``;
* ``N`` and ``ADR`` (components that are comma lists), ``ORG`` (text
  components), ``NICKNAME`` and ``CATEGORIES`` (comma lists): the same, per
  component and list element;
* binary values (``ENCODING=b``, 2.1 ``BASE64``): base64 without white space;
* every other property (URIs, dates, ``TEL``, ``GEO``, extensions, unknown
  properties) is kept exactly as written. Where vobject would alter such a value
  (it holds ``,``, ``;`` or ``\\``) it is marked *raw* and :func:`apply_raw` puts
  it back into the parsed card verbatim before serialisation.

vCard 2.1 values (and quoted-printable ones in any version) are decoded first
(:mod:`dav_cms.importers.vcard21`) and written with the escaping above. What
changes form: ``ENCODING=QUOTED-PRINTABLE`` and ``CHARSET`` go (the value is now
plain Unicode text), ``ENCODING=BASE64`` becomes ``ENCODING=b``, bare parameters
become ``TYPE`` (or ``ENCODING``/``VALUE``) parameters, ``VALUE=URL`` becomes
``VALUE=uri``, a 2.1 ``GEO:lat,lon`` becomes ``GEO:lat;lon``, and
``VERSION:2.1`` becomes ``VERSION:3.0``.

An escape 3.0 does not define (``\\:``, ``\\x``) keeps its backslash, as vobject
reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dav_cms.importers import vcard21
from dav_cms.importers._common import Block, split_blocks, split_lines
from dav_cms.radicale_types import VComponent
from dav_cms.vcardlines import parse_line

TEXT = frozenset(
    {"FN", "NOTE", "TITLE", "ROLE", "LABEL", "MAILER", "SORT-STRING", "EMAIL", "UID"}
    | {"PRODID", "NAME", "CLASS", "KIND"}
)
LISTS = frozenset({"NICKNAME", "CATEGORIES"})
#: Structured properties whose components are comma lists, with their size.
STRUCTURED = {"N": 5, "ADR": 7}
#: Properties vCard 2.1 defines; others in a 2.1 card are read as compound text.
KNOWN_21 = frozenset(
    {"FN", "N", "PHOTO", "BDAY", "ADR", "LABEL", "TEL", "EMAIL", "MAILER", "TZ", "GEO"}
    | {"TITLE", "ROLE", "LOGO", "AGENT", "ORG", "NOTE", "REV", "SOUND", "URL", "UID", "KEY"}
    | {"VERSION", "NICKNAME", "CATEGORIES", "PRODID", "CLASS", "SORT-STRING", "NAME"}
)
_SPECIAL = re.compile(r"[,;\\]")
_GEO_21 = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


@dataclass
class Prop:
    """One content line in canonical form.

    Attributes:
        group: The group (``item1``) or empty.
        name: The upper-case property name (empty for a line of a nested
            component, which is passed through as written in ``value``).
        params: The parameters as written (``TYPE=work,voice``).
        value: The value in canonical 3.0/4.0 form.
        raw: Whether vobject would alter the value, so :func:`apply_raw` must
            restore it.
    """

    group: str
    name: str
    params: list[str]
    value: str
    raw: bool = False

    def text(self) -> str:
        """The content line, unfolded."""
        if not self.name:
            return self.value
        head = f"{self.group}.{self.name}" if self.group else self.name
        return ";".join((head, *self.params)) + ":" + self.value


def card_props(text: str) -> list[Prop]:
    """The content lines of one vCard in canonical form (``BEGIN``/``END`` left out).

    Raises:
        ValueError: When ``text`` is not one vCard or a line is not a property.
    """
    parts = split_blocks(split_lines(text))
    block = parts[0] if len(parts) == 1 else None
    if not isinstance(block, Block) or block.name != "VCARD" or block.error:
        msg = "not exactly one vCard"
        raise ValueError(msg)
    inner = block.lines[1:-1]
    version = _version(inner)
    legacy = version in ("2.1", "1.0")
    props: list[Prop] = []
    depth = 0
    for line in vcard21.logical_lines(inner, legacy=legacy):
        upper = line.upper()
        if depth or upper.startswith("BEGIN:"):
            depth += upper.startswith("BEGIN:") - upper.startswith("END:")
            props.append(Prop("", "", [], line))
            continue
        props.append(_canonical(line, legacy=legacy))
    if legacy or not version:
        props = [prop for prop in props if prop.name != "VERSION"]
        props.insert(0, Prop("", "VERSION", [], "3.0"))
    return props


def render(props: list[Prop]) -> str:
    """The card text of ``props`` (unfolded lines, CRLF)."""
    lines = ["BEGIN:VCARD", *(prop.text() for prop in props), "END:VCARD"]
    return "".join(line + "\r\n" for line in lines)


def apply_raw(card: VComponent, props: list[Prop]) -> None:
    """Put the raw values of ``props`` back into ``card`` (parsed from :func:`render`).

    vobject keeps the properties of one name in the order written, so the n-th
    property of a name in ``props`` is the n-th child of that name.

    Raises:
        ValueError: When the card's properties do not match ``props``.
    """
    by_name: dict[str, list[Prop]] = {}
    for prop in props:
        if prop.name:
            by_name.setdefault(prop.name.lower(), []).append(prop)
    for name, mine in by_name.items():
        if not any(prop.raw for prop in mine):
            continue
        children = card.contents.get(name, [])
        if len(children) != len(mine):
            msg = f"cannot keep the values of {name.upper()}"
            raise ValueError(msg)
        for child, prop in zip(children, mine, strict=True):
            if prop.raw:
                child.value = prop.value
                child.encoded = True
                child.isNative = False
                child.behavior = None


def _version(lines: list[str]) -> str:
    """The value of the card's VERSION line ("" without one)."""
    for line in lines:
        if line[:8].upper() == "VERSION:":
            return line[8:].strip()
    return ""


def _canonical(raw: str, *, legacy: bool) -> Prop:
    """One content line in canonical form (see the module docstring)."""
    line = parse_line(raw)
    params, encoding, charset, value_type = _params(line.params)
    name = line.name
    if encoding == "b":
        return Prop(line.group, name, params, _base64(line.value))
    if encoding == "QUOTED-PRINTABLE" or legacy:
        value, raw_kind = _from_21(name, line.value, encoding, charset, value_type)
        return Prop(line.group, name, params, value, raw_kind and bool(_SPECIAL.search(value)))
    value, raw_kind = _from_30(name, line.value, value_type)
    return Prop(line.group, name, params, value, raw_kind and bool(_SPECIAL.search(value)))


def _params(written: tuple[str, ...]) -> tuple[list[str], str, str, str]:
    """Canonical parameters, and the encoding, charset and value type they name."""
    params: list[str] = []
    types: list[str] = []
    named: dict[str, str] = {"ENCODING": "", "CHARSET": "", "VALUE": ""}
    for param in written:
        key, has_value, value = param.partition("=")
        key = key.strip().upper()
        if has_value:
            _named(key, value, params, named)
            continue
        if key in vcard21.BARE_ENCODINGS:
            named["ENCODING"] = vcard21.BARE_ENCODINGS[key]
        elif key in vcard21.BARE_VALUES:
            named["VALUE"] = vcard21.BARE_VALUES[key]
            params.append(f"VALUE={named['VALUE']}")
        elif key and key not in vcard21.BARE_DROPPED:
            if not types:
                params.append("")  # where the TYPE of the bare values goes
            if key not in (t.upper() for t in types):
                types.append(param.strip())
    if types:
        params[params.index("")] = "TYPE=" + ",".join(types)
    if named["ENCODING"] == "b":
        params.append("ENCODING=b")
    return params, named["ENCODING"], named["CHARSET"], named["VALUE"]


def _named(key: str, value: str, params: list[str], named: dict[str, str]) -> None:
    """Add the parameter ``key=value`` to ``params`` or, for encodings, to ``named``."""
    upper = value.strip().upper()
    if key == "CHARSET":
        named["CHARSET"] = value.strip().strip('"')
    elif key == "ENCODING":
        if upper in vcard21.BARE_ENCODINGS:
            named["ENCODING"] = vcard21.BARE_ENCODINGS[upper]
        elif upper not in ("7BIT", "8BIT"):
            params.append(f"ENCODING={value}")
    elif key == "VALUE":
        if upper != "INLINE":
            named["VALUE"] = vcard21.BARE_VALUES.get(upper, value.strip().lower())
            params.append(f"VALUE={vcard21.BARE_VALUES.get(upper, value)}")
    else:
        params.append(f"{key}={value}")


def _base64(value: str) -> str:
    """A base64 value without white space, padded."""
    data = "".join(value.split())
    return data + "=" * (-len(data) % 4)


def _from_21(
    name: str, value: str, encoding: str, charset: str, value_type: str
) -> tuple[str, bool]:
    """A 2.1 (or quoted-printable) value in 3.0 form, and whether it is raw."""
    compound = name in ("N", "ADR", "ORG") or name not in KNOWN_21
    parts = vcard21.split_components(value) if compound else [value.replace("\\;", ";")]
    if encoding == "QUOTED-PRINTABLE":
        parts = [vcard21.decode_qp(part, charset) for part in parts]
    parts = [vcard21.clean(part) for part in parts]
    if value_type in ("uri", "content-id") and not compound:
        return parts[0].replace("\n", "\\n"), True
    if compound:
        if name in STRUCTURED:
            parts += [""] * (STRUCTURED[name] - len(parts))
        return ";".join(escape(part) for part in parts), name not in ("N", "ADR", "ORG")
    text = parts[0]
    if name in TEXT or name == "NICKNAME":
        return escape(text), False
    if name == "CATEGORIES":
        items = [item.strip() for item in re.split(r"[,;]", text)]
        return ",".join(escape(item) for item in items if item), True
    geo = _GEO_21.fullmatch(text) if name == "GEO" else None
    if geo:
        return f"{geo.group(1)};{geo.group(2)}", True
    return text.replace("\n", "\\n"), True


def _from_30(name: str, value: str, value_type: str) -> tuple[str, bool]:
    """A 3.0/4.0 value in canonical form, and whether it is raw."""
    if name in TEXT and value_type in ("", "text"):
        return escape(unescape(value)), False
    if name in LISTS:
        return ",".join(escape(unescape(item)) for item in split_unescaped(value, ",")), True
    if name in STRUCTURED:
        parts = split_unescaped(value, ";")
        if len(parts) > STRUCTURED[name]:
            return value, True
        parts += [""] * (STRUCTURED[name] - len(parts))
        lists = [split_unescaped(part, ",") for part in parts]
        return ";".join(",".join(escape(unescape(v)) for v in items) for items in lists), False
    if name == "ORG":
        return ";".join(escape(unescape(part)) for part in split_unescaped(value, ";")), False
    return value, True


def split_unescaped(value: str, separator: str) -> list[str]:
    """``value`` split at each ``separator`` not escaped by a backslash (escapes kept)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars, ""))
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    """A 3.0/4.0 text value without its escapes (an unknown escape keeps its backslash)."""
    return _ESCAPED.sub(_unescaped, value)


def _unescaped(match: re.Match[str]) -> str:
    char = match.group(1)
    if char in ("n", "N"):
        return "\n"
    return char if char in ("\\", ",", ";") else match.group()


def escape(value: str) -> str:
    """A text value escaped for 3.0/4.0 (``\\\\`` ``\\,`` ``\\;`` ``\\n``)."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")
